"""Claiming the workspace for a flow run: one run at a time, recovery from a killed run, stages ended on a stop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from flows.dvc_stages import stages_end_on_stop_signals
from flows.isolated_run import remove_leftover_worktrees
from pipeline.workspace_slot import workspace_slot

# The repository the flows run in unless told another: this checkout.
WORKSPACE = Path(__file__).resolve().parents[1]
# Long enough for a tuning run ahead in the queue (about 70 minutes here) and a training run after it.
DEFAULT_WAIT_MINUTES = 240.0


@contextlib.contextmanager
def claimed_workspace(
    workspace: Path, holder: str, wait_minutes: float, echo: Callable[[str], None] = print
) -> Iterator[None]:
    """The workspace's slot (queued behind the run that has it), what a killed run left cleaned up, and SIGTERM or
    SIGINT ending the stage processes at once."""
    with (
        workspace_slot(workspace, holder, wait_minutes, echo, recover=remove_leftover_worktrees),
        stages_end_on_stop_signals(),
    ):
        yield
