"""The scheduled deployments against a real `prefect server start` on loopback, served by `python -m flows.serve`."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterState
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings

pytestmark = pytest.mark.slow

TRAINING = "training-pipeline/training-pipeline"
DRIFT_MONITOR = "drift-monitor/drift-monitor"
TUNING = "tuning-pipeline/tuning-pipeline"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(ready, process: subprocess.Popen, log: Path, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        result = ready()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout} s:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    # Ctrl+C, as a user stops them; both shut down cleanly on it.
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def environment(api_url: str, home: Path) -> dict[str, str]:
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home)}


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` with its own SQLite home, on a free loopback port."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = str(free_port())
    api_url = f"http://127.0.0.1:{port}/api"
    log = home / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [Path(sys.executable).parent / "prefect", "server", "start", "--host", "127.0.0.1", "--port", port],
            env=environment(api_url, home),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: healthy(f"{api_url}/health"), server, log, timeout=120, what="prefect server")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield api_url, home
    finally:
        stop(server)


@pytest.fixture(scope="module")
def served(prefect_server, new_small_workspace):
    """`python -m flows.serve` in a scratch workspace whose committed params train a fast model."""
    api_url, home = prefect_server
    root = new_small_workspace("served")
    log = root / "serve.log"
    with log.open("w") as output:
        serving = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            cwd=root,
            env=environment(api_url, home),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deployment = wait_until(read_training_deployment, serving, log, timeout=120, what="flows.serve")
        yield root, deployment, serving, log
    finally:
        stop(serving)


def read_training_deployment():
    """The training deployment, once flows.serve has registered all three (one after the other)."""
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(DRIFT_MONITOR)
            client.read_deployment_by_name(TUNING)
            return client.read_deployment_by_name(TRAINING)
        except ObjectNotFound:
            return None


def test_training_deployment_has_its_weekly_cron_schedule(served):
    _, deployment, _, _ = served
    [schedule] = deployment.schedules
    assert schedule.active
    assert schedule.schedule.cron == "0 3 * * 1"  # Mondays 03:00 UTC, as docs/orchestration.md says
    assert deployment.global_concurrency_limit.limit == 1  # runs share one workspace


def test_drift_monitor_deployment_runs_daily(served):
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DRIFT_MONITOR)
    [schedule] = deployment.schedules
    assert schedule.active and schedule.schedule.cron == "0 6 * * *"  # daily 06:00 UTC, as docs/orchestration.md says


def test_tuning_deployment_runs_on_demand_only(served):
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(TUNING)
    assert deployment.schedules == [] and deployment.global_concurrency_limit.limit == 1


def test_server_creates_the_scheduled_runs(served):
    _, deployment, serving, log = served

    def scheduled_runs():
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type={"any_": ["SCHEDULED"]})),
            )

    runs = wait_until(scheduled_runs, serving, log, timeout=60, what="scheduled runs")
    assert all(run.expected_start_time.weekday() == 0 for run in runs)  # Mondays


def test_triggered_run_completes_in_the_served_workspace(served):
    root, _, _, log = served
    flow_run = run_deployment(TRAINING, timeout=600)
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{log.read_text()[-3000:]}"
    report = (root / "reports" / "evaluate" / "report.html").read_text()
    assert str(flow_run.id) in report
