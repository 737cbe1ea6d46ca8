"""The training pipeline as a Prefect flow: one task per DVC stage, then the run's metrics and reports as artifacts.

DVC stays the source of truth: each task runs its stage through `dvc repro`, so an unchanged stage is
skipped by DVC and dvc.lock records what ran. Run once with `python -m flows.training [--set key=value]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.dvc_stages import StageFailed, StageRun, has_commit, pipeline_stages, reproduce_stage, save_experiment
from flows.overrides import overridden_params, parse_assignment
from flows.summary import metrics_table, read_metrics, summary_markdown
from pipeline.errors import PipelineError

WORKSPACE = Path(__file__).resolve().parents[1]
# Only a download can fail for a reason that waiting fixes; every other stage fails the same way twice.
RETRIES = {"ingest": 2}
RETRY_DELAY_SECONDS = 30


@task(task_run_name="{stage}", cache_policy=NO_CACHE)
def run_stage(stage: str, workspace: str) -> StageRun:
    """Run one stage through DVC, which skips it when nothing it depends on changed."""
    logger = get_run_logger()
    result = reproduce_stage(stage, Path(workspace), flow_run_id=flow_run.id, echo=logger.info)
    logger.info("%s %s in %.1f s", stage, "ran" if result.ran else "was up to date", result.seconds)
    return result


@task(cache_policy=NO_CACHE)
def publish_reports(workspace: str, stage_runs: list[StageRun], previous: dict | None, experiment: str | None) -> None:
    """The evaluation metrics as a table and the stages, report links and changes as a summary."""
    current = read_metrics(Path(workspace))
    if current is None:
        return
    create_table_artifact(
        key="evaluation-metrics",
        table=metrics_table(current, previous),
        description="Test-set metrics, overall and per class, beside those before this run.",
    )
    create_markdown_artifact(
        key="training-run-summary",
        markdown=summary_markdown(Path(workspace), stage_runs, current, previous, experiment),
        description="What ran, where the reports are, and what changed.",
    )


@flow(name="training-pipeline")
def training_pipeline(overrides: dict[str, Any] | None = None, workspace: str = str(WORKSPACE)) -> list[StageRun]:
    """Run the DVC pipeline stage by stage; `overrides` ({"train.epochs": 20}) change params.yaml for this run only.

    A run with overrides is saved as a DVC experiment named after the flow run, and params.yaml gets its
    original text back, so the next run uses the file as it was. The outputs and dvc.lock stay those of
    this run (as after any `dvc repro`); `dvc exp apply <name>` brings its params back.
    """
    root = Path(workspace)
    overrides = dict(overrides or {})
    if overrides and not has_commit(root):
        raise PipelineError(f"{root}: a run with overrides is saved as a DVC experiment, which needs a git commit")
    previous = read_metrics(root)
    experiment = None
    with overridden_params(root / "params.yaml", overrides):
        stage_runs = [
            run_stage.with_options(retries=RETRIES.get(stage, 0), retry_delay_seconds=RETRY_DELAY_SECONDS)(
                stage, workspace
            )
            for stage in pipeline_stages(root)
        ]
        if overrides:
            experiment = flow_run.name
            save_experiment(root, experiment)
    publish_reports(workspace, stage_runs, previous, experiment)
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
    arguments = parser.parse_args(argv)
    try:
        overrides = dict(parse_assignment(text) for text in arguments.assignments)
        training_pipeline(overrides=overrides, workspace=arguments.workspace)
    except (StageFailed, PipelineError) as error:
        print(f"training-pipeline: error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
