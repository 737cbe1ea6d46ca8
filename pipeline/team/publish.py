"""Publishing a workspace's results to the team: the DVC remote first, then git.

In that order, so that no commit reaches the git remote before the data its dvc.lock names is on the DVC remote:
a teammate who pulls the commit can always pull its data too. When another clone pushed the branch first, this
clone's commits are replayed on top of it (pipeline/team/sync.py) and pushed again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.team.git import GitFailed, push_branch
from pipeline.team.registry import TAG_PATTERNS, version_commits
from pipeline.team.remote import default_remote, push
from pipeline.team.sync import fetch_branch, integrate

# Pushes to try when other clones keep pushing first: each try replays this clone's commits on the newest.
PUSH_TRIES = 3


def publish(root: Path, say: Callable[[str], None]) -> None:
    """Push to the default DVC remote and the branch's git remote, those that are configured. Raises RemoteFailed or
    GitFailed (one line) on the first that fails; what was not pushed is pushed by the next publish."""
    remote = default_remote(root)
    if remote is None:
        say("DVC: not pushed, there is no default DVC remote (docs/team.md)")
    else:
        push(root, remote, version_commits(root))
        say(f"pushed the pipeline's data, the pool and every registered version's outputs to {remote}")
    for attempt in range(1, PUSH_TRIES + 1):
        try:
            say(push_branch(root, TAG_PATTERNS))
            return
        except GitFailed as error:
            if not another_clone_pushed_first(error) or attempt == PUSH_TRIES:
                raise
            say(f"another clone pushed first ({error}); replaying this clone's commits on top")
            integrate(root, fetch_branch(root), say)


def another_clone_pushed_first(error: GitFailed) -> bool:
    """Git's refusal of a branch push that is behind the remote's (not a clashing tag, which stays refused)."""
    return "[rejected]" in str(error) and ("(fetch first)" in str(error) or "(non-fast-forward)" in str(error))
