"""Appending an accepted batch to the pool, data/pool/ (read by pipeline/data/pool.py): one folder per batch, each
tracked by its own `<batch>.dvc`, never changed once written.

    data/pool/<batch>/images.npz     images (uint8 N,28,28,1), labels (int64 N), files (str N)
    data/pool/<batch>/manifest.json  batch, source, accepted_at (UTC), from, images, classes, sha256
    data/pool/<batch>.dvc            written by `dvc add`; committing it (and data/pool/.gitignore) records the batch

Only fashion-accept writes here, after the batch passed its Great Expectations suite (pipeline/accept/gate.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.pool import SOURCE_NAME, read_pool
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.pictures.batches import SIDE

DVC_LOCK_MESSAGE = "Unable to acquire lock"  # how DVC 3 says that another dvc command holds the repository
LOCK_POLL_SECONDS = 2.0
IMAGES_FILE = "images.npz"
MANIFEST_FILE = "manifest.json"


def checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of the images' bytes followed by the labels' bytes (uint8 and int64, C order)."""
    digest = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def check_new_batch(pool_dir: Path, name: str) -> None:
    """A PipelineError unless `name` is a valid batch name not yet in the pool: the pool only grows."""
    # The name becomes a folder, a .dvc file and a source name (pipeline/data/pool.py checks those): plain characters.
    if not SOURCE_NAME.match(name):
        raise PipelineError(f"a batch name must be letters, digits, '.', '_' or '-', got {name!r}")
    manifest = pool_dir / name / MANIFEST_FILE
    if manifest.is_file():
        accepted_at = json.loads(manifest.read_text()).get("accepted_at", "an unknown date")
        raise PipelineError(f"already accepted on {accepted_at[:10]} ({pool_dir / name}); a new batch needs a new name")
    if (pool_dir / f"{name}.dvc").exists() or (pool_dir / name).exists():
        raise PipelineError(f"already in the pool ({pool_dir / name}.dvc); a new batch needs a new name")


def pool_images(pool_dir: Path) -> np.ndarray:
    """Every accepted batch's images, uint8 (N, 28, 28, 1): what a new batch must not repeat too often."""
    pool_dir = Path(pool_dir)
    tracked = sorted(path.with_suffix("") for path in pool_dir.glob("*.dvc")) if pool_dir.is_dir() else []
    missing = [folder for folder in tracked if not (folder / MANIFEST_FILE).is_file()]
    if missing:
        raise PipelineError(f"{missing[0]}: accepted but not in the workspace; run `dvc pull {pool_dir}` first")
    batches = read_pool(pool_dir)
    if not batches:
        return np.zeros((0, SIDE, SIDE, 1), dtype=np.uint8)
    return np.concatenate([batch.images for batch in batches])


def add_to_pool(
    pool_dir: Path,
    images: np.ndarray,
    labels: np.ndarray,
    files: list[str],
    manifest: dict,
    wait_minutes: float = 0,
    echo: Callable[[str], None] = print,
) -> Path:
    """Write the batch folder `manifest["batch"]` (all of it or nothing) and track it with `dvc add`, waiting up to
    `wait_minutes` for DVC's lock (saying so with `echo`); returns the path of its .dvc file."""
    target = Path(pool_dir) / manifest["batch"]
    root = dvc_root(target)
    check_new_batch(Path(pool_dir), manifest["batch"])
    with atomic_path(target) as staging:
        staging.mkdir()
        arrays = {
            "images": images.astype(np.uint8),
            "labels": labels.astype(np.int64),
            "files": np.array(files, dtype=str),
        }
        np.savez_compressed(staging / IMAGES_FILE, **arrays)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    try:
        dvc_add(target, root, wait_minutes, echo)
    except PipelineError:
        # The pool holds only what DVC tracks: without its .dvc file the batch was never accepted.
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target.with_name(f"{target.name}.dvc")


def dvc_root(path: Path) -> Path:
    """The DVC repository holding `path`: the nearest folder above it with a .dvc/ folder."""
    resolved = Path(path).resolve()
    for folder in (resolved, *resolved.parents):
        if (folder / ".dvc").is_dir():
            return folder
    raise PipelineError(f"{path}: not inside a DVC repository (no .dvc/ folder above it); run `dvc init` first")


def dvc_add(target: Path, root: Path, wait_minutes: float, echo: Callable[[str], None]) -> None:
    """`dvc add` the folder; while another dvc command holds the repository's lock, try again until the limit.

    Not DVC's own --wait-for-lock: it waits without limit and without saying for what."""
    relative = target.resolve().relative_to(root).as_posix()
    command = [sys.executable, "-m", "dvc", "add", relative]
    environment = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    deadline = time.monotonic() + wait_minutes * 60
    announced = False
    while True:
        result = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True)
        if result.returncode == 0:
            return
        lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
        busy = any(DVC_LOCK_MESSAGE in line for line in lines)
        if not busy or time.monotonic() >= deadline:
            reason = lines[-1] if lines else f"exit code {result.returncode}"
            waited = f" (after waiting {wait_minutes:g} min for DVC's lock)" if busy else ""
            raise PipelineError(f"dvc add {relative} failed{waited}: {reason}")
        if not announced:
            echo(f"waiting for DVC's lock in {root}: another dvc command is running there")
            announced = True
        time.sleep(LOCK_POLL_SECONDS)
