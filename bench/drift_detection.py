"""How well and how fast the drift stage works, on the repository's trained model and prepared data.

Prints:
- the wall time of the drift stage (`python -m pipeline.stages.drift`, a new process) on the 10,000 test images,
  and of computing the reference features, against the 48,000 training images and against the 12,000
  validation images, beside a bare reference measured in the same run: model.predict over the same images;
- the detection rate of each simulated scenario across strengths (share of random test-set halves
  reported as dataset drift), and the false-alarm rate over random clean halves.
Target: a drift run of 10,000 current against 48,000 reference images, embeddings included, in <= 30 s.
Run `dvc repro` first (it needs models/model.keras and data/prepared/).

    python bench/drift_detection.py [--rounds N] [--clean-samples N]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from workspace import REPO_ROOT, timed, use_this_environment

from pipeline.datasets import dataset_spec
from pipeline.drift_check import check_drift
from pipeline.drift_features import image_features
from pipeline.drift_params import DriftParams
from pipeline.images import Batch, load_batch
from pipeline.model import load_model
from pipeline.params import load_params
from pipeline.shifts import SCENARIOS

STRENGTH_FACTORS = (0.1, 0.25, 0.5, 1.0)  # of each scenario's default strength


def stage_seconds(reference_split: str, scratch: Path) -> tuple[float, float]:
    """Wall times of the drift_reference and drift stage commands, as DVC runs them."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["drift"]["reference"] = reference_split
    params_file = scratch / f"params-{reference_split}.yaml"
    params_file.write_text(yaml.safe_dump(params))
    reference = timed(
        [
            sys.executable,
            "-m",
            "pipeline.stages.drift_reference",
            "--params",
            str(params_file),
            "--model",
            "models/model.keras",
            "--prepared",
            "data/prepared",
            "--out",
            str(scratch / "reference.npz"),
        ],
        REPO_ROOT,
    )
    check = timed(
        [
            sys.executable,
            "-m",
            "pipeline.stages.drift",
            "--params",
            str(params_file),
            "--model",
            "models/model.keras",
            "--reference",
            str(scratch / "reference.npz"),
            "--current",
            "data/prepared/test.npz",
            "--manifest",
            "data/raw/fashion_mnist/manifest.json",
            "--dataset",
            "fashion_mnist",
            "--report",
            str(scratch / "report.html"),
            "--summary",
            str(scratch / "summary.json"),
            "--metrics",
            str(scratch / "metrics.json"),
        ],
        REPO_ROOT,
    )
    return reference, check


def bare_predict_seconds(model, splits: list[str]) -> float:
    images = np.concatenate([load_batch(REPO_ROOT / "data" / "prepared" / f"{split}.npz").images for split in splits])
    start = time.perf_counter()
    model.predict(images, batch_size=1024, verbose=0)
    return time.perf_counter() - start


def half(batch: Batch, rng) -> Batch:
    chosen = rng.permutation(len(batch.images))[: len(batch.images) // 2]
    return Batch(batch.images[chosen], batch.labels[chosen], [batch.names[i] for i in chosen])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="random halves per scenario and strength")
    parser.add_argument("--clean-samples", type=int, default=20, help="random clean halves for the false alarms")
    arguments = parser.parse_args()
    use_this_environment()
    if not (REPO_ROOT / "models" / "model.keras").exists():
        sys.exit("drift_detection: error: models/model.keras not found; run `dvc repro` first")
    model = load_model(REPO_ROOT / "models" / "model.keras")
    scratch = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    try:
        print("wall time, 10,000 test images against the reference (new processes, as DVC runs them):")
        for split, count in (("train", 48000), ("val", 12000)):
            reference, check = stage_seconds(split, scratch)
            bare = bare_predict_seconds(model, [split, "test"])
            print(
                f"  reference {split} ({count:,}): drift stage {check:5.1f} s, reference features {reference:5.1f} s,"
                f" together {reference + check:5.1f} s; bare model.predict over the same images {bare:4.1f} s,"
                f" together / bare = {(reference + check) / bare:.1f}x"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    params = load_params(DriftParams, REPO_ROOT / "params.yaml")
    class_names = dataset_spec("fashion_mnist").class_names
    reference_images = load_batch(REPO_ROOT / "data" / "prepared" / f"{params.reference}.npz").images
    reference = image_features(model, reference_images, params.batch_size)
    test = load_batch(REPO_ROOT / "data" / "prepared" / "test.npz")
    rng = np.random.default_rng(0)

    def is_drift(run_params: DriftParams) -> bool:
        return check_drift(model, reference, half(test, rng), run_params, class_names)[1]["dataset_drift"]

    print(f"\ndetection rate (dataset drift in {arguments.rounds} random test-set halves of 5,000), by strength:")
    print(f"  {'scenario':<11}" + "".join(f"{factor:>8}x" for factor in STRENGTH_FACTORS) + "   (x the default)")
    for scenario, (_, default) in SCENARIOS.items():
        rates = []
        for factor in STRENGTH_FACTORS:
            shifted = dataclasses.replace(params, scenario=scenario, strength=default * factor)
            rates.append(
                np.mean([is_drift(dataclasses.replace(shifted, seed=seed)) for seed in range(arguments.rounds)])
            )
        print(f"  {scenario:<11}" + "".join(f"{rate:>9.0%}" for rate in rates) + f"   default strength {default}")

    alarms = [is_drift(params) for _ in range(arguments.clean_samples)]
    print(f"\nfalse alarms: {sum(alarms)} of {len(alarms)} random clean halves ({np.mean(alarms):.0%})")


if __name__ == "__main__":
    main()
