"""The training pipeline as a Prefect flow: one task per DVC stage, then the run's metrics and reports as artifacts.

DVC stays the source of truth: each task runs its stage through `dvc repro --single-item`, so an unchanged stage
is skipped by DVC and dvc.lock records what ran. Run once with `python -m flows.training [--set key=value]`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.command_line import run_flow_command
from flows.dvc_stages import StageRun, has_commit, pipeline_stages, reproduce_stage
from flows.isolated_run import RUN_REPORTS, isolated_run
from flows.overrides import parse_assignment
from flows.summary import metrics_table, read_metrics, summary_markdown
from flows.workspace import DEFAULT_WAIT_MINUTES, claimed_workspace
from pipeline.errors import PipelineError
from pipeline.params_edit import edited_text

WORKSPACE = Path(__file__).resolve().parents[1]


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


@flow(name="training-pipeline")
def training_pipeline(
    overrides: dict[str, Any] | None = None,
    workspace: str = str(WORKSPACE),
    wait_minutes: float = DEFAULT_WAIT_MINUTES,
) -> list[StageRun]:
    """Run the DVC pipeline stage by stage; `overrides` ({"train.epochs": 20}) apply to this run only.

    A run without overrides runs in the workspace, like `dvc repro`. A run with overrides runs in a run workspace
    of its own and is saved as a DVC experiment named after the flow run: the workspace's params.yaml, dvc.lock,
    model and reports stay those of the last run without overrides; the run's reports are kept in
    reports/runs/<run name>/ and `dvc exp apply <run name>` makes it the workspace's. One run at a time per
    workspace: a run waits up to `wait_minutes` for the one before it.
    """
    root = Path(workspace).resolve()
    overrides = dict(overrides or {})
    logger = get_run_logger()
    with claimed_workspace(root, f"flow run '{flow_run.name}'", wait_minutes, logger.info):
        previous = read_metrics(root)
        if not overrides:
            stage_runs = run_stages(root)
            publish_reports(str(root / "reports"), read_metrics(root), stage_runs, previous, None)
            return stage_runs
        if not has_commit(root):
            raise PipelineError(f"{root}: a run with overrides is saved as a DVC experiment, which needs a git commit")
        edited_text(root / "params.yaml", overrides)  # an unknown key fails here, before anything is created
        experiment = flow_run.name
        with isolated_run(root, experiment, overrides, logger.info) as run_workspace:
            logger.info("running with %s in %s", overrides, run_workspace)
            stage_runs = run_stages(run_workspace)
            current = read_metrics(run_workspace)
        publish_reports(str(root / RUN_REPORTS / experiment), current, stage_runs, previous, experiment)
        return stage_runs


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
    parser.add_argument("--workspace", default=str(WORKSPACE), help="the repository to run in (default: this one)")
    parser.add_argument(
        "--wait-minutes",
        type=float,
        default=DEFAULT_WAIT_MINUTES,
        help="how long to wait for a run that is using the workspace (default: %(default)s)",
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
            overrides=overrides, workspace=arguments.workspace, wait_minutes=arguments.wait_minutes
        ),
    )


if __name__ == "__main__":
    main()
