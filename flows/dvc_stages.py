"""Run the pipeline's DVC stages one at a time, so each can be a flow task while DVC decides what to skip."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml


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
    """The stages' `python` is this interpreter; reports name the flow run that produced them."""
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
    return environment


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
    process = subprocess.Popen(
        dvc_command(*arguments),
        cwd=workspace,
        env=stage_environment(flow_run_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for raw_line in process.stdout:
        line = raw_line.rstrip()
        if line.strip():
            lines.append(line)
            echo(line)
    if process.wait() != 0:
        raise StageFailed(failure_message(what, lines, process.returncode, arguments))
    return lines


def failure_message(stage: str, lines: list[str], exit_code: int, arguments: list[str]) -> str:
    """The stage's own `<stage>: error: ...` line; failing that, DVC's last error; failing that, the DVC command
    (`arguments`) and its exit code."""
    # A stage of another dvc.yaml is addressed as `path/dvc.yaml:name`; its error line starts with the name.
    for prefix in (f"{stage.rsplit(':', 1)[-1]}: error:", "ERROR:"):
        matching = [line.strip() for line in lines if line.strip().startswith(prefix)]
        if matching:
            return matching[-1]
    return f"dvc {' '.join(arguments)} exited with code {exit_code}"


def has_commit(workspace: Path) -> bool:
    result = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=workspace, capture_output=True)
    return result.returncode == 0


def save_experiment(workspace: Path, name: str) -> None:
    """Record the workspace (params, dvc.lock, metrics) as DVC experiment `name`, replacing one of that name.

    Only the main pipeline's outputs are saved: the search of tuning/dvc.yaml may never have run.
    """
    arguments = ["exp", "save", "--force", "--name", name, "dvc.yaml"]
    result = subprocess.run(
        dvc_command(*arguments),
        cwd=workspace,
        env=stage_environment(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        raise StageFailed(failure_message("exp save", output, result.returncode, arguments))
