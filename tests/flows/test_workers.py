"""Deployments run by process workers on a real Prefect server: two clones of the small workspace play two machines,
a bare git repository is the team's git remote, the loopback WebDAV server its DVC remote (tests/flows/conftest.py).

`make deploy`'s own code sets the server up (flows/deploy.py), with a webhook receiver on loopback as the team's
notification block; each worker is `prefect worker start --pool fashion-mnist` in its clone, one run at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.deploy import WORK_POOL
from flows.training_turn import TRAINING_LIMIT
from pipeline.team.registry import version_in_use
from tests.flows.test_team import use_remote, with_git_origin
from tests.support.prefect_server import PrefectServer, Worker, start_worker
from tests.support.webhook import WebhookReceiver, webhook_receiver
from tests.support.workspaces import commit_params, run

pytestmark = pytest.mark.slow
MODEL = "models/model.keras"
RUN_MINUTES = 6  # the longest a run of the small workspace may take here, waiting for its turn included


@contextlib.contextmanager
def on(server: PrefectServer) -> Iterator[None]:
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def start_run(server: PrefectServer, deployment: str, **parameters) -> FlowRun:
    from prefect.deployments import run_deployment

    with on(server):
        return run_deployment(f"{deployment}/{deployment}", parameters=parameters, timeout=0)


def read_run(server: PrefectServer, run_id) -> FlowRun:
    with on(server), get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def wait_for_end(server: PrefectServer, run_id, minutes: float = RUN_MINUTES) -> FlowRun:
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        flow_run = read_run(server, run_id)
        if flow_run.state and flow_run.state.is_final():
            return flow_run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} still {flow_run.state_name} after {minutes} min")


def run_logs(server: PrefectServer, run_id) -> list[tuple[datetime, str]]:
    with on(server), get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return sorted((log.timestamp, log.message) for log in logs)


def first_log_time(server: PrefectServer, run_id, text: str) -> datetime:
    times = [stamp for stamp, message in run_logs(server, run_id) if text in message]
    assert times, f"no log line of run {run_id} says {text!r}"
    return times[0]


def training_turn(server: PrefectServer, flow_run: FlowRun) -> tuple[datetime, datetime]:
    """When the run held the team's training turn: from taking it to the run's end."""
    return first_log_time(server, flow_run.id, "holding the team's training turn"), flow_run.end_time


def active_slots(server: PrefectServer) -> int:
    with on(server), get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(TRAINING_LIMIT).active_slots


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def processes_under(folder: Path, names: tuple[str, ...]) -> list[psutil.Process]:
    """Live processes working in `folder` (their current directory inside it) whose command line names one of
    `names`: a run's `dvc` and stage processes."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.status() == psutil.STATUS_ZOMBIE or not process.cwd().startswith(str(folder)):
                continue
            if any(name in " ".join(process.cmdline()) for name in names):
                found.append(process)
    return found


