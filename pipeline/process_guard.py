"""A stage process ends when what started it dies, and refuses a state folder another live process holds.

`dvc repro` runs a stage as `sh -c "python -m pipeline.stages.<stage> ..."`. When `dvc`, or a flow run above it, is
killed (`kill -9`, an out-of-memory kill, a worker's machine stopping), nothing tells the stage: it goes on with
parent 1, and the next run starts a second copy on the same state. So every stage (pipeline/cli.py) watches the
processes it was started by, once a second, and exits when one of them is gone:

- its ancestors up to the nearest `dvc` process, when `dvc` started it;
- the processes named in FASHION_MNIST_OWNER_PIDS, which a flow run sets for the commands it starts
  (flows/dvc_stages.py), so a killed flow process ends its stages even while `dvc` itself is alive.

A watch rather than the parent-death signal (PR_SET_PDEATHSIG): that signal fires for the stage's direct parent
only, here a shell that outlives `dvc`, and from a thread's exit as well as the process's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from pipeline.errors import PipelineError

OWNERS_VARIABLE = "FASHION_MNIST_OWNER_PIDS"
WATCH_SECONDS = 1.0

_watching = threading.Event()  # one watch per process, however many commands it runs (tests run several)


def process_key(process: psutil.Process) -> str:
    """`pid:start time`, so a pid the kernel reuses for a new process is not taken for the one that died."""
    return f"{process.pid}:{process.create_time():.2f}"


def owner_environment(environment: dict[str, str]) -> dict[str, str]:
    """`environment` with this process added to the owners its commands watch."""
    owners = [key for key in environment.get(OWNERS_VARIABLE, "").split(",") if key]
    own = process_key(psutil.Process())
    return {**environment, OWNERS_VARIABLE: ",".join([*owners, own] if own not in owners else owners)}


def is_dvc(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        command = process.cmdline()
        return any(Path(part).name == "dvc" for part in command[:3]) or command[1:3] == ["-m", "dvc"]
    return False


def starters() -> list[psutil.Process]:
    """This process's ancestors up to and including the nearest `dvc`; none when no `dvc` started it (a command
    typed in a terminal, or a service under nohup, lives as long as it is let)."""
    ancestors = psutil.Process().parents()
    for index, ancestor in enumerate(ancestors):
        if is_dvc(ancestor):
            return ancestors[: index + 1]
    return []


def owners() -> list[tuple[str, psutil.Process | None]]:
    """The processes FASHION_MNIST_OWNER_PIDS names, None for one already gone (or its pid reused)."""
    found = []
    for key in os.environ.get(OWNERS_VARIABLE, "").split(","):
        if not key:
            continue
        try:
            process = psutil.Process(int(key.split(":")[0]))
            found.append((key, process if process_key(process) == key else None))
        except (psutil.Error, ValueError):
            found.append((key, None))
    return found


def describe(process: psutil.Process) -> str:
    """`pid 123 (python -m pipeline.stages.tune)`: the program and its first two arguments (a path by its name), on
    one line."""
    with contextlib.suppress(psutil.Error):
        parts = [Path(part).name if part.startswith("/") else " ".join(part.split())[:60] for part in process.cmdline()]
        command = " ".join(parts[:3])
        return f"pid {process.pid} ({command})"
    return f"pid {process.pid}"


def first_gone(watched: list[tuple[str, psutil.Process | None]]) -> str | None:
    for description, process in watched:
        if process is None or not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            return description
    return None


def watched_processes() -> list[tuple[str, psutil.Process | None]]:
    watched = [(describe(process), process) for process in starters() if process.pid != 1]
    watched += [(f"the flow run process pid {key.split(':')[0]}", process) for key, process in owners()]
    return watched


def end_with_starters(name: str) -> None:
    """From now on, end this process within a second of a process that started it dying (see the module's doc)."""

    def stop(description: str) -> None:
        print(f"{name}: error: {description} ended, so this process stops too", file=sys.stderr, flush=True)
        os._exit(1)

    watch(watched_processes(), stop)


def watch(watched: list[tuple[str, psutil.Process | None]], on_gone: Callable[[str], None]) -> None:
    """Call `on_gone(description)` from a daemon thread once one of `watched` is gone. One watch per process,
    however many commands it runs in turn (the tests run several)."""
    if _watching.is_set() or not watched:
        return
    _watching.set()

    def poll() -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                gone = first_gone(watched)
                if gone is not None:
                    on_gone(gone)
                    return
            time.sleep(WATCH_SECONDS)

    threading.Thread(target=poll, name="watch-starters", daemon=True).start()


@contextlib.contextmanager
def held_state_folder(folder: Path) -> Iterator[None]:
    """Hold `folder` (a search state, a checkpoint) for the block, or refuse in one line naming the live process
    that holds it. The lock is a file outside the folder, which a stage may delete and recreate; the kernel releases
    it when its holder dies, however it dies."""
    digest = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"fashion-mnist-state-{digest}.lock"
    with open(lock_path, "a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            raise PipelineError(f"{folder}: in use by {holder}; wait for it to finish or end it") from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(describe(psutil.Process()))
        lock_file.flush()
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
