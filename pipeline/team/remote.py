"""The team's DVC remote: where every clone pulls the pipeline's data, models and reports from and pushes them to.

The remote is DVC's default remote (`dvc remote add -d`), credentials in `.dvc/config.local` or the environment.
DVC itself reports an unreachable remote or refused credentials on a pull only as "missing cache files", so each
transfer first lists the remote's root (`dvc ls-url remote://<name>/`), which fails with the real reason. Every
failure is one line naming the remote; nothing local is removed by a failed pull or push.
"""

from __future__ import annotations

import logging
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
    url = dvc(root, "config", f"remote.{name}.url")  # config and config.local merged
    if url.returncode != 0 or not url.stdout.strip():
        raise RemoteFailed(f".dvc/config: the default remote '{name}' has no url: {dvc_reason(url)}")
    return Remote(name, url.stdout.strip())


def remote_exists(root: Path, remote: Remote) -> bool:
    """Whether the remote's root exists (False: nothing was ever pushed there); fails with the real reason
    (refused connection, refused credentials, no such bucket) when it cannot be reached."""
    listed = dvc(root, "ls-url", f"remote://{remote.name}/")
    if listed.returncode == 0:
        return True
    reason = dvc_reason(listed)
    if "does not exist" in reason:
        return False
    raise RemoteFailed(f"{remote}: {reason}")


def transfer_targets(root: Path) -> list[str]:
    return [PIPELINE, *sorted(str(path.relative_to(root)) for path in (root / POOL).glob("*.dvc"))]


def pull(root: Path, remote: Remote) -> None:
    """Fetch and check out everything the pipeline and the pool track from `remote`."""
    if not remote_exists(root, remote):
        raise RemoteFailed(f"{remote} is empty: the clone that has the model pushes it with `fashion-team push`")
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


def push(root: Path, remote: Remote, versions: list[str] = ()) -> None:
    """Send `remote` whatever of the pipeline and the pool it lacks, and the pipeline's outputs at each commit of
    `versions` (the registered versions): a version whose push failed when it was made goes with any later push."""
    remote_exists(root, remote)  # a new remote's root is made by the push itself
    result = dvc(root, "push", *transfer_targets(root))
    if result.returncode != 0:
        raise RemoteFailed(f"{remote}: push failed, everything is kept locally: {dvc_reason(result)}")
    if versions:
        push_versions(root, remote, versions)


def push_versions(root: Path, remote: Remote, versions: list[str]) -> None:
    """The pipeline's outputs at each commit of `versions`, those the remote lacks (the local cache has them)."""
    from dvc.config import ConfigError
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvc_logger = logging.getLogger("dvc")
    level = dvc_logger.level
    dvc_logger.setLevel(logging.ERROR)  # not a warning per commit DVC cannot read; a flow's process goes on after
    try:
        with Repo(str(root)) as repo:
            for commit in versions:
                try:
                    repo.push(targets=[PIPELINE], revs=[commit], workspace=False, remote=remote.name)
                except ConfigError:
                    # A version from before the remote was added: DVC reads that commit's .dvc/config with this
                    # clone's config.local, whose credentials then name a remote without a URL. It was pushed, if
                    # ever, as the workspace's outputs at the time.
                    continue
                except DvcException as error:
                    reason = " ".join(str(error).split())
                    raise RemoteFailed(f"{remote}: push of the registered versions failed: {reason}") from None
    finally:
        dvc_logger.setLevel(level)
