"""The prediction service run as a user runs it: `fashion-serve` as a process on a free loopback port."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.tuning.workers import free_port
from tests.support.workspaces import REPO_ROOT


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text()

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/health", timeout=5)


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def serving(service: RunningService) -> bool:
    try:
        return service.health().status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def running_service(arguments: list, log: Path, cwd: Path = REPO_ROOT, ready: bool = True) -> Iterator[RunningService]:
    """`fashion-serve <arguments>` on a free port, its output in `log`; waits for /health to say 200 when `ready`.
    Stopped as Ctrl+C stops it (SIGINT: uvicorn shuts down, and the service writes what it buffered)."""
    port = free_port()
    command = [sys.executable, "-m", "pipeline.commands.serve", "--port", str(port), *map(str, arguments)]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
    service = RunningService(f"http://127.0.0.1:{port}", process, log)
    try:
        if ready:
            wait_until(lambda: serving(service) or process.poll() is not None, 120, "the service")
            assert process.poll() is None, service.log_text()
        yield service
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
