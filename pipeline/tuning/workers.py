"""A search's trials in parallel worker processes, with KerasTuner's own distributed mode.

A chief process holds the search (its oracle) and hands each worker one trial at a time over gRPC; workers train
and report back. `tune.workers` of them run on this machine. To spread a search over machines, start the same
`python -m pipeline.stages.tune ...` command on each with KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set to the
chief's address and KERASTUNER_TUNER_ID set to a name of its own (tuner2, tuner3, ...), with the state folder shared.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

from pipeline.errors import PipelineError

CHIEF_HOST = "127.0.0.1"
# The chief checks every 20 s whether its workers are done (KerasTuner's own pace); this is ample after that.
CHIEF_GRACE_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((CHIEF_HOST, 0))
        return probe.getsockname()[1]


def run_distributed(command: list[str], workers: int) -> None:
    """Run `command` as the chief and as `workers` workers; any of them failing stops the others and the search."""
    address = {"KERASTUNER_ORACLE_IP": CHIEF_HOST, "KERASTUNER_ORACLE_PORT": str(free_port())}
    names = ["chief", *(f"tuner{index}" for index in range(workers))]
    processes = {
        name: subprocess.Popen(command, env={**os.environ, **address, "KERASTUNER_TUNER_ID": name}) for name in names
    }
    try:
        wait_for_all(processes)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()


def wait_for_all(processes: dict[str, subprocess.Popen]) -> None:
    """Until every process has exited 0; the first failure, or a chief outliving its workers too long, raises."""
    workers_done_at = None
    while any(process.poll() is None for process in processes.values()):
        for name, process in processes.items():
            if process.poll() not in (None, 0):
                raise PipelineError(f"search process {name} exited with code {process.returncode}")
        if workers_done_at is None and all(
            process.poll() is not None for name, process in processes.items() if name != "chief"
        ):
            workers_done_at = time.monotonic()
        if workers_done_at is not None and time.monotonic() - workers_done_at > CHIEF_GRACE_SECONDS:
            raise PipelineError(f"the search's chief process did not stop {CHIEF_GRACE_SECONDS} s after its workers")
        time.sleep(1)
    for name, process in processes.items():
        if process.returncode != 0:
            raise PipelineError(f"search process {name} exited with code {process.returncode}")
