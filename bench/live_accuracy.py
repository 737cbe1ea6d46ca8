"""How many labels the live verdict needs to see a drop in accuracy that the drift checks cannot see, and how often it
calls a clean model worse.

The change: people start to label part of the "Shirt" pictures "T-shirt/top" and part of the "Pullover" pictures
"Coat", the pixels unchanged, in the share that takes 5 or 10 points off the model's accuracy. The real data: the
model in use answers the 10,000 test images once; a seeded half of them stands for the test set (its accuracy is
the one the verdict compares with) and the other half for the traffic, from which each simulated labelled sample is
drawn. Every verdict is the project's (pipeline/live/statistics.py, params.yaml's live section), and the drift
check on the same traffic is the project's verdict against the drift reference (data/drift_reference), as the monitor
judges traffic. Run `dvc repro` first.

    python bench/live_accuracy.py [--simulations N] [--days N] [--seed N]

It prints:
- labels needed: the share of samples of each size that the verdict calls worse, at 0 (clean), 5 and 10 points down,
  and the fewest labels caught in 80% of samples;
- false alarms: the share of clean verdicts called worse, with its 95% upper bound (Clopper-Pearson), at several
  sample sizes and over a stream of simulated days (live.sample_per_day labels a day, the live.window_days window);
- days to an alarm once the change starts, on that stream;
- the drift checks' verdicts on the changed traffic: the share of batches called drifted, beside live.alpha.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats
from workspace import REPO_ROOT

from pipeline.data.datasets import dataset_spec
from pipeline.data.preprocessing import load_arrays
from pipeline.drift.features import image_features
from pipeline.drift.params import DriftParams
from pipeline.drift.references import load_references, matrix_of
from pipeline.drift.stat_tests import FeatureMatrix, judge_batch
from pipeline.live.params import LiveParams
from pipeline.live.statistics import WORSE, judge, labels_needed
from pipeline.model.network import load_model
from pipeline.params import load_params

SIZES = (25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1000, 1500, 2000, 3000)
FALSE_ALARM_SIZES = (30, 100, 300, 1000, 3000)
DROPS = (0.0, 0.05, 0.10)
# (labelled as, now labelled as): the classes people confuse most, so the change is a plausible one.
RELABELLED = (("Shirt", "T-shirt/top"), ("Pullover", "Coat"))
DRIFT_SIZES = (100, 1000, 5000)


class Traffic:
    """The traffic half's answers and labels, and how to draw a labelled sample of it with part of it relabelled."""

    def __init__(self, predicted: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]):
        self.predicted, self.labels = predicted, labels
        index = {name: position for position, name in enumerate(class_names)}
        self.pairs = [(index[old], index[new]) for old, new in RELABELLED]
        # Accuracy lost if every picture of the pairs' first classes were relabelled.
        self.most_lost = sum(
            np.mean((labels == old) & (predicted == old)) - np.mean((labels == old) & (predicted == new))
            for old, new in self.pairs
        )

    def share_for(self, drop: float) -> float:
        share = drop / self.most_lost
        if share > 1:
            raise SystemExit(f"a {drop:.0%} drop needs more than relabelling every picture of {RELABELLED}")
        return share

    def correct(self, rng, size: int, drop: float, samples: int) -> np.ndarray:
        """Right answers in each of `samples` labelled samples of `size`, `drop` of the accuracy relabelled away."""
        share = self.share_for(drop)
        picks = rng.integers(0, len(self.labels), (samples, size))
        labels = self.labels[picks].copy()
        for old, new in self.pairs:
            moved = (labels == old) & (rng.random(labels.shape) < share)
            labels[moved] = new
        return (self.predicted[picks] == labels).sum(axis=1)


def upper_bound(alarms: int, trials: int) -> float:
    """The one-sided 95% Clopper-Pearson upper bound of a rate seen `alarms` times in `trials`."""
    return 1.0 if alarms == trials else float(stats.beta.ppf(0.95, alarms + 1, trials - alarms))


def called_worse(correct: np.ndarray, size: int, test_accuracy: float, params: LiveParams) -> np.ndarray:
    return np.array([judge(int(k), size, test_accuracy, params).verdict == WORSE for k in correct])


def labels_table(traffic: Traffic, test_accuracy: float, params: LiveParams, simulations: int, rng) -> None:
    print(f"\nShare of {simulations} labelled samples called worse live, by sample size and drop (points):")
    print("labels " + "".join(f"{drop * 100:>8.0f}" for drop in DROPS))
    caught_at = {}
    for size in SIZES:
        rates = []
        for drop in DROPS:
            rate = called_worse(traffic.correct(rng, size, drop, simulations), size, test_accuracy, params).mean()
            rates.append(rate)
            if drop and rate >= params.power and drop not in caught_at:
                caught_at[drop] = size
        print(f"{size:>6} " + "".join(f"{rate:>8.3f}" for rate in rates))
    for drop in DROPS[1:]:
        needed = labels_needed(test_accuracy, params.margin, drop, params.alpha, params.power)
        print(
            f"a {drop * 100:.0f}-point drop: caught in {params.power:.0%} of samples from "
            f"{caught_at.get(drop, 'over')} labels (of those sizes); the verdict's own power calculation says {needed}"
        )


