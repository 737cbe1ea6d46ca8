"""A clone kept level with the team: brought up to the git remote's branch and the DVC remote's data before it works
(`catch_up`), and its own commits put on top of another clone's when that clone pushed first (`integrate`).

Two clones push at once when a worker's drift check commits its history while another worker's training promotes.
Git refuses the second push; `integrate` then replays the second clone's commits on the first's:

- the drift history is appended to by both, so git merges it as a union of lines (.gitattributes, `merge=union`);
- any other line both changed (dvc.lock's entries of the stages both reran) keeps this clone's version, whose
  outputs this clone pushed to the DVC remote before it pushed git;
- registry tags on a replayed commit move with it, so the version names the commit the branch has.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.team.git import GitFailed, current_branch, git, git_succeeds, identity_environment, push_remote
from pipeline.team.registry import TAG_PATTERNS, tag_commits
from pipeline.team.remote import default_remote, pull


def upstream_ref(remote: str, branch: str) -> str:
    return f"refs/remotes/{remote}/{branch}"


def fetch_branch(root: Path) -> str | None:
    """Fetch the branch and every tag from the git remote; the fetched branch's ref, None without a remote."""
    remote, branch = push_remote(root), current_branch(root)
    if remote is None or branch is None:
        return None
    if git(root, "rev-parse", "--is-shallow-repository") == "true":
        git(root, "fetch", "--quiet", "--unshallow", remote)  # replaying commits needs their history
    git(root, "fetch", "--quiet", "--tags", remote, f"+refs/heads/{branch}:{upstream_ref(remote, branch)}")
    return upstream_ref(remote, branch)


def tags_on(root: Path, commits: list[str]) -> dict[str, tuple[str, str]]:
    """The registry's tags on `commits`: tag -> (commit, message)."""
    tags = {tag: commit for pattern in TAG_PATTERNS for tag, commit in tag_commits(root, pattern).items()}
    return {
        tag: (commit, git(root, "tag", "-l", "--format=%(contents)", tag))
        for tag, commit in tags.items()
        if commit in commits
    }


def commit_subjects(root: Path, revisions: str) -> list[tuple[str, str]]:
    listing = git(root, "log", "--reverse", "--format=%H%x09%s", revisions)
    return [tuple(line.split("\t", 1)) for line in listing.splitlines()]


def integrate(root: Path, upstream: str, say: Callable[[str], None]) -> None:
    """Bring HEAD onto `upstream`: a fast-forward when it has nothing of its own, a replay of its own commits
    otherwise (see the module's doc). A conflict the rules cannot settle leaves HEAD as it was and raises GitFailed."""
    if git_succeeds(root, "merge-base", "--is-ancestor", upstream, "HEAD"):
        return  # up to date, or ahead: the next push sends it
    if git_succeeds(root, "merge-base", "--is-ancestor", "HEAD", upstream):
        git(root, "merge", "--quiet", "--ff-only", upstream)
        return
    own = commit_subjects(root, f"{upstream}..HEAD")
    moving = tags_on(root, [commit for commit, _ in own])
    environment = identity_environment(root)
    try:
        git(root, "rebase", "--quiet", "--strategy-option=theirs", upstream, environment=environment)
    except GitFailed as error:
        git_succeeds(root, "rebase", "--abort")
        raise GitFailed(
            f"{error}: this clone's commits and the remote's change the same files; merge by hand"
        ) from None
    # A replayed commit has a new id but its subject: old commit -> subject -> new commit (the oldest of a subject).
    replayed = {subject: commit for commit, subject in reversed(commit_subjects(root, f"{upstream}..HEAD"))}
    subjects = dict(own)
    for tag, (old_commit, message) in moving.items():
        new_commit = replayed.get(subjects[old_commit])
        if new_commit:
            git(root, "tag", "--force", "--annotate", "--message", message, tag, new_commit, environment=environment)
    say(f"replayed {len(own)} commit(s) of this clone on the remote's newer ones")


def catch_up(root: Path, say: Callable[[str], None]) -> None:
    """Move this clone to the git remote's branch (its own unpushed commits replayed on top) with the registry's
    tags, then pull what its dvc.lock and pool name from the DVC remote. Without remotes there is nothing to do."""
    upstream = fetch_branch(root)
    if upstream is None:
        say("git: no remote branch to catch up with; the clone stays as it is")
    else:
        integrate(root, upstream, say)
        say(f"git: at {git(root, 'rev-parse', '--short', 'HEAD')}, level with {upstream.removeprefix('refs/remotes/')}")
    remote = default_remote(root)
    if remote is None:
        say("DVC: no default remote; the clone's outputs stay as they are")
        return
    pull(root, remote)
    say(f"DVC: pulled from {remote}")
