"""The promotion gate's steps in a flow: score the model in use, decide, promote, and say why.

The candidate trains in an isolated run (flows/isolated_run.py) saved as a DVC experiment; promoting saves the
model in use as an experiment first and then applies the candidate's (`dvc exp apply`): params.yaml, dvc.lock,
the model and every report become the candidate's, and `dvc exp apply <champion experiment>` brings the previous
ones back. A refused candidate changes nothing in the workspace; its experiment and reports stay for a person to
look at (reports/runs/<experiment>/) or apply anyway.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.dvc_stages import apply_experiment, run_streaming, save_experiment
from flows.summary import read_metrics
from flows.workspace_slot import runs_dir
from pipeline.params import load_params
from pipeline.promotion import Decision, PromoteParams, decide, decision_table

MODEL = Path("models/model.keras")
SLICES = Path("data/prepared/slices")


def model_in_use(workspace: Path) -> dict | None:
    """The workspace model's test figures (None when there is no evaluated model to protect)."""
    metrics = read_metrics(workspace)
    if metrics is None or not (workspace / MODEL).exists():
        return None
    test_images = sum(scores["support"] for scores in metrics.get("per_class", {}).values())
    return {"accuracy": metrics["accuracy"], "test_images": test_images, "sources": metrics.get("sources", {})}


@task(cache_policy=NO_CACHE)
def score_model_in_use(workspace: str, slices: str) -> dict:
    """The model in use's accuracy on the candidate's new-source slices, read from its file, nothing written."""
    root = Path(workspace)
    with tempfile.TemporaryDirectory(dir=runs_dir(root)) as scratch:
        out = Path(scratch) / "scores.json"
        command = [sys.executable, "-m", "pipeline.stages.score_sources", "--model", str(root / MODEL)]
        command += ["--slices", slices, "--out", str(out)]
        run_streaming(command, root, "score_sources", str(flow_run.id), get_run_logger().info)
        return json.loads(out.read_text())


def gate(workspace: Path, in_use: dict, candidate_workspace: Path, must_beat: bool) -> Decision:
    """Compare the candidate trained in `candidate_workspace` with the model in use."""
    metrics = read_metrics(candidate_workspace)
    candidate = {"accuracy": metrics["accuracy"], "sources": metrics.get("sources", {})}
    in_use = {**in_use, "sources": {}}
    if candidate["sources"]:
        in_use["sources"] = score_model_in_use(str(workspace), str(candidate_workspace / SLICES))
    # The workspace's own margins: a candidate's overrides must not loosen the gate that judges it.
    params = load_params(PromoteParams, workspace / "params.yaml")
    return decide(in_use, candidate, params, must_beat)


@task(cache_policy=NO_CACHE)
def promote(workspace: str, candidate: str, champion: str) -> None:
    """Keep the model in use as experiment `champion`, then make the candidate's params, model and reports current."""
    root = Path(workspace)
    save_experiment(root, champion)
    apply_experiment(root, candidate, flow_run.id, get_run_logger().info)


def decision_line(decision: Decision, candidate: str) -> str:
    if decision.promoted:
        return f"promotion gate: promoted {candidate}: it is now the model in use"
    reasons = "; ".join(decision.reasons)
    return f"promotion gate: kept the model in use ({reasons}); the candidate is experiment {candidate}"


@task(cache_policy=NO_CACHE)
def publish_decision(decision: Decision, names: dict[str, str], record: Path) -> None:
    """The decision as an artifact, a line in the run's log and a json record beside the candidate's reports."""
    line = decision_line(decision, names["candidate"])
    get_run_logger().info(line)
    if decision.promoted:
        kept = (
            f"The previous model is experiment `{names['champion']}` (`dvc exp apply {names['champion']}` restores it)."
        )
    else:
        kept = f"`dvc exp apply {names['candidate']}` uses the candidate anyway."
    create_markdown_artifact(
        key="promotion-decision",
        markdown=f"# Promotion gate\n\n**{line.split(': ', 1)[1]}**\n\n{kept}\n\n{decision_table(decision)}\n",
        description="The candidate against the model in use on each test set, and the gate's decision.",
    )
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {"promoted": decision.promoted, "reasons": decision.reasons, "rows": decision.rows, **names}, indent=2
        )
        + "\n"
    )
