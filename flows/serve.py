"""Register the deployments (two scheduled, one on demand) with the Prefect server and run their flow runs here.

    prefect server start                                  # in one terminal (SQLite under .prefect/)
    export PREFECT_API_URL=http://127.0.0.1:4200/api      # in another, from the repository root
    python -m flows.serve

The server creates the scheduled runs; this process picks them up and runs them in this workspace. The daily drift
check looks at what the prediction service (fashion-serve) kept since the last check; `--batch <folder or file>`
points it at a batch of your own instead.
Stop it with Ctrl+C (its deployments' schedules are paused until it serves them again).
"""

from __future__ import annotations

import argparse
import sys

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import PREFECT_API_URL

from flows.monitoring import drift_monitor
from flows.training import training_pipeline
from flows.tuning import tuning_pipeline

# Cron expressions in UTC.
TRAINING_SCHEDULE = "0 3 * * 1"  # weekly, Monday 03:00
DRIFT_SCHEDULE = "0 6 * * *"  # daily, 06:00


def deployments(batch: str | None = None) -> list[RunnerDeployment]:
    return [
        training_pipeline.to_deployment(
            name="training-pipeline",
            cron=TRAINING_SCHEDULE,
            description="Runs the DVC pipeline stage by stage; unchanged stages are skipped by DVC.",
            tags=["fashion-mnist", "training"],
            # Runs share one workspace (params.yaml, dvc.lock, outputs): one at a time.
            concurrency_limit=1,
        ),
        drift_monitor.to_deployment(
            name="drift-monitor",
            cron=DRIFT_SCHEDULE,
            description="Checks the prediction service's traffic (or a batch) for drift; retrains on drift.",
            tags=["fashion-mnist", "monitoring"],
            parameters={"batch": batch} if batch else {},
            concurrency_limit=1,
        ),
        # No schedule: a search takes up to tune.max_minutes; started by hand or from the UI.
        tuning_pipeline.to_deployment(
            name="tuning-pipeline",
            description="Tunes, trains the best configuration as a challenger, promotes it if it beats the model.",
            tags=["fashion-mnist", "tuning"],
            concurrency_limit=1,
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch",
        help="what drift-monitor checks daily, e.g. a folder new images land in (default: the traffic fashion-serve "
        "kept since the last check)",
    )
    arguments = parser.parse_args(argv)
    if not PREFECT_API_URL.value():
        # Without a server Prefect would start a temporary one, which never creates scheduled runs.
        sys.exit(
            "flows.serve: error: PREFECT_API_URL is not set; start `prefect server start` and "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api` first"
        )
    serve(*deployments(arguments.batch))


if __name__ == "__main__":
    main()
