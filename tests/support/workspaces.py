"""Commands run as a user runs them, and scratch copies of the repository to run them in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from flows.artifacts import DRIFT_HISTORY
from pipeline.team.registry import committed_outputs
from tests.support.data import set_keys

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command as a user would, with the `python` and `dvc` of the environment running the tests."""
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false"}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result


def scratch_workspace(root: Path, params: dict | None = None) -> Path:
    """A git clone-alike of the working tree (tracked and new files) in `root`, with no outputs and no dvc.lock.

    `params` (`section.key` -> value) are written into its params.yaml before the one commit.
    """
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO_ROOT).stdout.split()
    for name in files:
        if (REPO_ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    # main's record of its own runs and drift checks, not this workspace's
    for output in [*committed_outputs(REPO_ROOT), str(DRIFT_HISTORY)]:
        (root / output).unlink(missing_ok=True)
    # Installed packages are not part of a clone; the validate stage reads the Data Docs' web assets from here.
    (root / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    run(["git", "init", "-q"], root)
    return commit_params(root, params or {}, message="snapshot")


def commit_params(root: Path, params: dict, message: str = "params") -> Path:
    """Write `params` (`section.key` -> value) into the workspace's params.yaml and commit everything, as a person
    commits an edit before a scheduled run picks it up."""
    if params:
        document = yaml.safe_load((root / "params.yaml").read_text())
        set_keys(document, params)
        (root / "params.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    run(["git", *identity, "add", "-A"], root)
    run(["git", *identity, "commit", "-qm", message], root)
    return root


def copy_workspace(source: Path, root: Path) -> Path:
    """A copy of a workspace, its git history, DVC cache and outputs included, as `root` (which must not exist).

    DVC and git keep relative paths only, so the copy is a workspace of its own: a run in it leaves `source` as it
    was. Links (node_modules) are copied as links.
    """
    shutil.copytree(source, root, symlinks=True)
    return root
