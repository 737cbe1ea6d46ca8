"""One training at a time across every machine: a global concurrency limit on the Prefect server, taken by every flow
that trains (the training pipeline, the monitor's retraining, the tuning pipeline), then the workspace's own slot.

The limit comes first, the slot second, everywhere: a run waiting for another machine's training holds nothing on its
own machine, so a drift check there goes ahead, and no two runs can each hold what the other waits for.

A run that waited may find the team has moved on: a worker's run (`update_from_team`) brings its clone level with
the git and DVC remotes once it holds both (pipeline/team/sync.py), so it never trains on a stale clone.

The limit's slot is leased: the holder renews the lease while it lives, and the server frees the slot of a holder
that died (a killed worker's machine) once the lease runs out, so a dead run never blocks the schedule for good.
Without the limit on the server (a temporary server, or before `make deploy`) one training at a time holds per
machine only, through the workspace slot, and the run says so.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from flows.workspace import claimed_workspace
from pipeline.errors import PipelineError
from pipeline.team.sync import catch_up

TRAINING_LIMIT = "fashion-mnist-training"
# How long the server keeps a slot whose holder stopped renewing it: a dead worker's slot is free this long after.
LEASE_SECONDS = float(os.environ.get("FASHION_MNIST_TRAINING_LEASE_SECONDS", 120))

_turns: set[Path] = set()  # workspaces whose turn this process holds: a subflow's training shares it


def team_limit_exists() -> bool:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(TRAINING_LIMIT)
        except ObjectNotFound:
            return False
    return True


@contextlib.contextmanager
def team_limit(wait_minutes: float, echo: Callable[[str], None]) -> Iterator[None]:
    if not team_limit_exists():
        echo(
            f"no global concurrency limit '{TRAINING_LIMIT}' on this Prefect server (`make deploy` creates it): "
            "one training at a time holds on this machine only"
        )
        yield
        return
    echo(f"taking the team's training turn (global concurrency limit '{TRAINING_LIMIT}')")
    try:
        with concurrency(
            TRAINING_LIMIT, occupy=1, timeout_seconds=wait_minutes * 60, lease_duration=LEASE_SECONDS, strict=True
        ):
            echo("holding the team's training turn")
            yield
    except TimeoutError:
        raise PipelineError(
            f"global concurrency limit '{TRAINING_LIMIT}': another machine's training still holds it after "
            f"{wait_minutes:g} min"
        ) from None


@contextlib.contextmanager
def training_turn(
    workspace: Path, holder: str, wait_minutes: float, update_from_team: bool, echo: Callable[[str], None]
) -> Iterator[None]:
    """The team's training turn, then the workspace's slot, then (`update_from_team`) the clone caught up."""
    if workspace in _turns:
        yield
        return
    with team_limit(wait_minutes, echo), claimed_workspace(workspace, holder, wait_minutes, echo):
        _turns.add(workspace)
        try:
            if update_from_team:
                catch_up(workspace, echo)
            yield
        finally:
            _turns.discard(workspace)
