"""Wall time of each data stage on the real data, run through DVC in a scratch copy of the repository.

Prints each stage's time (forced rerun), their total against the 20 s target, the time of a
`dvc repro` with nothing to do (target: 2 s), and the ingest time as a ratio against a bare
reference measured in the same run: reading and decompressing the four system files with numpy.

    python bench/data_stages.py
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.params import IngestParams

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "validate", "preprocess")


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def bare_read_seconds(system_dir: Path) -> float:
    start = time.perf_counter()
    for path in sorted(system_dir.glob("*.gz")):
        np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8)
    return time.perf_counter() - start


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
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def main() -> None:
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    root = scratch_copy()
    try:
        timed(["dvc", "repro"], root)  # warm the file-system cache and DVC's state
        stage_seconds = {stage: timed(["dvc", "repro", "--force", "--single-item", stage], root) for stage in STAGES}
        noop_seconds = min(timed(["dvc", "repro"], root) for _ in range(3))
        system_dir = Path(IngestParams.load(REPO_ROOT / "params.yaml").system_dirs["fashion_mnist"])
        bare = min(bare_read_seconds(system_dir) for _ in range(3))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for stage, seconds in stage_seconds.items():
        print(f"{stage:<12} {seconds:6.2f} s")
    total = sum(stage_seconds.values())
    print(f"{'total':<12} {total:6.2f} s   (target <= 20 s)")
    print(f"{'no-op repro':<12} {noop_seconds:6.2f} s   (target <= 2 s)")
    print(f"bare numpy read of the four files: {bare:.2f} s; ingest / bare = {stage_seconds['ingest'] / bare:.1f}x")


if __name__ == "__main__":
    main()
