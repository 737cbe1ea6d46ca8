"""A real Prefect server on loopback with all its services (automations, lease expiry), and process workers of it.

Prefect's test harness runs its server without the services that expire a dead holder's concurrency lease or
evaluate proactive triggers; workers, leases and automations need `prefect server start`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.storage import free_port


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    home: Path

    def environment(self, **more: str) -> dict[str, str]:
        """What a command needs to use this server, with the environment's own commands first on PATH."""
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {
            **os.environ,
            "PATH": path,
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.home),
            "DVC_NO_ANALYTICS": "1",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            **more,
        }


@contextlib.contextmanager
def prefect_server(root: Path) -> Iterator[PrefectServer]:
    port = free_port()
    server = PrefectServer(f"http://127.0.0.1:{port}/api", root)
    environment = server.environment(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{root / 'prefect.db'}",
    )
    environment.pop("PREFECT_API_URL")
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    # No scheduler: the deployments' own schedules must not start runs in the middle of a test.
    command += ["--no-ui", "--no-scheduler"]
    with open(root / "server.log", "w") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class Worker:
    name: str
    clone: Path
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        """Kill the worker's whole process group, as a machine's service manager or an out-of-memory kill would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_worker(server: PrefectServer, name: str, clone: Path, pool: str, log_dir: Path) -> Worker:
    """`prefect worker start --pool <pool>` in `clone`, in a process group of its own, one run at a time, polling
    every second (the default is 10 s)."""
    log = log_dir / f"worker-{name}.log"
    environment = server.environment(
        FASHION_MNIST_CLONE=str(clone),
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_HEARTBEAT_SECONDS="5",
    )
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--name", name, "--limit", "1"]
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, cwd=clone, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Worker(name, clone, process, log)
