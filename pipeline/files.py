"""Atomic writes: a failed run never leaves a half-written file or folder in place of the last good one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces `target` (a file or a folder).

    The temporary path lives in the same folder as the target so the final rename is atomic.
    On any exception the temporary path is removed and the target is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging_root = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging = staging_root / target.name
    try:
        yield staging
        if not staging.exists():
            raise FileNotFoundError(f"{target}: nothing was written")
        _replace(staging, target)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _replace(source: Path, target: Path) -> None:
    if source.is_dir() and target.is_dir():
        # A directory cannot be renamed over a non-empty one: move the old one aside first,
        # so there is never a moment with neither the old nor the new version in place.
        retired = source.parent / (target.name + ".old")
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(source, target)
