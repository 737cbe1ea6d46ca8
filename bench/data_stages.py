"""Wall time of each data stage on the real data, run through DVC in a scratch copy of the repository.

Prints each stage's time (forced rerun), their total against the 20 s target, the time of a
`dvc repro preprocess` with nothing to do (target: 2 s), and the ingest time as a ratio against a bare
reference measured in the same run: reading and decompressing the four system files with numpy.

    python bench/data_stages.py
"""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import numpy as np
from workspace import REPO_ROOT, scratch_copy, timed, use_this_environment

from pipeline.data.ingestion import IngestParams
from pipeline.params import load_params

STAGES = ("ingest", "validate", "preprocess")


def bare_read_seconds(system_dir: Path) -> float:
    start = time.perf_counter()
    for path in sorted(system_dir.glob("*.gz")):
        np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8)
    return time.perf_counter() - start


def main() -> None:
    use_this_environment()
    root = scratch_copy()
    try:
        timed(["dvc", "repro", "preprocess"], root)  # warm the file-system cache and DVC's state
        stage_seconds = {stage: timed(["dvc", "repro", "--force", "--single-item", stage], root) for stage in STAGES}
        noop_seconds = min(timed(["dvc", "repro", "preprocess"], root) for _ in range(3))
        system_dir = Path(load_params(IngestParams, REPO_ROOT / "params.yaml").system_dirs["fashion_mnist"])
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
