"""Publishing a workspace's results to the team: the DVC remote first, then git.

In that order, so that no commit reaches the git remote before the data its dvc.lock names is on the DVC remote:
a teammate who pulls the commit can always pull its data too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.team.git import push_branch
from pipeline.team.registry import TAG_PATTERNS, version_commits
from pipeline.team.remote import default_remote, push


def publish(root: Path, say: Callable[[str], None]) -> None:
    """Push to the default DVC remote and the branch's git remote, those that are configured. Raises RemoteFailed or
    GitFailed (one line) on the first that fails; what was not pushed is pushed by the next publish."""
    remote = default_remote(root)
    if remote is None:
        say("DVC: not pushed, there is no default DVC remote (docs/team.md)")
    else:
        push(root, remote, version_commits(root))
        say(f"pushed the pipeline's data, the pool and every registered version's outputs to {remote}")
    say(push_branch(root, TAG_PATTERNS))
