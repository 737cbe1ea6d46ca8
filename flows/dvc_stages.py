"""Run the pipeline's DVC stages one at a time, so each can be a flow task while DVC decides what to skip."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from pipeline.process_guard import owner_environment
from pipeline.team.registry import committed_outputs

# DVC's invitation to its support chat after an unexpected error: not part of what went wrong.
DVC_FOOTER = "Having any troubles?"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_running: set[subprocess.Popen] = set()  # stage commands in progress, ended together on a stop signal


class StageFailed(RuntimeError):
    """A stage exited non-zero; the message is the stage's own one-line error."""


@dataclass(frozen=True)
class StageRun:
    stage: str
    ran: bool  # False when DVC found the stage up to date and skipped it
    seconds: float


def pipeline_stages(workspace: Path) -> list[str]:
    """The stages in the order dvc.yaml lists them (which is also an order their dependencies allow)."""
    definition = yaml.safe_load((workspace / "dvc.yaml").read_text())
    return list(definition["stages"])


def dvc_command(*arguments: str) -> list[str]:
    # The DVC installed beside this interpreter, whatever PATH says.
    return [sys.executable, "-m", "dvc", *arguments]


def stage_environment(flow_run_id: str | None = None) -> dict[str, str]:
    """The stages' `python` is this interpreter; reports name the flow run that produced them; every stage ends if
    this process dies (pipeline/process_guard.py)."""
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    if flow_run_id:
        environment["PREFECT__FLOW_RUN_ID"] = flow_run_id
    else:
        environment.pop("PREFECT__FLOW_RUN_ID", None)
    return owner_environment(environment)


def reproduce_stage(
    stage: str, workspace: Path, flow_run_id: str | None = None, echo: Callable[[str], None] = print
) -> StageRun:
    """`dvc repro --single-item <stage>`, its output passed line by line to `echo` as it comes."""
    start = time.perf_counter()
    lines = run_dvc(["repro", "--single-item", stage], workspace, stage, flow_run_id, echo)
    ran = any(line.startswith(f"Running stage '{stage}'") for line in lines)
    return StageRun(stage=stage, ran=ran, seconds=round(time.perf_counter() - start, 2))


def run_dvc(
    arguments: list[str],
    workspace: Path,
    what: str,
    flow_run_id: str | None = None,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """A DVC command in the workspace, its non-empty output lines passed to `echo` as they come and returned.

    A non-zero exit raises StageFailed with the one line that says why (see `failure_message`, `what` naming
    the stage or command)."""
    return run_streaming(dvc_command(*arguments), workspace, what, flow_run_id, echo)


def run_streaming(
    command: list[str],
    workspace: Path,
    what: str,
    flow_run_id: str | None = None,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Any command of the pipeline (DVC, or a stage's own module) run the way `run_dvc` describes."""
    process = subprocess.Popen(
        command,
        cwd=workspace,
        env=stage_environment(flow_run_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _running.add(process)
    try:
        lines = []
        for raw_line in process.stdout:
            line = raw_line.rstrip()
            if line.strip():
                lines.append(line)
                echo(line)
        returncode = process.wait()
    finally:
        _running.discard(process)
    if returncode != 0:
        raise StageFailed(failure_message(what, lines, returncode, command))
    return lines


def failure_message(stage: str, lines: list[str], exit_code: int, command: list[str]) -> str:
    """The stage's own `<stage>: error: ...` line; failing that, DVC's last error with the lines that continue it
    (a YAML error's line numbers, the processes a lock waits for) joined into one; failing that, the command and
    its exit code."""
    # A stage of another dvc.yaml is addressed as `path/dvc.yaml:name`; its error line starts with the name.
    own = [line.strip() for line in lines if line.strip().startswith(f"{stage.rsplit(':', 1)[-1]}: error:")]
    if own:
        return own[-1]
    starts = [index for index, line in enumerate(lines) if line.startswith("ERROR:")]
    if starts:
        block = [line.strip() for line in lines[starts[-1] :] if not line.startswith(DVC_FOOTER)]
        return " ".join(" ".join(block).split())
    return f"{describe_command(command)} exited with code {exit_code}"


def describe_command(command: list[str]) -> str:
    """`dvc repro ...` or `python -m ...`, as a person would type it."""
    if command[:3] == dvc_command():
        return " ".join(["dvc", *command[3:]])
    return " ".join("python" if part == sys.executable else part for part in command)


def end_stage_processes() -> None:
    """Kill the running stage commands and everything they started (a `dvc repro` and its stage's python)."""
    victims = []
    for process in list(_running):
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(process.pid)
            victims += [*root.children(recursive=True), root]
    for victim in victims:
        with contextlib.suppress(psutil.Error):
            victim.kill()
    psutil.wait_procs(victims, timeout=10)


@contextlib.contextmanager
def stages_end_on_stop_signals() -> Iterator[None]:
    """On SIGTERM (a served run cancelled) or SIGINT (Ctrl+C), end the stage processes at once, then let the
    handler that was there (Prefect's, or Python's KeyboardInterrupt) run."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a worker thread's stages end with its process
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}

    def handle(number, frame):
        end_stage_processes()
        earlier = previous[number]
        if callable(earlier):
            earlier(number, frame)
        else:
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)

    for number in STOP_SIGNALS:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def has_commit(workspace: Path) -> bool:
    result = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=workspace, capture_output=True)
    return result.returncode == 0


def save_experiment(workspace: Path, name: str) -> None:
    """Record the workspace (params, dvc.lock, metrics) as DVC experiment `name`, replacing one of that name.

    Only the main pipeline's outputs are saved: the search of tuning/dvc.yaml may never have run. The outputs git
    carries go in even where git does not track them yet (a repository whose first run this is), so that applying
    the experiment brings its metrics, not the workspace's.
    """
    committed = [path for path in committed_outputs(workspace) if (workspace / path).exists()]
    arguments = ["exp", "save", "--force", "--name", name, *(f"--include-untracked={path}" for path in committed)]
    arguments.append("dvc.yaml")
    result = subprocess.run(
        dvc_command(*arguments),
        cwd=workspace,
        env=stage_environment(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        raise StageFailed(failure_message("exp save", output, result.returncode, dvc_command(*arguments)))


def apply_experiment(
    workspace: Path, name: str, flow_run_id: str | None = None, echo: Callable[[str], None] = print
) -> None:
    """Make experiment `name`'s params, dvc.lock and pipeline outputs the workspace's (flows/apply_experiment.py)."""
    run_streaming([sys.executable, "-m", "flows.apply_experiment", name], workspace, "exp apply", flow_run_id, echo)
