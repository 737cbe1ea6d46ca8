"""The events a person should hear about, emitted to the Prefect server; `make deploy` (flows/deploy.py) turns each
into a notification through the team's notification block, when one is configured.

Each event carries its figures in its payload, so the notification says what happened without opening a report.
"""

from __future__ import annotations

import socket
from pathlib import Path

from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for

from pipeline.evaluation.promotion import Decision

DRIFT_CONFIRMED = "fashion-mnist.drift.confirmed"
CANDIDATE_REFUSED = "fashion-mnist.candidate.refused"


def run_link() -> str | None:
    """The flow run's page in the Prefect UI, where its artifacts are. `prefect.runtime.flow_run.ui_url` names a path
    the server's UI does not serve (/flow-runs/...); this is the one the run's own "View at" line gives."""
    return url_for("flow-run", obj_id=flow_run.id) if flow_run.id else None


def drift_confirmed(summary: dict, check: Path) -> None:
    """A confirmed drift: the verdict's figures and where its drift page is (a file on the worker that ran it)."""
    page = check / "page.html"
    emit_event(
        event=DRIFT_CONFIRMED,
        resource={
            "prefect.resource.id": f"fashion-mnist.drift-check.{check.name}",
            "prefect.resource.name": check.name,
        },
        payload={
            "check": check.name,
            "reason": summary["reason"],
            "smallest_p_value": summary["smallest_p_value"],
            "threshold": summary["threshold"],
            "images": summary["batch"]["images"],
            "drifted_in_a_row": summary["drifted_in_a_row"],
            "decision": summary["decision"],
            "page": f"{page.as_uri()} on {socket.gethostname()}",
            "flow_run": run_link(),
        },
    )


def candidate_refused(decision: Decision, line: str, candidate: str) -> None:
    """A candidate the promotion gate kept out: its one-line decision and, per test set, the figures compared."""
    figures = [
        f"{row['test set']}: in use {row['in use']:.4f}, candidate {row['candidate']:.4f} "
        f"(change {row['change']:+.4f}, allowed drop {row['allowed drop']:.4f}, {row['images']} images)"
        for row in decision.rows
    ]
    emit_event(
        event=CANDIDATE_REFUSED,
        resource={"prefect.resource.id": f"fashion-mnist.candidate.{candidate}", "prefect.resource.name": candidate},
        payload={"decision": line, "figures": "; ".join(figures), "flow_run": run_link()},
    )
