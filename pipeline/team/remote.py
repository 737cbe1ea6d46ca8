"""The team's DVC remote: where every clone pulls the pipeline's data, models and reports from and pushes them to.

The remote is DVC's default remote (`dvc remote add -d`), credentials in `.dvc/config.local` or the environment.
DVC itself reports an unreachable remote or refused credentials on a pull only as "missing cache files", so each
transfer first lists the remote's root (`dvc ls-url remote://<name>/`), which fails with the real reason. Every
failure is one line naming the remote; nothing local is removed by a failed pull or push.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

# What moves: every output of the main pipeline, and each accepted batch of the pool (one .dvc file each).
# tuning/dvc.yaml's search state stays where the search ran.
PIPELINE = "dvc.yaml"
POOL = Path("data/pool")
MISSING = re.compile(r"^md5: ([0-9a-f]{32})", re.MULTILINE)


class RemoteFailed(PipelineError):
    """A pull or push that could not do its job; the message names the remote and the reason."""


@dataclass(frozen=True)
class Remote:
    name: str
    url: str

    def __str__(self) -> str:
        return f"DVC remote '{self.name}' ({self.url})"


def dvc(root: Path, *arguments: str) -> subprocess.CompletedProcess:
    """DVC of this interpreter (what pipeline's stages run with), without usage statistics."""
    environment = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    command = [sys.executable, "-m", "dvc", *arguments]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env=environment)


def dvc_reason(result: subprocess.CompletedProcess) -> str:
    """DVC's own reason, on one line, without its prefixes and its advertisement."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")] or lines or [f"exit code {result.returncode}"]
    reason = errors[0].removeprefix("ERROR:").strip().removeprefix("unexpected error - ")
    reason = reason.split(": Client error")[0]  # an HTTP status is said twice
    parts = reason.split(": ")
    # An OS error is said twice too: "[Errno 111] Connection refused: [Errno 111] Connection refused".
    return ": ".join(part for index, part in enumerate(parts) if index == 0 or part != parts[index - 1])


def default_remote(root: Path) -> Remote | None:
    """The default remote of the repository at `root` (config and config.local merged), None when it has none."""
    named = dvc(root, "remote", "default")
    if named.returncode != 0 or not named.stdout.strip():
        return None
    name = named.stdout.strip()
    for line in dvc(root, "remote", "list").stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == name:
            return Remote(name, fields[1])
    raise RemoteFailed(f".dvc/config: the default remote '{name}' is not defined (dvc remote list)")


def check_reachable(root: Path, remote: Remote) -> None:
    """Fail with the real reason (refused connection, refused credentials, no such bucket) before a transfer."""
    listed = dvc(root, "ls-url", f"remote://{remote.name}/")
    if listed.returncode != 0:
        raise RemoteFailed(f"{remote}: {dvc_reason(listed)}")


def transfer_targets(root: Path) -> list[str]:
    return [PIPELINE, *sorted(str(path.relative_to(root)) for path in (root / POOL).glob("*.dvc"))]


def pull(root: Path, remote: Remote) -> None:
    """Fetch and check out everything the pipeline and the pool track from `remote`."""
    check_reachable(root, remote)
    result = dvc(root, "pull", *transfer_targets(root))
    if result.returncode == 0:
        return
    missing = MISSING.findall(result.stderr + result.stdout)
    if missing:
        raise RemoteFailed(
            f"{remote} lacks {len(missing)} object(s) this commit's dvc.lock names (md5 {missing[0]}"
            f"{' and more' if len(missing) > 1 else ''}): the clone that made them pushes them with `fashion-team push`"
        )
    raise RemoteFailed(f"{remote}: pull failed: {dvc_reason(result)}")


def push(root: Path, remote: Remote) -> None:
    """Send `remote` whatever of the pipeline and the pool it lacks; a push that failed before is completed."""
    check_reachable(root, remote)
    result = dvc(root, "push", *transfer_targets(root))
    if result.returncode != 0:
        raise RemoteFailed(f"{remote}: push failed, everything is kept locally: {dvc_reason(result)}")
