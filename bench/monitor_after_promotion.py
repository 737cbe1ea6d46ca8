"""The drift monitor before and after a promotion that taught the model a new kind of picture, for
bench/continuous_training.py (its step 7).

Each model is measured with the drift references its pipeline run wrote (data/drift_reference/: before, the
original validation images only; after, also the new kind's validation images), judging every batch as the monitor
judges traffic, with no source named (pipeline/drift/sources.py). Clean batches, drawn at random:
- of the original test images (10,000, never trained on);
- of held-out pictures of the new kind (a pool rendered from reserved training-file images that neither the drift
  checks nor the accepted batch used; batches overlap, as they must from a pool of this size);
- half of each.
For each, the share called drifted at n = 50 and n = 200, with its 95% upper bound (Clopper-Pearson), and the
detection rate of each of the project's simulated shifts (pipeline/drift/shifts.py) on batches of the original test
images, before and after: at their default strengths, and at a quarter of them, where a loss of power would show.

Run alone on a scratch copy that bench/continuous_training.py left (it prints its path), with the same options:

    python bench/monitor_after_promotion.py SCRATCH [--labelled N] [--check-images C] [--held-out H] [--variant V]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import stats

from pipeline.data.datasets import dataset_spec
from pipeline.data.sources import ORIGINAL_SOURCE
from pipeline.drift.features import image_features
from pipeline.drift.params import DriftParams
from pipeline.drift.references import load_references, matrix_of
from pipeline.drift.shifts import SCENARIOS, apply_shift
from pipeline.drift.sources import judge_by_source
from pipeline.drift.stat_tests import FeatureMatrix
from pipeline.model.network import load_model
from pipeline.params import load_params

SIZES = (50, 200)
STRENGTHS = (1.0, 0.25)  # of each shift's default strength
SHIFTED_IMAGES = 2000  # test images each shift is applied to, and batches are drawn from


def upper_bound(alarms: int, batches: int) -> float:
    """The one-sided 95% Clopper-Pearson upper bound of a rate."""
    return 1.0 if alarms == batches else float(stats.beta.ppf(0.95, alarms + 1, batches - alarms))


class Monitor:
    """One model with its references, judging batches of cached feature rows."""

    def __init__(self, root: Path, model_path: Path, references: Path):
        self.params = load_params(DriftParams, root / "params.yaml")
        self.class_names = dataset_spec("fashion_mnist").class_names
        self.model = load_model(model_path)
        params = self.params
        self.loaded = load_references(
            references, self.class_names, params.embedding_components, params.calibration_resamples, params.seed
        )

    def rows(self, images: np.ndarray) -> FeatureMatrix:
        features = image_features(self.model, images, self.params.batch_size)
        return matrix_of(self.loaded, features, self.class_names)

    def drifted(self, batch: FeatureMatrix, source: str | None = None) -> bool:
        """The verdict as the monitor gives it: no source named (traffic), unless `source`."""
        params = self.params
        judged = judge_by_source(self.loaded.known, batch, source, params.alpha, params.effect_floor, min_batch=1)
        return judged.verdict.status == "drift"


def take(matrix: FeatureMatrix, rows: np.ndarray) -> FeatureMatrix:
    return FeatureMatrix(matrix.names, matrix.values[rows], matrix.predicted[rows])


def drawn(parts: tuple[tuple[FeatureMatrix, int], ...], rng) -> FeatureMatrix:
    """A batch of `count` random rows of each matrix, together."""
    chosen = [take(matrix, rng.choice(len(matrix.values), count, replace=False)) for matrix, count in parts]
    return FeatureMatrix(
        chosen[0].names,
        np.concatenate([part.values for part in chosen]),
        np.concatenate([part.predicted for part in chosen]),
    )


def clean_rates(monitor: Monitor, original: FeatureMatrix, new_kind: FeatureMatrix, batches: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rates = {}
    for size in SIZES:
        sets = {
            "original test images": ((original, size),),
            "new kind, held out": ((new_kind, size),),
            "half and half": ((original, size // 2), (new_kind, size - size // 2)),
        }
        for name, parts in sets.items():
            rates[(name, size)] = (sum(monitor.drifted(drawn(parts, rng)) for _ in range(batches)), batches)
    return rates


def shift_rates(monitor: Monitor, images: np.ndarray, labels: np.ndarray, batches: int, seed: int) -> dict:
    rates = {}
    for scenario in sorted(SCENARIOS):
        for factor in STRENGTHS:
            shifted, _ = apply_shift(images, labels, scenario, factor * SCENARIOS[scenario][1], seed)
            matrix = monitor.rows(shifted)
            rng = np.random.default_rng(seed)
            for size in SIZES:
                chosen = [drawn(((matrix, size),), rng) for _ in range(batches)]
                found = sum(monitor.drifted(batch) for batch in chosen)
                # The same batches named as what they are (original images), apart from the sources' mix.
                named = sum(monitor.drifted(batch, ORIGINAL_SOURCE) for batch in chosen)
                rates[(f"{scenario} x{factor:g}", size)] = (found, batches, named)
    return rates


def measure(
    root: Path, model: Path, references: Path, new_kind: np.ndarray, batches: int, shift_batches: int, seed: int
) -> tuple[dict, dict]:
    """Clean-batch alarm rates and shift detection rates of one model with its references."""
    start = time.perf_counter()
    monitor = Monitor(root, model, references)
    with np.load(root / "data" / "prepared" / "test.npz") as test:
        test_images, test_labels = test["images"], test["labels"]
    original, held_out = monitor.rows(test_images), monitor.rows(new_kind)
    clean = clean_rates(monitor, original, held_out, batches, seed)
    chosen = np.random.default_rng(seed).choice(len(test_images), SHIFTED_IMAGES, replace=False)
    shifts = shift_rates(monitor, test_images[chosen], test_labels[chosen], shift_batches, seed)
    print(f"    measured in {time.perf_counter() - start:.0f} s (sources: {', '.join(monitor.loaded.known.names)})")
    return clean, shifts


def print_tables(before: tuple[dict, dict], after: tuple[dict, dict], alpha: float, pool: int) -> None:
    (clean_before, shifts_before), (clean_after, shifts_after) = before, after
    print(f"  clean batches called drifted (alpha {alpha}; the new kind's held-out pool: {pool} pictures):")
    print(f"    {'batches of':24} {'n':>4} {'before':>16} {'after':>16} {'after: 95% upper':>17}")
    for (name, size), (alarms, batches) in clean_after.items():
        was = clean_before[(name, size)]
        print(
            f"    {name:24} {size:>4} {was[0] / was[1]:>16.3f} {alarms / batches:>16.3f} "
            f"{upper_bound(alarms, batches):>17.3f}"
        )
    print("  shifts of the original test images detected (the project's scenarios; x1 its default strength):")
    print(f"    {'shift':18} {'n':>4} {'before':>8} {'after':>8} {'change':>8} {'after, source named':>20}")
    for (scenario, size), (found, batches, named) in shifts_after.items():
        was = shifts_before[(scenario, size)][0] / shifts_before[(scenario, size)][1]
        now = found / batches
        print(f"    {scenario:18} {size:>4} {was:>8.3f} {now:>8.3f} {now - was:>+8.3f} {named / batches:>20.3f}")


def held_out_pictures(root: Path, checks: int, labelled: int, held_out: int, variant: str) -> np.ndarray:
    """The new kind's held-out pictures as bench/continuous_training.py rendered them in `root`, converted."""
    from new_kind import converted, new_kind_pictures

    from pipeline.data.datasets import load_raw_split
    from pipeline.data.preprocessing import reserved_indices

    images, labels = load_raw_split(root / "data" / "raw" / "fashion_mnist", "train")
    reserve = 3 * checks + labelled + held_out
    order = np.random.default_rng(0).permutation(reserved_indices(len(labels), reserve, 42))
    pictures = new_kind_pictures(images[order], seed=1, variant=variant)
    kept, found = converted(pictures[3 * checks + labelled :])
    return kept[found]


def main() -> None:
    import argparse

    from new_kind import DEFAULT_VARIANT, VARIANTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scratch", type=Path, help="the scratch copy bench/continuous_training.py left")
    parser.add_argument("--labelled", type=int, default=3000)
    parser.add_argument("--check-images", type=int, default=300)
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS))
    parser.add_argument("--clean-batches", type=int, default=1000)
    parser.add_argument("--shift-batches", type=int, default=200)
    arguments = parser.parse_args()
    root, kept = arguments.scratch, arguments.scratch / ".bench-before"
    pictures = held_out_pictures(
        root, arguments.check_images, arguments.labelled, arguments.held_out, arguments.variant
    )
    counts = (arguments.clean_batches, arguments.shift_batches)
    print("before:")
    before = measure(root, kept / "model.keras", kept / "drift_reference", pictures, *counts, 0)
    print("after:")
    after = measure(root, root / "models" / "model.keras", root / "data" / "drift_reference", pictures, *counts, 0)
    alpha = load_params(DriftParams, root / "params.yaml").alpha
    print_tables(before, after, alpha, len(pictures))


if __name__ == "__main__":
    main()
