"""A scratch copy of the repository (tracked and new files, no outputs) for benchmarks to run DVC in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def use_this_environment() -> None:
    """Stage commands (`python`, `dvc`) resolve to the interpreter running the benchmark."""
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def scratch_copy() -> Path:
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in listed:
        if (REPO_ROOT / name).is_file() and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    # Installed packages are not part of a clone; the validate stage reads the Data Docs' web assets from here.
    (root / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start
