"""Register the scheduled deployments with the Prefect server and run their flow runs from this process.

    prefect server start                     # in one terminal (SQLite under .prefect/)
    python -m flows.serve                    # in another, from the repository root

The server creates the scheduled runs; this process picks them up and runs them in this workspace.
Stop it with Ctrl+C (its deployments' schedules are paused until it serves them again).
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

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
    serve(*deployments())


if __name__ == "__main__":
    main()
