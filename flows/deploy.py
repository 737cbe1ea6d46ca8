"""`make deploy`: everything the Prefect server needs before workers can serve the deployments of prefect.yaml.

    export PREFECT_API_URL=http://<server>:4200/api
    make deploy                                   # or: python -m flows.deploy

1. the process work pool `fashion-mnist`;
2. the global concurrency limit every training takes (flows/training_turn.py);
3. the automations: runs whose heartbeats stopped are marked crashed; and, with a notification block configured,
   a notification on a confirmed drift, a refused candidate and a failed or crashed run of these deployments;
4. `prefect deploy --all`.

Run again after a change: each part is replaced, not duplicated. The notification block is any of Prefect's
(Slack, Microsoft Teams, e-mail, a custom webhook, ...): FASHION_MNIST_NOTIFY_BLOCK names a saved one as
`<block type>/<name>` (e.g. `slack-webhook/team-alerts`), or FASHION_MNIST_NOTIFY_WEBHOOK gives a URL, which is saved
as a custom webhook block posting `{"subject": ..., "body": ...}`. With neither, the notifications stay off.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from prefect.automations import Automation, ChangeFlowRunState, EventTrigger, Posture, SendNotification
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from flows.notices import CANDIDATE_REFUSED, DRIFT_CONFIRMED
from flows.training_turn import TRAINING_LIMIT

WORK_POOL = "fashion-mnist"
TAG = "fashion-mnist"  # every deployment of prefect.yaml carries it, and so do their runs
ROOT = Path(__file__).resolve().parents[1]
BLOCK_VARIABLE, WEBHOOK_VARIABLE = "FASHION_MNIST_NOTIFY_BLOCK", "FASHION_MNIST_NOTIFY_WEBHOOK"
WEBHOOK_BLOCK = "fashion-mnist-notify"
# A run sends a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (30 in prefect.yaml); three missed ones
# mean its process is gone.
HEARTBEAT_SECONDS = 30
ZOMBIE_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)

ZOMBIES = "fashion-mnist: crash runs whose heartbeats stopped"
NOTIFY_DRIFT = "fashion-mnist: notify on a confirmed drift"
NOTIFY_REFUSED = "fashion-mnist: notify on a refused candidate"
NOTIFY_FAILED = "fashion-mnist: notify on a failed or crashed run"
FLOW_RUN_ENDS = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}


def ensure_work_pool(say) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
            say(f"created the process work pool '{WORK_POOL}'")
        except ObjectAlreadyExists:
            say(f"the work pool '{WORK_POOL}' is there")


def ensure_training_limit(say) -> None:
    """One slot, no decay: a mutex whose holder keeps it by renewing its lease (flows/training_turn.py)."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(TRAINING_LIMIT)
            say(f"the global concurrency limit '{TRAINING_LIMIT}' is there")
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=TRAINING_LIMIT, limit=1, slot_decay_per_second=0)
            )
            say(f"created the global concurrency limit '{TRAINING_LIMIT}' (1 slot): one training at a time")


def notification_block(say) -> UUID | None:
    """The block the notifications go through, from the environment (see the module's doc); None when none is set."""
    webhook, named = os.environ.get(WEBHOOK_VARIABLE), os.environ.get(BLOCK_VARIABLE)
    if webhook:
        block = CustomWebhookNotificationBlock(
            name=WEBHOOK_BLOCK, url=webhook, json_data={"subject": "{{subject}}", "body": "{{body}}"}
        )
        block_id = block.save(WEBHOOK_BLOCK, overwrite=True)
        say(f"notifications go to {webhook} (custom webhook block '{WEBHOOK_BLOCK}')")
        return block_id
    if named:
        block = Block.load(named)
        say(f"notifications go through the block '{named}'")
        return block._block_document_id
    say(f"notifications are off: set {WEBHOOK_VARIABLE} (a URL) or {BLOCK_VARIABLE} (a saved block) and rerun")
    return None


