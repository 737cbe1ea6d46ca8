"""Git as the team's records need it: committing only the files a flow changed, as whom, and pushing.

A flow commits on the branch checked out, with `git commit --only`, so whatever else a person has staged or edited
stays as it was. When the repository names nobody (no user.name or user.email), the commit is the pipeline's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from pipeline.errors import PipelineError

PIPELINE_NAME, PIPELINE_EMAIL = "fashion-pipeline", "fashion-pipeline@localhost"


class GitFailed(PipelineError):
    """A git command failed; the message is git's own last line."""


def git(root: Path, *arguments: str, environment: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise GitFailed(f"git {arguments[0]}: {git_reason(result)}")
    return result.stdout.strip()


def git_reason(result: subprocess.CompletedProcess) -> str:
    """Git's own reason: a refused ref (`! [rejected] …`) or its `error:`/`fatal:` line, never its hints."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("hint:")]
    refused = [line for line in lines if line.startswith("! ")]
    errors = [line for line in lines if line.startswith(("error:", "fatal:"))]
    chosen = refused[:1] or errors[:1] or lines[-1:]
    return chosen[0] if chosen else f"exit code {result.returncode}"


def git_succeeds(root: Path, *arguments: str) -> bool:
    return subprocess.run(["git", *arguments], cwd=root, capture_output=True).returncode == 0


def identity_environment(root: Path) -> dict[str, str]:
    """The environment a commit or tag is made in: the repository's own identity where it has one, else the
    pipeline's (a scheduled run on a worker often has none)."""
    environment = dict(os.environ)
    for field, fallback in (("name", PIPELINE_NAME), ("email", PIPELINE_EMAIL)):
        if not git_succeeds(root, "config", f"user.{field}"):
            for role in ("AUTHOR", "COMMITTER"):
                environment.setdefault(f"GIT_{role}_{field.upper()}", fallback)
    return environment


def current_branch(root: Path) -> str | None:
    """The branch checked out, or None on a detached HEAD."""
    result = subprocess.run(["git", "symbolic-ref", "--short", "-q", "HEAD"], cwd=root, capture_output=True, text=True)
    return result.stdout.strip() or None


def uncommitted(root: Path, paths: list[str]) -> list[str]:
    """Those of `paths` whose working copy or index differs from HEAD."""
    status = git(root, "status", "--porcelain", "--untracked-files=no", "--", *paths)
    return [line[3:] for line in status.splitlines()]


def commit_files(root: Path, paths: list[str], message: str) -> bool:
    """Commit exactly `paths` (those that exist or were tracked) on the current branch; False when none changed."""
    tracked = set(git(root, "ls-files", "--", *paths).splitlines())
    present = [path for path in paths if (root / path).exists() or path in tracked]
    if not present:
        return False
    git(root, "add", "--", *[path for path in present if (root / path).exists()])
    if not uncommitted(root, present):
        return False
    git(root, "commit", "--quiet", "--only", "-m", message, "--", *present, environment=identity_environment(root))
    return True


def push_remote(root: Path) -> str | None:
    """The git remote the branch pushes to: its upstream's, else `origin`; None when there is neither."""
    branch = current_branch(root)
    if branch:
        result = subprocess.run(["git", "config", f"branch.{branch}.remote"], cwd=root, capture_output=True, text=True)
        if result.stdout.strip():
            return result.stdout.strip()
    return "origin" if "origin" in git(root, "remote").split() else None


def fetch_tags(root: Path) -> None:
    """The registry's tags other clones pushed, so that a new version number is one nobody has used. Offline, the
    local tags have to do: a clash then fails the push of the tag, loudly."""
    remote = push_remote(root)
    if remote is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):  # an unanswering host must not hold up a promotion
            subprocess.run(["git", "fetch", "--quiet", "--tags", remote], cwd=root, capture_output=True, timeout=60)


def push_branch(root: Path, tag_patterns: tuple[str, ...]) -> str:
    """Push the branch, then the tags matching `tag_patterns` by name, so that a tag another clone pushed with
    the same name and another commit is refused rather than skipped. Returns where it went, or why nothing went.
    A refused push (another clone pushed first) raises GitFailed with git's line and the remote's name."""
    remote, branch = push_remote(root), current_branch(root)
    if remote is None:
        return "git: not pushed, the repository has no git remote"
    if branch is None:
        return "git: not pushed, HEAD is detached (no branch to push)"
    try:
        git(root, "push", "--quiet", remote, f"HEAD:refs/heads/{branch}")
        git(root, "push", "--quiet", remote, *(f"refs/tags/{pattern}:refs/tags/{pattern}" for pattern in tag_patterns))
    except GitFailed as error:
        raise GitFailed(f"git remote '{remote}': {error}") from None
    return f"pushed the branch {branch} and the registry's tags to git remote '{remote}'"
