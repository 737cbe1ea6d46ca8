"""One run at a time per workspace, with real processes: a second run waits, a wait limit is one line, a killed
holder frees the slot and the next holder ends what it left running."""

import logging
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from flows.command_line import KnownFailureFilter
from flows.dvc_stages import StageFailed
from pipeline.workspace_slot import TOKEN_VARIABLE, WorkspaceBusy, runs_dir, workspace_slot
from tests.support.workspaces import REPO_ROOT

# A run holding the slot: it starts a child (as a run starts `dvc repro`), says so, and runs until it is ended.
HOLDER = """
import subprocess, sys, time
from pathlib import Path
from pipeline.workspace_slot import workspace_slot
with workspace_slot(Path(sys.argv[1]), "holder (test)", wait_minutes=0):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(child.pid, flush=True)
    time.sleep(float(sys.argv[2]))
"""


def start_holder(workspace, seconds: float) -> tuple[subprocess.Popen, int]:
    """The holder process and the pid of the child it started, once it holds the slot and the child runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workspace), str(seconds)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    child = int(holder.stdout.readline())
    # Popen returns once the child's exec has begun, and the kernel shows its new environment a moment later: on a
    # busy machine a holder killed at once leaves a child whose environment (and so its token) cannot be read yet.
    deadline = time.monotonic() + 30
    while TOKEN_VARIABLE not in psutil.Process(child).environ() and time.monotonic() < deadline:
        time.sleep(0.01)
    return holder, child


def ended(process: psutil.Process) -> bool:
    """Gone, or a zombie its new parent has not collected yet (a container's init may never collect it). Asked of the
    process object taken while it ran: its pid alone may already belong to a new process (pids are reused, and a busy
    machine with 32,768 of them, threads included, wraps around quickly)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_second_run_waits_and_gives_up_at_its_limit_naming_the_holder(tmp_path):
    holder, child = start_holder(tmp_path, 600)
    said = []
    start = time.monotonic()
    try:
        with pytest.raises(WorkspaceBusy) as raised, workspace_slot(tmp_path, "second", 0.03, said.append):
            pass
    finally:
        holder.kill()
        holder.wait()
        psutil.Process(child).kill()
    assert time.monotonic() - start >= 1.5
    assert said == [
        f"waiting for the workspace {tmp_path.resolve()}: holder (test) (pid {holder.pid}, since "
        + said[0].split("since ")[1]
    ]
    message = str(raised.value)
    assert "\n" not in message and f"holder (test) (pid {holder.pid}" in message and "after waiting 0.03 min" in message


def test_a_waiting_run_starts_when_the_holder_finishes(tmp_path):
    holder, child = start_holder(tmp_path, 3)
    child_process = psutil.Process(child)
    said = []
    holding_since = time.monotonic()
    with workspace_slot(tmp_path, "second", 1, said.append):
        # It had to wait for the holder to let go (the holder's process may still be exiting).
        assert time.monotonic() - holding_since >= 2.5
    assert holder.wait(timeout=30) == 0
    assert said[0].startswith("waiting for the workspace")
    # The child it left running is ended too: nothing of an earlier run outlives the next run's start.
    assert f"ending pid {child}" in said[1] and ended(child_process)


def test_a_killed_holder_frees_the_slot_and_the_next_run_ends_what_it_left(tmp_path):
    holder, child = start_holder(tmp_path, 600)
    os.kill(holder.pid, signal.SIGKILL)  # SIGKILL cannot be trapped: its child lives on, an orphan
    holder.wait()
    child_process = psutil.Process(child)
    assert child_process.is_running()
    said = []
    with workspace_slot(tmp_path, "next", 0, said.append):
        assert ended(child_process), said
        assert os.environ[TOKEN_VARIABLE].startswith(f"{tmp_path.resolve()}#")
    assert any(f"ending pid {child}" in line for line in said)
    assert TOKEN_VARIABLE not in os.environ
    assert "next" in (runs_dir(tmp_path) / "holder.json").read_text()


def test_a_subflow_in_the_same_process_shares_the_slot(tmp_path):
    with workspace_slot(tmp_path, "outer", 0), workspace_slot(tmp_path, "inner", 0):
        token = os.environ[TOKEN_VARIABLE]
    assert TOKEN_VARIABLE not in os.environ
    with workspace_slot(tmp_path, "again", 0):
        assert os.environ[TOKEN_VARIABLE] != token


def test_tracebacks_of_known_failures_stay_off_the_terminal():
    def record(error: Exception | None) -> logging.LogRecord:
        exc_info = (type(error), error, None) if error else None
        return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "failed", (), exc_info)

    keep = KnownFailureFilter().filter
    assert not keep(record(StageFailed("train: error: x")))
    assert keep(record(RuntimeError("a bug, whose traceback a person needs")))
    assert keep(record(None))
