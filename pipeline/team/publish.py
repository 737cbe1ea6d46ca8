"""Publishing a workspace's results to the team: the DVC remote first, then git.

In that order, so that no commit reaches the git remote before the data its dvc.lock names is on the DVC remote:
a teammate who pulls the commit can always pull its data too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.team.git import push_branch
from pipeline.team.remote import default_remote, push


def publish(root: Path, say: Callable[[str], None]) -> None:
    """Push to the default DVC remote and the branch's git remote, those that are configured. Raises RemoteFailed or
    GitFailed (one line) on the first that fails; what was not pushed is pushed by the next publish."""
    remote = default_remote(root)
    if remote is not None:
        push(root, remote)
        say(f"pushed the pipeline's data and the pool to {remote}")
    pushed_to = push_branch(root)
    if pushed_to is not None:
        say(f"pushed the branch and the registry's tags to git remote '{pushed_to}'")
