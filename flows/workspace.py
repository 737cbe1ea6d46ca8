"""Claiming the workspace for a flow run: one run at a time, recovery from a killed run, stages ended on a stop, and
the run ended when the worker that started it dies."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from flows.dvc_stages import end_stage_processes, stages_end_on_stop_signals
from flows.isolated_run import remove_leftover_worktrees
from pipeline.process_guard import describe, watch
from pipeline.workspace_slot import workspace_slot

# The repository the flows run in unless told another: this checkout.
WORKSPACE = Path(__file__).resolve().parents[1]
# Long enough for a tuning run ahead in the queue (about 70 minutes here) and a training run after it.
DEFAULT_WAIT_MINUTES = 240.0
# Prefect's own processes between a worker (or `flows.serve`) and the flow run's code.
PREFECT_LAUNCHERS = ("prefect.engine", "prefect.runner.")


@contextlib.contextmanager
def claimed_workspace(
    workspace: Path, holder: str, wait_minutes: float, echo: Callable[[str], None] = print
) -> Iterator[None]:
    """The workspace's slot (queued behind the run that has it), what a killed run left cleaned up, SIGTERM or
    SIGINT ending the stage processes at once, and the run ended when its worker dies."""
    with (
        workspace_slot(workspace, holder, wait_minutes, echo, recover=remove_leftover_worktrees),
        stages_end_on_stop_signals(),
    ):
        end_with_launcher(echo)
        yield


def launcher() -> psutil.Process | None:
    """The worker (or `flows.serve` process) that started this flow run's process: the first ancestor that is not
    one of Prefect's own launching processes. None for a run started any other way (a terminal, a test)."""
    if "PREFECT__FLOW_RUN_ID" not in os.environ:  # set for the processes a worker or runner starts, only
        return None
    for ancestor in psutil.Process().parents():
        with contextlib.suppress(psutil.Error):
            if not any(marker in " ".join(ancestor.cmdline()) for marker in PREFECT_LAUNCHERS):
                return None if ancestor.pid == 1 else ancestor
    return None


def end_with_launcher(echo: Callable[[str], None]) -> None:
    """A process worker starts each flow run in a session of its own, so stopping the worker (even its whole process
    group) leaves the run going, with nobody to report it. Watch the worker instead: once it is gone, end the stage
    processes and stop this process the way a cancellation does (SIGTERM), which Prefect records as a crash."""
    worker = launcher()
    if worker is None:
        return
    description = describe(worker)
    echo(f"this run ends if the process that started it ends: {description}")

    def stop(_: str) -> None:
        end_stage_processes()
        # The run's output went to the worker: writing it may fail now, and must not stop the run from ending.
        with contextlib.suppress(Exception):
            echo(f"the worker that started this run ({description}) is gone: ending the run")
        os.kill(os.getpid(), signal.SIGTERM)

    watch([(description, worker)], stop)
