"""One flow run at a time per workspace: a slot held with `flock`, queued, and recovered after a killed run.

The kernel releases a `flock` when its holder dies, even by SIGKILL, so a killed run never keeps the slot. What
a killed run leaves behind (its `dvc` and stage processes, a temporary Prefect server, run workspaces) is found
through a token: the holder puts it in its environment, every process it starts inherits it, and the next holder
ends every process that carries a token of this workspace other than its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil

from pipeline.errors import PipelineError

# Inside .dvc/tmp: per-workspace scratch that git ignores and DVC leaves alone.
RUNS_DIR = Path(".dvc/tmp/flow-runs")
TOKEN_VARIABLE = "FASHION_MNIST_RUN_TOKEN"
POLL_SECONDS = 1.0

_held: dict[Path, int] = {}  # workspace -> nesting depth, so a subflow run in the same process shares its slot


class WorkspaceBusy(PipelineError):
    """The slot stayed taken for the whole wait limit."""


def runs_dir(workspace: Path) -> Path:
    return Path(workspace).resolve() / RUNS_DIR


@contextlib.contextmanager
def workspace_slot(
    workspace: Path,
    holder: str,
    wait_minutes: float,
    echo: Callable[[str], None] = print,
    recover: Callable[[Path], None] = lambda workspace: None,
) -> Iterator[None]:
    """Hold the workspace's slot for the block, waiting up to `wait_minutes` for the run that has it.

    On taking the slot, the processes a killed earlier run left are ended (`reap_leftovers`) and then `recover`
    cleans up the rest of what it left. Taking it again in the same process (a subflow) just nests.
    """
    workspace = Path(workspace).resolve()
    if workspace in _held:
        _held[workspace] += 1
        try:
            yield
        finally:
            _held[workspace] -= 1
        return
    directory = runs_dir(workspace)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "workspace.lock", "a+") as lock_file:
        wait_for_slot(lock_file, directory / "holder.json", workspace, wait_minutes, echo)
        token = f"{workspace}#{uuid.uuid4().hex}"
        reap_leftovers(workspace, token, echo)
        recover(workspace)
        record = {"holder": holder, "pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
        (directory / "holder.json").write_text(json.dumps(record) + "\n")
        previous_token = os.environ.get(TOKEN_VARIABLE)
        os.environ[TOKEN_VARIABLE] = token
        _held[workspace] = 1
        try:
            yield
        finally:
            del _held[workspace]
            restore_variable(TOKEN_VARIABLE, previous_token)
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def wait_for_slot(lock_file, holder_file: Path, workspace: Path, wait_minutes: float, echo) -> None:
    deadline = time.monotonic() + wait_minutes * 60
    announced = False
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if not announced:
            echo(f"waiting for the workspace {workspace}: {describe_holder(holder_file)} is using it")
            announced = True
        if time.monotonic() >= deadline:
            raise WorkspaceBusy(
                f"{workspace}: still in use by {describe_holder(holder_file)} after waiting {wait_minutes:g} min"
            )
        time.sleep(POLL_SECONDS)


def describe_holder(holder_file: Path) -> str:
    try:
        record = json.loads(holder_file.read_text())
    except (OSError, ValueError):
        return "another run"
    return f"{record['holder']} (pid {record['pid']}, since {record['since']})"


def reap_leftovers(workspace: Path, own_token: str, echo: Callable[[str], None]) -> None:
    """End the processes that earlier runs of this workspace started and did not end (they were killed)."""
    prefix = f"{workspace}#"
    leftovers = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            token = process.environ().get(TOKEN_VARIABLE, "")
            if token.startswith(prefix) and token != own_token and process.pid != os.getpid():
                leftovers.append(process)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            echo(f"ending pid {process.pid} ({' '.join(process.cmdline()[:4])}), left by a killed run")
            process.kill()
    psutil.wait_procs(leftovers, timeout=10)


def restore_variable(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