def zombie_automation() -> Automation:
    """A run that started heartbeating and then neither beat again nor ended within ZOMBIE_AFTER is crashed: its
    process died with nobody to say so (a killed machine, an out-of-memory kill)."""
    return Automation(
        name=ZOMBIES,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FLOW_RUN_ENDS},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=ZOMBIE_AFTER,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="its heartbeats stopped: the run's process died")],
    )


def notification_automations(block_id: UUID) -> list[Automation]:
    def notify(subject: str, body: str) -> list[SendNotification]:
        return [SendNotification(block_document_id=block_id, subject=subject, body=body)]

    return [
        Automation(
            name=NOTIFY_DRIFT,
            trigger=EventTrigger(expect={DRIFT_CONFIRMED}, posture=Posture.Reactive, threshold=1),
            actions=notify(
                "Drift confirmed: {{ event.payload.check }}",
                "{{ event.payload.reason }}. Smallest p-value {{ event.payload.smallest_p_value }} (threshold "
                "{{ event.payload.threshold }}) on {{ event.payload.images }} images, "
                "{{ event.payload.drifted_in_a_row }} drifted check(s) in a row. Then: {{ event.payload.decision }}. "
                "Drift page: {{ event.payload.page }}. Flow run: {{ event.payload.flow_run }}",
            ),
        ),
        Automation(
            name=NOTIFY_REFUSED,
            trigger=EventTrigger(expect={CANDIDATE_REFUSED}, posture=Posture.Reactive, threshold=1),
            actions=notify(
                "Candidate refused: {{ event.resource['prefect.resource.name'] }}",
                "{{ event.payload.decision }}. {{ event.payload.figures }}. Flow run: {{ event.payload.flow_run }}",
            ),
        ),
        Automation(
            name=NOTIFY_FAILED,
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related={"prefect.resource.id": f"prefect.tag.{TAG}"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=notify(
                "{{ flow.name }} run {{ flow_run.name }}: {{ flow_run.state.name }}",
                "{{ flow.name }} run {{ flow_run.name }} ended {{ flow_run.state.name }}: {{ flow_run.state.message }}",
            ),
        ),
    ]


def replace_automation(automation: Automation) -> None:
    remove_automation(automation.name)
    automation.create()


def remove_automation(name: str) -> bool:
    try:
        Automation.read(name=name).delete()
    except ValueError:  # none of that name
        return False
    return True


def ensure_automations(block_id: UUID | None, say) -> None:
    replace_automation(zombie_automation())
    say(f"automation: '{ZOMBIES}' (after {ZOMBIE_AFTER.seconds} s without a heartbeat)")
    if block_id is None:
        for name in (NOTIFY_DRIFT, NOTIFY_REFUSED, NOTIFY_FAILED):
            remove_automation(name)
        return
    for automation in notification_automations(block_id):
        replace_automation(automation)
        say(f"automation: '{automation.name}'")


def deploy_all(root: Path) -> None:
    """`prefect deploy --all` from the repository root. The clone variable is left out, so that prefect.yaml's
    pull steps resolve the clone on each worker, not here."""
    environment = {key: value for key, value in os.environ.items() if key != "FASHION_MNIST_CLONE"}
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    result = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        sys.exit(f"deploy: error: prefect deploy --all: {lines[-1] if lines else result.returncode}")


def main(argv: list[str] | None = None) -> None:
    def say(line: str) -> None:
        print(f"deploy: {line}", flush=True)

    if not PREFECT_API_URL.value():
        sys.exit("deploy: error: PREFECT_API_URL is not set: point it at the team's Prefect server first")
    ensure_work_pool(say)
    ensure_training_limit(say)
    ensure_automations(notification_block(say), say)
    deploy_all(ROOT)
    say(
        f"deployed prefect.yaml's deployments to the work pool '{WORK_POOL}': start a worker on each machine with "
        f"`make worker` (prefect worker start --pool {WORK_POOL} --limit 1)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
