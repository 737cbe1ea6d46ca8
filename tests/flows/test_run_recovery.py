"""Runs as a person starts them from a terminal: real processes, a real (temporary) Prefect server on loopback,
real DVC, the real data and a model that trains in seconds per epoch. Two runs at once queue; a run killed at a
seeded random point of its train stage is recovered by the next run; SIGTERM ends the stage processes at once."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import yaml

from pipeline.workspace_slot import TOKEN_VARIABLE

pytestmark = pytest.mark.slow

KILL_SEED = 18
# A run with overrides trains this many epochs on the small data (a fraction of a second each), so that its train
# stage is still running at the seeded random point the kill lands on, up to 2 s after its first epoch.
EPOCHS = 20


class Run:
    """`python -m flows.training ...` in the background, its output collected line by line as it comes."""

    def __init__(self, workspace, *arguments: str):
        environment = {**os.environ, "PREFECT_HOME": str(workspace / ".prefect"), "PYTHONUNBUFFERED": "1"}
        environment.pop("PREFECT_API_URL", None)  # a temporary server of its own, as on a person's terminal
        environment.pop(TOKEN_VARIABLE, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flows.training", "--workspace", str(workspace), *arguments],
            cwd=workspace,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None or any(text in line for line in self.lines), self.output
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{self.output}"
            time.sleep(0.2)

    def finish(self, timeout: float = 900) -> int:
        code = self.process.wait(timeout)
        time.sleep(0.5)  # the last lines
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def processes_of(workspace) -> list[psutil.Process]:
    """Every live process a flow run of `workspace` started (they carry its run token)."""
    found = []
    for process in psutil.process_iter():
        try:
            token = process.environ().get(TOKEN_VARIABLE, "")
            if token.startswith(f"{workspace.resolve()}#") and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            pass
    return found


@pytest.fixture(scope="module")
def workspace(new_small_workspace):
    root = new_small_workspace("recovery")
    yield root
    # A terminal run's temporary Prefect server can outlive a run stopped by a signal; a next run ends what a killed
    # run left, but this module's last run has no next run: end what its runs left.
    for process in psutil.process_iter():
        try:
            if process.environ().get("PREFECT_HOME") == str(root / ".prefect") and "uvicorn" in process.cmdline():
                process.kill()
        except psutil.Error:
            pass


@pytest.fixture(scope="module")
def queued_runs(workspace):
    """Two runs started at once in a fresh workspace: the first runs the pipeline, the second waits for it."""
    first = Run(workspace)
    first.wait_for("Running stage 'ingest'")
    second = Run(workspace)
    codes = first.finish(), second.finish()
    return first, second, codes


def test_a_second_run_waits_for_the_first_and_then_finds_its_work_done(queued_runs, workspace):
    first, second, codes = queued_runs
    assert codes == (0, 0), first.output + "\n" + second.output
    assert "training-pipeline: waiting for the workspace" in second.output
    assert "(command line) (pid" in second.output  # it names the run it waits for
    assert "train ran in" in first.output
    # It started only after the first had finished: every stage was up to date.
    assert "train was up to date" in second.output and "ran in" not in second.output
    assert "Traceback" not in first.output + second.output


def test_a_run_killed_in_its_train_stage_is_recovered_by_the_next_run(queued_runs, workspace):
    before = {name: (workspace / name).read_bytes() for name in ("params.yaml", "dvc.lock", "models/model.keras")}
    killed = Run(workspace, "--set", f"train.epochs={EPOCHS}")
    killed.wait_for("Running stage 'train'")
    # A seeded random point of the stage, once its checkpoint holds at least one epoch.
    history = next(iter(workspace.glob(".dvc/tmp/flow-runs/worktrees/*/models/checkpoint/history.csv")), None)
    deadline = time.monotonic() + 300
    while history is None or len(history.read_text().splitlines()) < 2:
        assert time.monotonic() < deadline, killed.output
        time.sleep(0.5)
        history = next(iter(workspace.glob(".dvc/tmp/flow-runs/worktrees/*/models/checkpoint/history.csv")), None)
    time.sleep(random.Random(KILL_SEED).uniform(0, 2))
    os.kill(killed.process.pid, signal.SIGKILL)  # the flow's process only: its children live on as orphans
    killed.process.wait()
    orphans = processes_of(workspace)
    assert any("pipeline.stages.train" in " ".join(process.cmdline()) for process in orphans), killed.output

    again = Run(workspace, "--set", f"train.epochs={EPOCHS}")
    assert again.finish() == 0, again.output
    assert all(not process.is_running() or process.status() == psutil.STATUS_ZOMBIE for process in orphans)
    assert "left by a killed run" in again.output
    assert "train: resuming the interrupted run" in again.output
    # Nothing of the killed run is left, and the workspace is as it was: the overrides never touched it.
    assert {name: (workspace / name).read_bytes() for name in before} == before
    assert list(workspace.glob(".dvc/tmp/flow-runs/worktrees/*")) == []
    # The last run's reports (the queued runs above kept theirs too: a run beside the model in use keeps them).
    experiment = max((workspace / "reports" / "runs").iterdir(), key=lambda path: path.stat().st_mtime)
    trained = (experiment / "train" / "history.csv").read_text().splitlines()
    assert len(trained) == 1 + EPOCHS  # a header, then every epoch once: resumed, not restarted or repeated
    assert yaml.safe_load((workspace / "params.yaml").read_text())["train"]["epochs"] == 1


def test_sigterm_ends_the_stage_processes_at_once(queued_runs, workspace):
    stopped = Run(workspace, "--set", f"train.epochs={EPOCHS + 1}")
    stopped.wait_for("Running stage 'train'")
    time.sleep(5)
    running = [p for p in processes_of(workspace) if "pipeline.stages.train" in " ".join(p.cmdline())]
    assert running, stopped.output
    stopped.process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(running, timeout=10)
    assert alive == [], stopped.output
    stopped.finish(timeout=60)
    assert stopped.process.returncode != 0
