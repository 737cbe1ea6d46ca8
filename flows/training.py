"""The training pipeline as a Prefect flow: one task per DVC stage, the promotion gate, the run's metrics and reports
as artifacts.

DVC stays the source of truth: each task runs its stage through `dvc repro --single-item`, so an unchanged stage
is skipped by DVC and dvc.lock records what ran. Run once with `python -m flows.training [--set key=value]`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.artifacts import PREPARED_POOL_RECORD
from flows.command_line import add_workspace_options, one_line_failures, run_flow_command
from flows.dvc_stages import StageRun, has_commit, pipeline_stages, reproduce_stage
from flows.isolated_run import RUN_REPORTS, isolated_run
from flows.notices import candidate_refused
from flows.overrides import parse_assignment
from flows.promotion import (
    decision_line,
    drop_refused_experiments,
    gate,
    model_changed,
    model_in_use,
    promote,
    publish_decision,
)
from flows.sharing import commit_records, register_model_in_use, share_results
from flows.summary import metrics_table, read_metrics, summary_markdown
from flows.training_turn import training_turn
from flows.workspace import DEFAULT_WAIT_MINUTES, WORKSPACE
from pipeline.data.pool import read_pool_record
from pipeline.errors import PipelineError
from pipeline.evaluation.promotion import Decision, PromoteParams
from pipeline.params import load_params
from pipeline.params_edit import edited_text


@task(task_run_name="{stage}", cache_policy=NO_CACHE)
def run_stage(stage: str, workspace: str) -> StageRun:
    """Run one stage through DVC, which skips it when nothing it depends on changed.

    No retries: the one failure that waiting can fix, a download, is retried inside the ingest stage; every other
    failure (a broken params.yaml, a failed expectation) would fail the same way again.
    """
    logger = get_run_logger()
    result = reproduce_stage(stage, Path(workspace), flow_run_id=flow_run.id, echo=logger.info)
    logger.info("%s %s in %.1f s", stage, "ran" if result.ran else "was up to date", result.seconds)
    return result


@task(cache_policy=NO_CACHE)
def publish_reports(
    reports_dir: str, current: dict | None, stage_runs: list[StageRun], previous: dict | None, experiment: str | None
) -> None:
    """The evaluation metrics as a table and the stages, report links and changes as a summary."""
    if current is None:
        return
    create_table_artifact(
        key="evaluation-metrics",
        table=metrics_table(current, previous),
        description="Test-set metrics, overall and per class, beside those of the model in use before this run.",
    )
    create_markdown_artifact(
        key="training-run-summary",
        markdown=summary_markdown(Path(reports_dir), stage_runs, current, previous, experiment),
        description="What ran, where the reports are, and what changed.",
    )


def run_stages(workspace: Path) -> list[StageRun]:
    return [run_stage(stage, str(workspace)) for stage in pipeline_stages(workspace)]


@dataclass
class CandidateRun:
    stage_runs: list[StageRun]
    metrics: dict | None  # the candidate's evaluation
    decision: Decision | None  # None when not gated, or when nothing was retrained


def candidate_run(
    root: Path,
    overrides: dict[str, Any],
    experiment: str,
    gated: bool,
    must_beat: bool = False,
    champion: str | None = None,
) -> CandidateRun:
    """Train in a run workspace of its own, saved as experiment `experiment`; when `gated`, the promotion gate then
    decides whether it replaces the model in use (flows/promotion.py), which is kept as experiment `champion`
    (default: champion-<experiment>) when it does."""
    logger = get_run_logger()
    previous, in_use = read_metrics(root), model_in_use(root)
    with isolated_run(root, experiment, overrides, logger.info) as run_workspace:
        logger.info("running with %s in %s", overrides or "the workspace's params", run_workspace)
        stage_runs = run_stages(run_workspace)
        current = read_metrics(run_workspace)
        # With nothing new (same code, params and data), the model is the same: nothing to decide.
        retrained = model_changed(root, run_workspace)
        decision = gate(root, in_use, run_workspace, must_beat) if gated and retrained and in_use else None
        batches = [entry["batch"] for entry in read_pool_record(run_workspace / PREPARED_POOL_RECORD)]
    reports = root / RUN_REPORTS / experiment
    publish_reports(str(reports), current, stage_runs, previous, experiment)
    if gated and not retrained:
        logger.info("promotion gate: nothing new to train on (the model came out the same); the model in use stays")
    if decision is not None:
        names = {"candidate": experiment, "champion": champion or f"champion-{experiment}"}
        if decision.promoted:
            promote(str(root), names["candidate"], names["champion"])
        publish_decision(decision, names, batches, reports / "promotion.json")
        if decision.promoted:
            register_model_in_use(str(root), decision_line(decision, experiment), [str(reports / "promotion.json")])
        else:
            commit_records(str(root), [str(reports / "promotion.json")], f"Refused candidate {experiment}")
            candidate_refused(decision, decision_line(decision, experiment), experiment)
        keep = load_params(PromoteParams, root / "params.yaml").keep_refused_experiments
        drop_refused_experiments(root, keep, logger.info)
        share_results(str(root))
    return CandidateRun(stage_runs, current, decision)


@flow(name="training-pipeline")
@one_line_failures("training-pipeline")
def training_pipeline(
    overrides: dict[str, Any] | None = None,
    workspace: str = str(WORKSPACE),
    wait_minutes: float = DEFAULT_WAIT_MINUTES,
    promote_if_better: bool = False,
    update_from_team: bool = False,
) -> list[StageRun]:
    """Run the DVC pipeline stage by stage; `overrides` ({"train.epochs": 20}) apply to this run only.

    With no model in use yet, the run is the workspace's own, like `dvc repro`. Once there is one, a run trains a
    candidate in a run workspace of its own, saved as a DVC experiment named after the flow run, and the promotion
    gate (params.yaml's promote section) decides whether it replaces the model in use; if not, the workspace's
    params.yaml, dvc.lock, model and reports stay byte-identical. A run with overrides is an experiment only, the
    workspace untouched, unless `promote_if_better` sends it through the gate too. Either way the run's reports
    are kept in reports/runs/<run name>/ and `python -m flows.apply_experiment <run name>` makes it the workspace's.
    One training at a time per team and one run at a time per workspace (flows/training_turn.py): a run waits up to
    `wait_minutes` for the one before it. `update_from_team` (a worker's runs, prefect.yaml) brings the clone level
    with the team's git and DVC remotes once the run's turn comes.
    """
    root = Path(workspace).resolve()
    overrides = dict(overrides or {})
    logger = get_run_logger()
    with training_turn(root, f"flow run '{flow_run.name}'", wait_minutes, update_from_team, logger.info):
        if not overrides and model_in_use(root) is None:
            previous = read_metrics(root)
            stage_runs = run_stages(root)
            publish_reports(str(root / "reports"), read_metrics(root), stage_runs, previous, None)
            if has_commit(root) and model_in_use(root) is not None:
                register_model_in_use(str(root), "the first model: there was none in use to compare it with", [])
                share_results(str(root))
            return stage_runs
        if not has_commit(root):
            raise PipelineError(f"{root}: a run beside the model in use is a DVC experiment, which needs a git commit")
        edited_text(root / "params.yaml", overrides)  # an unknown key fails here, before anything is created
        gated = not overrides or promote_if_better
        return candidate_run(root, overrides, flow_run.name, gated).stage_runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.training", description=training_pipeline.__doc__)
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params.yaml key for this run, e.g. --set train.epochs=20 (repeatable)",
    )
    add_workspace_options(parser)
    parser.add_argument(
        "--promote",
        action="store_true",
        help="with --set: make the run the model in use if it passes the promotion gate (default: an experiment only)",
    )
    arguments = parser.parse_args(argv)
    try:
        overrides = dict(parse_assignment(text) for text in arguments.assignments)
    except PipelineError as error:
        parser.error(str(error))
    run_flow_command(
        "training-pipeline",
        arguments.workspace,
        arguments.wait_minutes,
        lambda: training_pipeline(
            overrides=overrides,
            workspace=arguments.workspace,
            wait_minutes=arguments.wait_minutes,
            promote_if_better=arguments.promote,
        ),
    )


if __name__ == "__main__":
    main()
