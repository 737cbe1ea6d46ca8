"""The drift monitor as a Prefect flow: check a batch against the reference, publish the verdict, retrain on drift.

Run once with `python -m flows.monitoring --batch <folder, .npz, .npy or IDX file>`; served daily by flows.serve.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.command_line import run_flow_command
from flows.dvc_stages import run_streaming
from flows.training import WORKSPACE, run_stage, training_pipeline
from flows.workspace import DEFAULT_WAIT_MINUTES, claimed_workspace
from pipeline.drift_params import DriftParams
from pipeline.params import load_params

# Every check of the monitor keeps its own folder here (not a DVC output, so no stage run replaces it).
CHECKS_DIR = Path("reports/drift/checks")
DRIFT_STAGE = "drift"
# Rebuilt only when the model changed: the features of the reference split the checks compare with.
REFERENCE_STAGE = "drift_reference"


def check_command(
    workspace: Path, batch: Path, folder: Path, scenario: str | None, strength: float | None
) -> list[str]:
    """The drift stage's own command as dvc.yaml has it, pointed at `batch` and writing into `folder`."""
    from dvc.repo import Repo

    with Repo(str(workspace)) as repo:
        [stage] = repo.stage.collect(DRIFT_STAGE)
        command = shlex.split(stage.cmd)
    names = {"--report": "report.html", "--summary": "summary.json", "--metrics": "metrics.json"}
    outputs = {"--current": batch, **{option: folder / name for option, name in names.items()}}
    for index, part in enumerate(command[:-1]):
        if part in outputs:
            command[index + 1] = str(outputs[part])
    if scenario is not None:
        command += ["--scenario", scenario]
    if strength is not None:
        command += ["--strength", str(strength)]
    return [sys.executable if command[0] == "python" else command[0], *command[1:]]


@task(cache_policy=NO_CACHE)
def check_batch(workspace: str, batch: str | None, scenario: str | None, strength: float | None) -> Path:
    """Run the drift check of `batch` (default: params.yaml's drift.current_batch) into a new folder of its own."""
    root = Path(workspace)
    batch_path = Path(batch).resolve() if batch else root / load_params(DriftParams, root / "params.yaml").current_batch
    folder = root / CHECKS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{flow_run.name}"
    folder.mkdir(parents=True)
    command = check_command(root, batch_path, folder, scenario, strength)
    try:
        run_streaming(command, root, DRIFT_STAGE, str(flow_run.id), get_run_logger().info)
    finally:
        if not any(folder.iterdir()):
            folder.rmdir()  # a check that failed wrote nothing: no folder that looks like evidence
    return folder


def drift_markdown(summary: dict, report: Path) -> str:
    verdict = "**Dataset drift**" if summary["dataset_drift"] else "No dataset drift"
    lines = [
        f"{verdict}: {summary['drifted_count']} of {summary['feature_count']} features drifted "
        f"(share {summary['drifted_share']:.2f}, threshold {summary['thresholds']['drift_share']}).",
        "",
        f"Batch: `{summary['batch']['source']}`, {summary['batch']['images']} images, "
        f"scenario {summary['batch']['scenario']}; reference: {summary['reference']['images']} "
        f"{summary['reference']['split']} images.",
        "",
        f"[Evidently drift report]({report.resolve().as_uri()}) `{report.resolve()}`",
        "",
        "| drifted feature | score |",
        "|---|---|",
    ]
    lines += [f"| {name} | {score} |" for name, score in summary["drifted_features"].items()]
    lines += ["", "| predicted class | reference share | batch share |", "|---|---|---|"]
    shares = summary["prediction_drift"]["class_shares"]
    lines += [f"| {name} | {share['reference']} | {share['current']} |" for name, share in shares.items()]
    return "\n".join(lines)


@task(cache_policy=NO_CACHE)
def publish_drift(check: Path) -> dict:
    """The check's summary as an artifact with a link to its own report; returns the summary."""
    summary = json.loads((check / "summary.json").read_text())
    create_markdown_artifact(
        key="drift-summary",
        markdown=drift_markdown(summary, check / "report.html"),
        description="Dataset drift of the checked batch against the reference, feature by feature.",
    )
    return summary


@flow(name="drift-monitor")
def drift_monitor(
    batch: str | None = None,
    scenario: str | None = None,
    strength: float | None = None,
    retrain_on_drift: bool | None = None,
    workspace: str = str(WORKSPACE),
    wait_minutes: float = DEFAULT_WAIT_MINUTES,
) -> dict:
    """Check `batch` (default: params.yaml's drift.current_batch) for drift; on drift, start the training pipeline.

    `scenario`/`strength` simulate a shift of the batch; `retrain_on_drift` defaults to params.yaml's. Each check
    writes its report and summary into a folder of its own, reports/drift/checks/<time>-<flow run name>/, which
    nothing rewrites: not the DVC drift stage (it checks params.yaml's batch) nor a retraining this check starts.
    """
    root = Path(workspace).resolve()
    with claimed_workspace(root, f"flow run '{flow_run.name}'", wait_minutes, get_run_logger().info):
        run_stage(REFERENCE_STAGE, str(root))
        check = check_batch(str(root), batch, scenario, strength)
        summary = publish_drift(check)
        if retrain_on_drift is None:
            retrain_on_drift = load_params(DriftParams, root / "params.yaml").retrain_on_drift
        summary["check"] = str(check)
        summary["retraining_flow_run_id"] = None
        if summary["dataset_drift"] and retrain_on_drift:
            # A subflow, so the retraining shows under this run in the UI; it shares this run's workspace slot.
            retraining = training_pipeline(workspace=str(root), return_state=True)
            summary["retraining_flow_run_id"] = str(retraining.state_details.flow_run_id)
            retraining.result()  # a failed retraining fails the monitor run too
    summary["flow_run_id"] = str(flow_run.id)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.monitoring", description=drift_monitor.__doc__)
    parser.add_argument("--batch", help="the batch to check (default: params.yaml's drift.current_batch)")
    parser.add_argument("--scenario", help="simulate a shift of the batch: brightness, contrast, noise, ...")
    parser.add_argument("--strength", type=float, help="the shift's strength (default: the scenario's)")
    parser.add_argument("--no-retrain", action="store_true", help="never start the training pipeline")
    parser.add_argument("--workspace", default=str(WORKSPACE), help="the repository to run in (default: this one)")
    parser.add_argument(
        "--wait-minutes",
        type=float,
        default=DEFAULT_WAIT_MINUTES,
        help="how long to wait for a run that is using the workspace (default: %(default)s)",
    )
    arguments = parser.parse_args(argv)
    run_flow_command(
        "drift-monitor",
        arguments.workspace,
        arguments.wait_minutes,
        lambda: drift_monitor(
            batch=arguments.batch,
            scenario=arguments.scenario,
            strength=arguments.strength,
            retrain_on_drift=False if arguments.no_retrain else None,
            workspace=arguments.workspace,
            wait_minutes=arguments.wait_minutes,
        ),
    )


if __name__ == "__main__":
    main()
