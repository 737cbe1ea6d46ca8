"""Where a report comes from: git revision, data checksum, params, and the Prefect flow run if any."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path


def git_revision() -> str:
    """The short commit hash, with '+changes' when the working tree differs from it."""
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return revision.stdout.strip() + ("+changes" if status.stdout.strip() else "")


def data_checksum(manifest_path: Path) -> str:
    """One sha256 over the dataset's four file checksums, as recorded by the ingest stage."""
    manifest = json.loads(Path(manifest_path).read_text())
    combined = "".join(f"{name}:{entry['sha256']}\n" for name, entry in sorted(manifest["files"].items()))
    return f"{manifest['dataset']} sha256:{hashlib.sha256(combined.encode()).hexdigest()[:16]}"


def lineage(manifest_path: Path, params: dict, accepted_batches: str | None = None) -> dict:
    """The header every report carries; `accepted_batches` names the new data the model saw, for reports of it."""
    record = {"git revision": git_revision(), "data": data_checksum(manifest_path), "params": params}
    if accepted_batches is not None:
        record["accepted batches"] = accepted_batches
    # Prefect sets this in the environment of a flow run's subprocesses, when a flow runs the stage.
    flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if flow_run_id:
        record["prefect flow run"] = flow_run_id
    return record
