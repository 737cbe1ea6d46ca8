"""The promotion gate's steps in a flow: score the model in use, decide, promote, and say why.

The candidate trains in an isolated run (flows/isolated_run.py) saved as a DVC experiment; promoting saves the
model in use as an experiment first and then applies the candidate's (flows/apply_experiment.py): params.yaml,
dvc.lock, the model and every report become the candidate's, registered as the next version (flows/sharing.py),
and `fashion-team rollback` brings the previous ones back. A refused candidate changes nothing in the workspace;
its experiment and reports stay for a person to look at (reports/runs/<experiment>/) or apply anyway.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.artifacts import DRIFT_CHECKS, MODEL, SLICES
from flows.dvc_stages import StageFailed, apply_experiment, run_dvc, run_streaming, save_experiment
from flows.isolated_run import RUN_REPORTS
from flows.summary import read_metrics
from pipeline.drift.history import append_check, read_history
from pipeline.evaluation.promotion import Decision, PromoteParams, decide, decision_table
from pipeline.params import load_params, read_section
from pipeline.workspace_slot import runs_dir

APPLY = "`python -m flows.apply_experiment"  # `dvc exp apply`, for a workspace where tuning never ran too


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
        command = [sys.executable, "-m", "pipeline.commands.score_sources", "--model", str(root / MODEL)]
        command += ["--slices", slices, "--out", str(out)]
        run_streaming(command, root, "score_sources", str(flow_run.id), get_run_logger().info)
        return json.loads(out.read_text())


# What decides the test sets: a candidate with other values here is measured on other images.
TEST_SET_PARAMS = (("ingest", None), ("preprocess", ("seed", "source_test_images", "source_test_share")))


def test_sets_differ(workspace: Path, candidate_workspace: Path) -> list[str]:
    """The params that make the candidate's test sets other than the model in use's (a run's overrides)."""
    differ = []
    for section, keys in TEST_SET_PARAMS:
        ours, theirs = (read_section(section, root / "params.yaml") for root in (workspace, candidate_workspace))
        for key in keys or sorted(set(ours) | set(theirs)):
            if ours.get(key) != theirs.get(key):
                differ.append(f"{section}.{key}")
    return differ


def model_changed(workspace: Path, candidate_workspace: Path) -> bool:
    """Whether the candidate's model differs from the model in use, by the hashes their dvc.lock files record."""

    def model_hash(root: Path) -> str | None:
        lock = root / "dvc.lock"
        stages = yaml.safe_load(lock.read_text()).get("stages", {}) if lock.exists() else {}
        outs = stages.get("train", {}).get("outs", [])
        return next((out.get("md5") for out in outs if out.get("path") == str(MODEL)), None)

    return model_hash(candidate_workspace) != model_hash(workspace)


def gate(workspace: Path, in_use: dict, candidate_workspace: Path, must_beat: bool) -> Decision:
    """Compare the candidate trained in `candidate_workspace` with the model in use."""
    differ = test_sets_differ(workspace, candidate_workspace)
    if differ:
        reason = f"its test sets are not the model in use's ({', '.join(differ)} differ), so they cannot be compared"
        return Decision(promoted=False, reasons=[reason])
    metrics = read_metrics(candidate_workspace)
    candidate = {"accuracy": metrics["accuracy"], "sources": metrics.get("sources", {})}
    in_use = {**in_use, "sources": {}}
    if candidate["sources"]:
        in_use["sources"] = score_model_in_use(str(workspace), str(candidate_workspace / SLICES))
    # The workspace's own margins: a candidate's overrides must not loosen the gate that judges it.
    params = load_params(PromoteParams, workspace / "params.yaml")
    return decide(in_use, candidate, params, must_beat)


def adopt_drift_checks(workspace: Path, candidate_reports: Path) -> None:
    """The drift checks the candidate's DVC drift stage made (kept with its reports) join the workspace's, so the
    promoted drift page and index link checks that are there."""
    ours, theirs = workspace / DRIFT_CHECKS, candidate_reports / "drift" / "checks"
    # Applying the candidate brought its history (git carries it) but not the folders of its checks.
    known = {entry["id"] for entry in read_history(ours)}
    for entry in read_history(theirs):
        source, target = theirs / entry["id"], ours / entry["id"]
        if not source.is_dir():
            continue
        if not target.exists():
            shutil.copytree(source, target)
        if entry["id"] not in known:
            append_check(ours, entry)


@task(cache_policy=NO_CACHE)
def promote(workspace: str, candidate: str, champion: str) -> None:
    """Keep the model in use as experiment `champion`, then make the candidate's params, model and reports current."""
    root, echo = Path(workspace), get_run_logger().info
    save_experiment(root, champion)
    try:
        apply_experiment(root, candidate, flow_run.id, echo)
    except StageFailed:
        # Whatever the failed apply changed, the model in use comes back whole.
        apply_experiment(root, champion, flow_run.id, echo)
        raise
    adopt_drift_checks(root, root / RUN_REPORTS / candidate)


def decision_line(decision: Decision, candidate: str) -> str:
    if decision.promoted:
        return f"promotion gate: promoted {candidate}: it is now the model in use"
    reasons = "; ".join(decision.reasons)
    return f"promotion gate: kept the model in use ({reasons}); the candidate is experiment {candidate}"


@task(cache_policy=NO_CACHE)
def publish_decision(decision: Decision, names: dict[str, str], batches: list[str], record: Path) -> None:
    """The decision as an artifact, a line in the run's log and a json record beside the candidate's reports (with
    the accepted `batches` the candidate trained on)."""
    line = decision_line(decision, names["candidate"])
    get_run_logger().info(line)
    if decision.promoted:
        kept = f"The previous model is experiment `{names['champion']}`; `fashion-team rollback` restores it."
    else:
        kept = f"{APPLY} {names['candidate']}` uses the candidate anyway."
    create_markdown_artifact(
        key="promotion-decision",
        markdown=f"# Promotion gate\n\n**{line.split(': ', 1)[1]}**\n\n{kept}\n\n{decision_table(decision)}\n",
        description="The candidate against the model in use on each test set, and the gate's decision.",
    )
    record.parent.mkdir(parents=True, exist_ok=True)
    decided_at = datetime.now(UTC).isoformat(timespec="seconds")
    record.write_text(
        json.dumps({**asdict(decision), **names, "batches": batches, "decided_at": decided_at}, indent=2) + "\n"
    )


def drop_refused_experiments(workspace: Path, keep: int, echo: Callable[[str], None]) -> list[str]:
    """Remove the DVC experiments of refused candidates but the newest `keep`; their decision records stay, marked
    so. Returns the experiments removed."""
    records = [(json.loads(path.read_text()), path) for path in (workspace / RUN_REPORTS).glob("*/promotion.json")]
    refused = sorted(
        ((decision, path) for decision, path in records if not decision["promoted"]),
        key=lambda pair: pair[0].get("decided_at", ""),  # records from before it was kept sort oldest
    )
    removed = []
    for decision, path in refused[: max(len(refused) - keep, 0)]:
        if decision.get("experiment_removed"):
            continue
        run_dvc(["exp", "remove", decision["candidate"]], workspace, "exp remove", echo=lambda line: None)
        path.write_text(json.dumps({**decision, "experiment_removed": True}, indent=2) + "\n")
        removed.append(decision["candidate"])
    if removed:
        names = ", ".join(removed)
        echo(f"removed {len(removed)} refused candidate(s)' experiments, keeping the newest {keep}: {names}")
    return removed


def refused_batches(workspace: Path) -> set[str]:
    """Accepted batches a refused candidate has trained on already: retraining on them again, with nothing else
    new, would give the same candidate (seeded training), refused again."""
    refused = set()
    for record in (workspace / RUN_REPORTS).glob("*/promotion.json"):
        decision = json.loads(record.read_text())
        if not decision["promoted"]:
            refused.update(decision.get("batches", []))
    return refused
