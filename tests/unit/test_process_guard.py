"""A stage process ends when the `dvc` or flow process that started it dies, and refuses a state folder in use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pipeline.errors import PipelineError
from pipeline.process_guard import OWNERS_VARIABLE, held_state_folder, process_key

# A stand-in for a stage: it starts the watch every stage starts (pipeline/cli.py) and then works for a minute.
STAGE = (
    "from pipeline.cli import run_command; import time; "
    "run_command('train', lambda p: None, lambda a: time.sleep(60), [])"
)


def start_chain(tmp_path, environment=None) -> tuple[subprocess.Popen, psutil.Process]:
    """A process named `dvc` that runs the stand-in stage through `sh -c`, as `dvc repro` does."""
    fake_dvc = tmp_path / "dvc"
    fake_dvc.write_text(
        textwrap.dedent(f"""
            import subprocess, sys, time
            subprocess.Popen(["sh", "-c", {f'{sys.executable} -c "{STAGE}" 2>{tmp_path}/stage.err'!r}])
            time.sleep(120)
        """)
    )
    dvc = subprocess.Popen([sys.executable, str(fake_dvc)], env=environment, cwd=os.getcwd())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stages = [
            child
            for child in psutil.Process(dvc.pid).children(recursive=True)
            if "run_command" in " ".join(child.cmdline()) and child.name() != "sh"
        ]
        if stages:
            time.sleep(1.5)  # its watch is started
            return dvc, stages[0]
        time.sleep(0.2)
    raise AssertionError("the stand-in stage never started")


def ends_within(process: psutil.Process, seconds: float) -> bool:
    try:
        process.wait(timeout=seconds)
    except psutil.TimeoutExpired:
        return False
    return True


def test_a_stage_ends_when_the_dvc_that_started_it_is_killed(tmp_path):
    dvc, stage = start_chain(tmp_path)
    dvc.send_signal(signal.SIGKILL)
    dvc.wait()
    assert ends_within(stage, 5), "the stage went on after its dvc was killed"
    message = (tmp_path / "stage.err").read_text()
    assert f"train: error: pid {dvc.pid} ({Path(sys.executable).name} dvc) ended, so this process stops too" in message


def test_a_stage_ends_when_the_flow_process_above_it_is_killed(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    environment = {**os.environ, OWNERS_VARIABLE: process_key(psutil.Process(owner.pid))}
    dvc, stage = start_chain(tmp_path, environment)
    try:
        owner.kill()
        owner.wait()
        assert ends_within(stage, 5), "the stage went on after the flow process was killed"
        assert f"the flow run process pid {owner.pid} ended" in (tmp_path / "stage.err").read_text()
    finally:
        dvc.kill()


def test_a_stage_lives_on_while_what_started_it_lives(tmp_path):
    dvc, stage = start_chain(tmp_path)
    try:
        assert not ends_within(stage, 3)
    finally:
        dvc.kill()


def test_a_state_folder_is_refused_while_a_live_process_holds_it(tmp_path):
    state = tmp_path / "tune"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from pipeline.process_guard import held_state_folder; import time\n"
            f"with held_state_folder({str(state)!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refusal = rf"{state}: in use by pid {holder.pid} \({Path(sys.executable).name} -c from pipeline"
        with pytest.raises(PipelineError, match=refusal), held_state_folder(state):
            pass
    finally:
        holder.kill()
        holder.wait()
    with held_state_folder(state):  # the kernel released a killed holder's lock
        pass
