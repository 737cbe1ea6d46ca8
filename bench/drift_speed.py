"""How fast a drift check is, on the repository's trained model and prepared data.

Prints the wall time of the drift stage (`python -m pipeline.stages.drift`, a new process, as DVC and the drift
monitor run it) on 10,000 and on 100 test images against the cached reference features, how much of it is
starting Python and importing the stage's modules, and the drift_reference stage (features and the verdict's
null), beside a bare reference measured in the same run: model.predict over the same images.
Target: the drift stage on 10,000 images within 20 s here. Run `dvc repro` first (it needs models/model.keras,
data/prepared/ and data/drift_reference/).

    python bench/drift_speed.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from workspace import REPO_ROOT, timed, use_this_environment

from pipeline.data.preprocessing import load_arrays
from pipeline.model.network import load_model


def drift_command(current: Path, scratch: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.stages.drift",
        "--model",
        "models/model.keras",
        "--reference",
        "data/drift_reference",
        "--current",
        str(current),
        "--manifest",
        "data/raw/fashion_mnist/manifest.json",
        "--dataset",
        "fashion_mnist",
        "--checks",
        str(scratch / "checks"),
    ]


def bare_predict_seconds(model, images: np.ndarray) -> float:
    start = time.perf_counter()
    model.predict(images, batch_size=1024, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    use_this_environment()
    if not (REPO_ROOT / "data" / "drift_reference" / "sources.json").exists():
        sys.exit("drift_speed: error: data/drift_reference/sources.json not found; run `dvc repro` first")
    model = load_model(REPO_ROOT / "models" / "model.keras")
    images, _ = load_arrays(REPO_ROOT / "data" / "prepared" / "test.npz")
    scratch = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    try:
        np.save(scratch / "small.npy", images[:100])
        imports = timed([sys.executable, "-c", "import pipeline.stages.drift"], REPO_ROOT)
        print(f"starting Python and importing the drift stage's modules: {imports:5.1f} s")
        for label, current, count in (
            ("10,000", REPO_ROOT / "data" / "prepared" / "test.npz", 10000),
            ("100", scratch / "small.npy", 100),
        ):
            seconds = timed(drift_command(current, scratch), REPO_ROOT)
            bare = bare_predict_seconds(model, images[:count])
            print(
                f"drift stage on {label:>6} images: {seconds:5.1f} s ({seconds - imports:5.1f} s after the imports);"
                f" bare model.predict over them {bare:4.1f} s"
            )
        reference = timed(
            [
                sys.executable,
                "-m",
                "pipeline.stages.drift_reference",
                "--model",
                "models/model.keras",
                "--prepared",
                "data/prepared",
                "--out",
                str(scratch / "reference"),
            ],
            REPO_ROOT,
        )
        bare = bare_predict_seconds(model, load_arrays(REPO_ROOT / "data" / "prepared" / "val.npz")[0])
        print(
            f"drift_reference (features and null): {reference:5.1f} s; bare model.predict over its images {bare:4.1f} s"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
