"""The drift monitor as a Prefect flow: check a batch against the reference, publish the verdict, retrain on drift.

Run once with `python -m flows.monitoring --batch <folder, .npz, .npy or IDX file>`; served daily by flows.serve.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.dvc_stages import StageFailed
from flows.overrides import overridden_params
from flows.training import WORKSPACE, run_stage, training_pipeline
from pipeline.drift_params import DriftParams
from pipeline.errors import PipelineError
from pipeline.params import load_params

DRIFT_SUMMARY = Path("reports/drift/summary.json")
DRIFT_REPORT = Path("reports/drift/report.html")
# The reference features are rebuilt only when the model changed; then the batch is checked.
# The index after the drift report, so it shows the new verdict and lineage.
MONITOR_STAGES = ("drift_reference", "drift", "report_index")


def batch_overrides(batch: str | None, scenario: str | None, strength: float | None) -> dict[str, Any]:
    """The drift params this check changes; a relative batch path is taken from the current directory."""
    overrides: dict[str, Any] = {"drift.scenario": scenario, "drift.strength": strength}
    if batch is not None:
        overrides["drift.current_batch"] = str(Path(batch).resolve())
    return {key: value for key, value in overrides.items() if value is not None}


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
def publish_drift(workspace: str) -> dict:
    """The drift summary as an artifact with a link to the report; returns the summary."""
    root = Path(workspace)
    summary = json.loads((root / DRIFT_SUMMARY).read_text())
    create_markdown_artifact(
        key="drift-summary",
        markdown=drift_markdown(summary, root / DRIFT_REPORT),
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
) -> dict:
    """Check `batch` (default: params.yaml's drift.current_batch) for drift; on drift, start the training pipeline.

    `scenario`/`strength` simulate a shift of the batch; `retrain_on_drift` defaults to params.yaml's.
    The batch and scenario apply to this check only: params.yaml gets its original text back.
    """
    root = Path(workspace)
    with overridden_params(root / "params.yaml", batch_overrides(batch, scenario, strength)):
        for stage in MONITOR_STAGES:
            run_stage(stage, workspace)
    summary = publish_drift(workspace)
    if retrain_on_drift is None:
        retrain_on_drift = load_params(DriftParams, root / "params.yaml").retrain_on_drift
    summary["retraining_flow_run_id"] = None
    if summary["dataset_drift"] and retrain_on_drift:
        # A subflow, so the retraining shows under this run in the UI; DVC reruns what changed in the
        # data and params it is given, and finds the rest up to date.
        retraining = training_pipeline(workspace=workspace, return_state=True)
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
    arguments = parser.parse_args(argv)
    try:
        drift_monitor(
            batch=arguments.batch,
            scenario=arguments.scenario,
            strength=arguments.strength,
            retrain_on_drift=False if arguments.no_retrain else None,
            workspace=arguments.workspace,
        )
    except (StageFailed, PipelineError) as error:
        print(f"drift-monitor: error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