def wait_for_stage(folders: list[Path], stage: str, seconds: float = 240) -> Path:
    """The folder (of `folders`) where stage `stage`'s own process is running, once it is."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for folder in folders:
            if processes_under(folder, (f"pipeline.stages.{stage}",)):
                return folder
        time.sleep(0.5)
    raise AssertionError(f"stage {stage} never started in {folders}")


class Team:
    def __init__(self, server: PrefectServer, origin: Path, clones: dict[str, Path], webhook: WebhookReceiver, logs):
        self.server, self.origin, self.clones, self.webhook, self.logs = server, origin, clones, webhook, logs
        self.workers: dict[str, Worker] = {}
        self.batch = origin / "data" / "prepared" / "test.npz"  # a batch both workers can read

    def start_worker(self, name: str) -> Worker:
        self.workers[name] = start_worker(self.server, name, self.clones[name], WORK_POOL, self.logs)
        return self.workers[name]

    def worker_of(self, folder: Path) -> Worker:
        return next(worker for worker in self.workers.values() if str(folder).startswith(str(worker.clone)))


@pytest.fixture(scope="module")
def team(prefect_server, copy_of_small_workspace, team_storage, tmp_path_factory) -> Iterator[Team]:
    """The small workspace with its model in use (v0.0.1) pushed to both remotes, two clones of it, the server set up
    by flows/deploy.py with a loopback webhook as the notification block, and worker A started."""
    scratch = tmp_path_factory.mktemp("workers")
    origin_workspace = copy_of_small_workspace("workers-origin")
    # One drifted check confirms a drift here, so the test of notifications needs one run of the monitor.
    commit_params(origin_workspace, {"drift.retrain_after": 1}, message="confirm drift on one check")
    use_remote(origin_workspace, team_storage.new_store("workers"))
    run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qam", "team remote"],
        origin_workspace,
    )
    with_git_origin(origin_workspace, scratch / "origin.git")
    run(["fashion-team", "push"], origin_workspace)
    clones = {}
    for name in ("a", "b"):
        clone = scratch / f"clone-{name}"
        run(["git", "clone", "-q", str(scratch / "origin.git"), str(clone)], scratch)
        use_remote(clone, team_storage.new_store(f"unused-{name}"))  # the credentials; the URL is the committed one
        run(["git", "checkout", "-q", ".dvc/config"], clone)
        clones[name] = clone
    with webhook_receiver() as webhook:
        environment = prefect_server.environment(FASHION_MNIST_NOTIFY_WEBHOOK=webhook.url)
        deployed = subprocess.run(
            [sys.executable, "-m", "flows.deploy"], cwd=clones["a"], env=environment, capture_output=True, text=True
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        crew = Team(prefect_server, origin_workspace, clones, webhook, scratch)
        crew.start_worker("a")
        try:
            yield crew
        finally:
            for worker in crew.workers.values():
                worker.stop()


def test_two_trainings_take_turns_across_workers_beside_a_drift_check_and_both_clones_end_alike(team):
    server = team.server
    # The first training (a new seed, through the gate) starts on worker A; then worker B comes up, and a second
    # training of the same and a drift check are asked for at once.
    candidate = {"overrides": {"train.seed": 7}, "promote_if_better": True}
    first = start_run(server, "training-pipeline", **candidate)
    wait_for_stage([team.clones["a"]], "train")
    team.start_worker("b")
    second = start_run(server, "training-pipeline", **candidate)
    check = start_run(server, "drift-monitor", batch=str(team.batch), scenario="inversion")
    first, second, check = (wait_for_end(server, flow_run.id) for flow_run in (first, second, check))
    for flow_run in (first, second, check):
        assert flow_run.state.is_completed(), f"{flow_run.name}: {flow_run.state.message}"

    # One training at a time: the second took its turn only once the first had ended.
    first_turn, second_turn = training_turn(server, first), training_turn(server, second)
    assert first_turn[1] <= second_turn[0], (first_turn, second_turn)
    print(f"\nturns: first {first_turn[0]:%X}-{first_turn[1]:%X}, second {second_turn[0]:%X}-{second_turn[1]:%X}")
    # The drift check ran while the second training held its turn, on the other worker.
    print(f"drift check: {check.start_time:%X}-{check.end_time:%X}")
    assert check.start_time < second_turn[1] and check.end_time > second_turn[0]

    # The first promoted the new seed's model as v0.0.2; the second caught up with it and found nothing new.
    assert "promoted" in " ".join(message for _, message in run_logs(server, first.id))
    waited = " ".join(message for _, message in run_logs(server, second.id))
    assert "level with origin/" in waited
    versions = {name: version_in_use(clone) for name, clone in team.clones.items()}
    models = {name: md5(clone / MODEL) for name, clone in team.clones.items()}
    assert versions == {"a": "v0.0.2", "b": "v0.0.2"}, versions
    assert models["a"] == models["b"]

    # People are told: the confirmed drift reached the webhook with its figures and where its page is.
    drift = team.webhook.wait_for(lambda body: body.get("subject", "").startswith("Drift confirmed"), 60)
    assert "Smallest p-value" in drift["body"] and "page.html" in drift["body"], drift


def test_a_killed_worker_crashes_its_run_frees_the_turn_and_the_next_run_completes_on_the_other(team):
    server = team.server
    flow_run = start_run(server, "training-pipeline", overrides={"train.seed": 8}, promote_if_better=True)
    training_in = wait_for_stage(list(team.clones.values()), "train")
    victim = team.worker_of(training_in)
    survivor = next(worker for worker in team.workers.values() if worker is not victim)
    killed_at = time.monotonic()
    victim.stop()

    # The run's own process sees its worker gone: it ends its stages and the run is marked crashed.
    while not read_run(server, flow_run.id).state.is_final():
        assert time.monotonic() - killed_at < 60, "the run was not marked crashed within 60 s of its worker's death"
        time.sleep(0.5)
    crashed = read_run(server, flow_run.id)
    print(f"\nmarked {crashed.state.name} {time.monotonic() - killed_at:.1f} s after the worker was killed")
    assert crashed.state.is_crashed(), crashed.state
    assert active_slots(server) == 0
    assert not processes_under(victim.clone, ("dvc", "pipeline.stages"))
    team.webhook.wait_for(lambda body: crashed.name in body.get("subject", "") and "Crashed" in body["subject"], 60)

    # Nothing half-made reached the model in use; the next run, on the other worker, completes: a weak candidate,
    # which the gate refuses, and says so to the team with its figures.
    before = md5(victim.clone / MODEL)
    weak = start_run(server, "training-pipeline", overrides={"train.learning_rate": 1e-7}, promote_if_better=True)
    weak = wait_for_end(server, weak.id)
    assert weak.state.is_completed(), weak.state.message
    assert md5(victim.clone / MODEL) == before
    assert survivor.process.poll() is None and victim.process.poll() is not None
    refused = team.webhook.wait_for(lambda body: body.get("subject", "").startswith("Candidate refused"), 60)
    assert "kept the model in use" in refused["body"] and "in use 0." in refused["body"], refused


def test_a_killed_flow_process_leaves_no_dvc_or_stage_process_behind(prefect_server, copy_of_small_workspace):
    workspace = copy_of_small_workspace("killed-flow-process")
    command = [
        sys.executable,
        "-m",
        "flows.training",
        "--set",
        "train.seed=9",
        "--promote",
        "--workspace",
        str(workspace),
    ]
    flow = subprocess.Popen(
        command, env=prefect_server.environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_stage([workspace], "train")
        os.kill(flow.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        flow.wait()
        left = processes_under(workspace, ("dvc", "pipeline.stages"))
        while left and time.monotonic() - killed_at < 30:
            time.sleep(0.5)
            left = processes_under(workspace, ("dvc", "pipeline.stages"))
        print(f"\nthe run's processes ended {time.monotonic() - killed_at:.1f} s after its flow process was killed")
        assert not left, [process.cmdline() for process in left]
    finally:
        flow.kill()
