"""Register the scheduled deployments with the Prefect server and run their flow runs from this process.

    prefect server start                                  # in one terminal (SQLite under .prefect/)
    export PREFECT_API_URL=http://127.0.0.1:4200/api      # in another, from the repository root
    python -m flows.serve

The server creates the scheduled runs; this process picks them up and runs them in this workspace.
Stop it with Ctrl+C (its deployments' schedules are paused until it serves them again).
"""

from __future__ import annotations

import sys

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import PREFECT_API_URL

from flows.training import training_pipeline

# Cron expressions in UTC.
TRAINING_SCHEDULE = "0 3 * * 1"  # weekly, Monday 03:00


def deployments() -> list[RunnerDeployment]:
    return [
        training_pipeline.to_deployment(
            name="training-pipeline",
            cron=TRAINING_SCHEDULE,
            description="Runs the DVC pipeline stage by stage; unchanged stages are skipped by DVC.",
            tags=["fashion-mnist", "training"],
            # Runs share one workspace (params.yaml, dvc.lock, outputs): one at a time.
            concurrency_limit=1,
        ),
    ]


def main() -> None:
    if not PREFECT_API_URL.value():
        # Without a server Prefect would start a temporary one, which never creates scheduled runs.
        sys.exit(
            "flows.serve: error: PREFECT_API_URL is not set; start `prefect server start` and "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api` first"
        )
    serve(*deployments())


if __name__ == "__main__":
    main()
