"""A run with overrides, isolated: a git worktree of the workspace sharing its DVC cache, saved as a DVC experiment.

Why a worktree and not `dvc exp run --temp`: `--temp` runs the whole pipeline as one command, so a flow could not
show, time and retry it stage by stage. A worktree is a full checkout that shares git's refs and (configured
here) the workspace's DVC cache, so each stage runs in it with `dvc repro --single-item` exactly as in the
workspace, `dvc exp save` there records the run as an experiment the workspace lists, and outputs already in
the cache are linked in, not recomputed. The workspace's params.yaml, dvc.lock, model and reports are never
touched; the run's reports are copied to reports/runs/<run name>/ before its worktree is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flows.artifacts import CHECKPOINT, DRIFT_HISTORY
from flows.dvc_stages import StageFailed, run_dvc, save_experiment
from pipeline.files import atomic_path
from pipeline.params_edit import edited_text
from pipeline.workspace_slot import runs_dir

RUN_REPORTS = Path("reports/runs")
# Ignored by git, so not in a worktree, yet read by a stage (the Data Docs' offline scripts and styles).
# Also the incoming batches' Data Docs, which the run's report index links.
LINKED_FROM_WORKSPACE = ("node_modules", "reports/accept")
# Records no run replaces (not DVC outputs), which a stage reads: copied, so the run's report index shows the same
# drift history as the workspace's and is up to date when nothing else changed.
COPIED_FROM_WORKSPACE = (DRIFT_HISTORY,)


def worktrees_dir(workspace: Path) -> Path:
    return runs_dir(workspace) / "worktrees"


def kept_checkpoint(workspace: Path) -> Path:
    # A killed run's training checkpoint, kept for the next run: the train stage resumes it only if that run's
    # params and data are the same (its fingerprint), and starts afresh otherwise.
    return runs_dir(workspace) / "checkpoint"


def git(workspace: Path, *arguments: str) -> str:
    return subprocess.run(["git", *arguments], cwd=workspace, check=True, capture_output=True, text=True).stdout


def remove_leftover_worktrees(workspace: Path, echo: Callable[[str], None] = print) -> None:
    """Remove the worktrees of runs that were killed, keeping a training checkpoint one of them left."""
    for leftover in sorted(worktrees_dir(workspace).glob("*")):
        echo(f"removing {leftover.name}'s run workspace, left by a killed run")
        remove_worktree(workspace, leftover)
    git(workspace, "worktree", "prune")


def remove_worktree(workspace: Path, worktree: Path) -> None:
    checkpoint = worktree / CHECKPOINT
    if checkpoint.is_dir():
        shutil.rmtree(kept_checkpoint(workspace), ignore_errors=True)
        os.replace(checkpoint, kept_checkpoint(workspace))
    with contextlib.suppress(subprocess.CalledProcessError):
        git(workspace, "worktree", "remove", "--force", str(worktree))
    shutil.rmtree(worktree, ignore_errors=True)


def prepare_worktree(
    workspace: Path, worktree: Path, overrides: Mapping[str, Any], echo: Callable[[str], None]
) -> None:
    """A checkout of HEAD made the workspace as it is (its uncommitted changes, the outputs of its last run from
    the shared cache) with the overrides in its params.yaml."""
    copy_uncommitted_changes(workspace, worktree)
    for name_in_workspace in LINKED_FROM_WORKSPACE:
        if (workspace / name_in_workspace).exists() and not os.path.lexists(worktree / name_in_workspace):
            (worktree / name_in_workspace).parent.mkdir(parents=True, exist_ok=True)
            (worktree / name_in_workspace).symlink_to((workspace / name_in_workspace).resolve())
    for record in COPIED_FROM_WORKSPACE:
        if (workspace / record).is_file():
            (worktree / record).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workspace / record, worktree / record)
    if kept_checkpoint(workspace).is_dir():
        (worktree / CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
        os.replace(kept_checkpoint(workspace), worktree / CHECKPOINT)
    run_dvc(["cache", "dir", "--local", str((workspace / ".dvc" / "cache").resolve())], worktree, "cache dir")
    # Outputs missing from the cache (none after a full run) just stay missing; their stages run.
    with contextlib.suppress(StageFailed):
        run_dvc(["checkout", "--quiet"], worktree, "checkout", echo=echo)
    params = worktree / "params.yaml"
    with atomic_path(params) as temporary:
        temporary.write_text(edited_text(params, overrides))


def copy_uncommitted_changes(workspace: Path, worktree: Path) -> None:
    """Changed (staged or not) and new (not ignored) files copied over, deleted ones deleted, as `dvc exp run` would
    run them: an accepted batch's .dvc file is in the run whether it was committed, staged or neither."""
    changed = git(workspace, "diff", "--name-only", "-z", "HEAD").split("\0")
    changed += git(workspace, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    for relative in filter(None, changed):
        source, target = workspace / relative, worktree / relative
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif not source.exists():
            target.unlink(missing_ok=True)


@contextlib.contextmanager
def isolated_run(
    workspace: Path, name: str, overrides: Mapping[str, Any], echo: Callable[[str], None] = print
) -> Iterator[Path]:
    """Yield a run workspace for experiment `name`; afterwards save it as that experiment (if the block succeeded),
    keep its reports in reports/runs/<name>/ and remove it."""
    worktree = worktrees_dir(workspace) / name
    worktree.parent.mkdir(parents=True, exist_ok=True)
    git(workspace, "worktree", "add", "--detach", str(worktree), "HEAD")
    try:
        prepare_worktree(workspace, worktree, overrides, echo)
        yield worktree
        save_experiment(worktree, name)
    finally:
        keep_reports(worktree, workspace / RUN_REPORTS / name)
        remove_worktree(workspace, worktree)


def keep_reports(worktree: Path, target: Path) -> None:
    if (worktree / "reports").is_dir():
        with atomic_path(target) as temporary:
            shutil.copytree(
                worktree / "reports", temporary, ignore=shutil.ignore_patterns(".gitignore", "runs", "accept")
            )