def false_alarms(traffic: Traffic, test_accuracy: float, params: LiveParams, simulations: int, rng) -> None:
    """Clean traffic, and a model exactly at the floor (test accuracy less live.margin), where the test's stated
    rate, live.alpha, is reached."""
    print(
        f"\nCalled worse, {simulations} verdicts a size (95% upper bound): clean traffic | a model at the floor "
        "(simulated; exact)"
    )
    floor = test_accuracy - params.margin
    for size in FALSE_ALARM_SIZES:
        clean = int(called_worse(traffic.correct(rng, size, 0.0, simulations), size, test_accuracy, params).sum())
        at_floor = int(called_worse(rng.binomial(size, floor, simulations), size, test_accuracy, params).sum())
        # The test's own rate there: the chance of at most the largest count it still calls worse.
        exact = stats.binom.cdf(stats.binom.ppf(params.alpha, size, floor) - 1, size, floor)
        print(
            f"  {size:>5} labels: {clean / simulations:.4f} (<= {upper_bound(clean, simulations):.4f}) | "
            f"{at_floor / simulations:.4f} (<= {upper_bound(at_floor, simulations):.4f}); {exact:.4f}"
        )


def stream(traffic, test_accuracy, params, days: int, change_day: int | None, drop: float, rng) -> np.ndarray:
    """A verdict a day over a stream of days, each with live.sample_per_day labels, judged on the window."""
    per_day = params.sample_per_day
    daily = np.array(
        [
            traffic.correct(rng, per_day, drop if change_day is not None and day >= change_day else 0.0, 1)[0]
            for day in range(days)
        ]
    )
    verdicts = []
    for day in range(days):
        window = daily[max(0, day - params.window_days + 1) : day + 1]
        verdicts.append(judge(int(window.sum()), per_day * len(window), test_accuracy, params).verdict == WORSE)
    return np.array(verdicts)


def stream_figures(traffic, test_accuracy, params, days: int, runs: int, rng) -> None:
    warm = params.window_days  # from the first full window on
    verdicts = stream(traffic, test_accuracy, params, days + warm, None, 0.0, rng)[warm:]
    alarms = int(verdicts.sum())
    print(
        f"\nA clean stream of {days} days ({params.sample_per_day} labels a day, a {params.window_days}-day window): "
        f"{alarms} days called worse, {alarms / days:.4f} (<= {upper_bound(alarms, days):.4f})"
    )
    for drop in DROPS[1:]:
        delays = []
        for _ in range(runs):
            verdicts = stream(traffic, test_accuracy, params, 2 * warm + 60, warm, drop, rng)
            called = np.flatnonzero(verdicts[warm:])
            delays.append(called[0] + 1 if len(called) else np.inf)
        delays = np.array(delays)
        print(
            f"  {drop * 100:.0f} points down from day {warm}: called worse after a median of {np.median(delays):.0f} "
            f"days (90% within {np.percentile(delays, 90):.0f}; never in 60 days: {np.mean(np.isinf(delays)):.2f})"
        )


def drift_checks(model, images: np.ndarray, class_names, batches: int, rng) -> None:
    """The drift verdict on batches of the same traffic: the relabelling leaves the pixels as they were."""
    params = load_params(DriftParams, REPO_ROOT / "params.yaml")
    loaded = load_references(
        REPO_ROOT / "data" / "drift_reference",
        class_names,
        params.embedding_components,
        params.calibration_resamples,
        params.seed,
    )
    reference = loaded.known.references[0]
    matrix = matrix_of(loaded, image_features(model, images, params.batch_size), class_names)
    print(f"\nThe drift checks on the changed traffic ({batches} batches a size; pixels unchanged):")
    for size in DRIFT_SIZES:
        drifted = 0
        for _ in range(batches):
            rows = rng.choice(len(images), size, replace=False)
            batch = FeatureMatrix(matrix.names, matrix.values[rows], matrix.predicted[rows])
            _, verdict = judge_batch(reference, batch, params.alpha, params.effect_floor, params.min_batch)
            drifted += verdict.status == "drift"
        print(f"  {size:>5} pictures: called drifted {drifted / batches:.3f} (drift.alpha {params.alpha})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000, help="samples per size and drop")
    parser.add_argument("--days", type=int, default=1000, help="days of the clean stream")
    parser.add_argument("--runs", type=int, default=200, help="streams per drop, for the days to an alarm")
    parser.add_argument("--drift-batches", type=int, default=100, help="drift checks per batch size")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    started = time.perf_counter()
    params = load_params(LiveParams, REPO_ROOT / "params.yaml")
    class_names = dataset_spec("fashion_mnist").class_names
    model = load_model(REPO_ROOT / "models" / "model.keras")
    images, labels = load_arrays(REPO_ROOT / "data" / "prepared" / "test.npz")
    predicted = model.predict(images, batch_size=1024, verbose=0).argmax(axis=1)
    rng = np.random.default_rng(arguments.seed)
    halves = rng.permutation(len(labels))
    test, traffic_rows = halves[: len(labels) // 2], halves[len(labels) // 2 :]
    test_accuracy = float(np.mean(predicted[test] == labels[test]))
    traffic = Traffic(predicted[traffic_rows], labels[traffic_rows], class_names)
    print(
        f"Test half: {len(test)} images, accuracy {test_accuracy:.2%}; traffic half: {len(traffic_rows)} images, "
        f"accuracy {np.mean(traffic.predicted == traffic.labels):.2%}. live: margin {params.margin}, alpha "
        f"{params.alpha}, detect_drop {params.detect_drop}, power {params.power}. Relabelled {RELABELLED}: a 5-point "
        f"drop relabels {traffic.share_for(0.05):.0%} of them, a 10-point drop {traffic.share_for(0.10):.0%}."
    )
    labels_table(traffic, test_accuracy, params, arguments.simulations, rng)
    false_alarms(traffic, test_accuracy, params, arguments.simulations, rng)
    stream_figures(traffic, test_accuracy, params, arguments.days, arguments.runs, rng)
    drift_checks(model, images[traffic_rows], class_names, arguments.drift_batches, rng)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
