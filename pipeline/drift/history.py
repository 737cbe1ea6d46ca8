"""Every drift check, the DVC stage's and each of the monitor's, as one line of reports/drift/checks/history.jsonl.

The history is what the drift page draws as a trend, what the monitor pools small batches from, and what it
confirms drift with before it retrains. Appending one short line is atomic, so no check loses another's entry.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

HISTORY_FILE = "history.jsonl"
DECISION_FILE = "decision.json"  # in a monitor's check folder: what the monitor did after the check


def append_check(checks_dir: Path, entry: dict) -> None:
    checks_dir.mkdir(parents=True, exist_ok=True)
    with open(checks_dir / HISTORY_FILE, "a") as file:
        file.write(json.dumps(entry, sort_keys=True) + "\n")


def read_history(checks_dir: Path) -> list[dict]:
    """The checks, oldest first; a line cut short by a killed check is skipped."""
    path = checks_dir / HISTORY_FILE
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def within(entries: list[dict], now: datetime, window_days: int) -> list[dict]:
    start = now - timedelta(days=window_days)
    return [entry for entry in entries if datetime.fromisoformat(entry["time"]) >= start]


def poolable(entries: list[dict], now: datetime, window_days: int) -> list[dict]:
    """The monitor's inconclusive checks in the window whose images were kept and not yet pooled into a verdict."""
    recent = within([entry for entry in entries if entry["source"] == "monitor"], now, window_days)
    pooled = {member for entry in entries for member in entry.get("pooled", [])}
    return [
        entry
        for entry in recent
        if entry["verdict"] == "inconclusive" and entry.get("batch_file") and entry["id"] not in pooled
    ]


def drifted_in_a_row(entries: list[dict], now: datetime, window_days: int) -> int:
    """How many of the monitor's latest conclusive checks in the window said drift, counting back from the last."""
    conclusive = [
        entry
        for entry in within(entries, now, window_days)
        if entry["source"] == "monitor" and entry["verdict"] != "inconclusive"
    ]
    count = 0
    for entry in reversed(conclusive):
        if entry["verdict"] != "drift":
            break
        count += 1
    return count


def read_decision(check_folder: Path) -> dict:
    """What the drift monitor did after a check (pipeline/drift/page.py writes it); none after the stage's own."""
    path = Path(check_folder) / DECISION_FILE
    record = json.loads(path.read_text()) if path.is_file() else {}
    return {"decision": record.get("decision"), "labelling_sheet": record.get("labelling_sheet")}
