"""The drift verdict as a statistical test: a false-alarm rate of alpha at any batch size, effect sizes beside it.

Every column of the feature matrix (pixel statistics, the model's confidence and entropy, principal components of
its embedding, and each class probability: BBSDs, Rabanser et al. 2019) gets a two-sample Kolmogorov-Smirnov test
against the reference; the predicted classes get a chi-square test of their shares (label shift). The tests are
combined by their smallest p-value, whose threshold is calibrated on clean resamples of the reference at the
batch's size: correlated tests make Bonferroni's alpha / tests needlessly strict, the calibration is exact.
A test counts only where its effect (the KS distance, or the total variation distance of the class shares)
reaches a floor, so a large batch is not called drifted for a difference too small to matter.

numpy and scipy only: the bench runs thousands of verdicts from cached features with these same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.drift.features import ImageFeatures

LABEL_SHIFT = "predicted class"
CONFIDENCE_MISS = 0.05  # the chance that the calibrated threshold's false-alarm rate exceeds alpha
NAMED_IN_REASON = 5  # the most significant rejected tests named in the verdict's one line
# Batch sizes the null distribution is simulated at; a batch between two is interpolated (in log size), one
# above the last uses the last: the threshold moves little there, and larger draws would leave too little of a
# 12,000-image reference as the rest, at a cost that grows with the size.
CALIBRATION_SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000)


@dataclass(frozen=True)
class FeatureMatrix:
    """One row per image: the numeric columns the KS tests compare, and the predicted class."""

    names: tuple[str, ...]
    values: np.ndarray  # (N, columns) float64
    predicted: np.ndarray  # (N,) int


def feature_matrix(features: ImageFeatures, components, class_names: tuple[str, ...]) -> FeatureMatrix:
    probabilities = np.clip(features.probabilities.astype(np.float64), 1e-7, 1.0)
    projected = components.transform(features.embeddings)
    columns = {
        **{name: features.pixels[name].to_numpy(np.float64) for name in features.pixels.columns},
        "confidence": probabilities.max(axis=1),
        "entropy": -(probabilities * np.log(probabilities)).sum(axis=1),
        **{f"embedding_pc{index + 1}": projected[:, index] for index in range(projected.shape[1])},
        **{f"p({name})": probabilities[:, index] for index, name in enumerate(class_names)},
    }
    # At float32 precision, as the reference's features are stored: a batch computed in float64 would otherwise
    # differ from an identical reference image in the last digits, and KS would see every tie as a difference.
    values = np.column_stack(list(columns.values())).astype(np.float32).astype(np.float64)
    return FeatureMatrix(names=tuple(columns), values=values, predicted=probabilities.argmax(axis=1))


@dataclass(frozen=True)
class BatchTests:
    """One entry per test: the KS tests of each column, then the label-shift test."""

    names: tuple[str, ...]
    p_values: np.ndarray
    effects: np.ndarray  # KS distance, or total variation distance of the class shares, both in [0, 1]


def ks_distances(sorted_reference: np.ndarray, batch: np.ndarray, drawn_from_reference: bool = False) -> np.ndarray:
    """The two-sample KS statistic of each column: the largest gap between the two empirical CDFs.

    The gap can only peak just before or at a batch value, so the reference's CDF is needed at the batch's values
    only: O(batch log reference). With `drawn_from_reference` the batch's rows are part of `sorted_reference`,
    and are left out of it by count (the null simulation draws batches from the reference that way).
    """
    size, columns = batch.shape
    reference_size = len(sorted_reference) - (size if drawn_from_reference else 0)
    # Every column shifted into a range of its own, so one search covers them all (columns stay sorted).
    low = min(sorted_reference[0].min(), batch.min())
    span = max(sorted_reference[-1].max(), batch.max()) - low + 1.0
    offsets = np.arange(columns) * span - low
    reference_flat = (sorted_reference + offsets).T.ravel()
    current_flat = (np.sort(batch, axis=0) + offsets).T.ravel()
    starts = np.repeat(np.arange(columns) * len(sorted_reference), size)
    below = np.searchsorted(reference_flat, current_flat, "left") - starts
    up_to = np.searchsorted(reference_flat, current_flat, "right") - starts
    if drawn_from_reference:
        batch_starts = np.repeat(np.arange(columns) * size, size)
        below -= np.searchsorted(current_flat, current_flat, "left") - batch_starts
        up_to -= np.searchsorted(current_flat, current_flat, "right") - batch_starts
    steps = np.tile(np.arange(size), columns)
    reference_above = (below / reference_size - steps / size).reshape(columns, size).max(axis=1)
    batch_above = ((steps + 1) / size - up_to / reference_size).reshape(columns, size).max(axis=1)
    return np.maximum(reference_above, batch_above)


def ks_p_values(distances: np.ndarray, reference_size: int, batch_size: int) -> np.ndarray:
    # Kolmogorov's limiting distribution with Stephens' small-sample correction (as in Numerical Recipes): close
    # to the exact p-value from about 4 images on, and a thousand times cheaper than scipy's exact one.
    effective = np.sqrt(reference_size * batch_size / (reference_size + batch_size))
    return stats.kstwobign.sf(distances * (effective + 0.12 + 0.11 / effective))


def label_shift(reference_counts: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity between the batch's and the reference's predicted-class counts (both are
    samples: a one-sample test against the reference's shares would overstate a large batch's evidence), and the
    total variation distance between their shares."""
    counts = np.bincount(predicted, minlength=len(reference_counts))
    table = np.stack([counts, reference_counts]).astype(np.float64)
    present = table.sum(axis=0) > 0
    table = table[:, present]
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    p_value = float(stats.chi2.sf(statistic, max(int(present.sum()) - 1, 1)))
    shares = table / table.sum(axis=1, keepdims=True)
    return p_value, float(0.5 * np.abs(shares[0] - shares[1]).sum())


def class_counts(predicted: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(predicted, minlength=classes)


def run_tests(
    sorted_reference: np.ndarray,
    reference_counts: np.ndarray,
    batch: FeatureMatrix,
    names: tuple[str, ...],
    drawn_from_reference: bool = False,
) -> BatchTests:
    distances = ks_distances(sorted_reference, batch.values, drawn_from_reference)
    reference_size = len(sorted_reference) - (len(batch.values) if drawn_from_reference else 0)
    p_values = ks_p_values(distances, reference_size, len(batch.values))
    label_p, label_effect = label_shift(reference_counts, batch.predicted)
    return BatchTests(
        names=(*names, LABEL_SHIFT),
        p_values=np.append(p_values, label_p),
        effects=np.append(distances, label_effect),
    )


def null_min_p_values(
    reference: FeatureMatrix, classes: int, sizes: tuple[int, ...], resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The smallest p-value of clean batches: for each size, `resamples` times a random batch of that size
    tested against the rest of the reference. Returns the sizes used (at most half the reference) and a
    (sizes, resamples) array."""
    rng = np.random.default_rng(seed)
    usable = np.array([size for size in sizes if size <= len(reference.values) // 2])
    minima = np.empty((len(usable), resamples))
    sorted_reference = np.sort(reference.values, axis=0)
    counts = class_counts(reference.predicted, classes)
    for row, size in enumerate(usable):
        for draw in range(resamples):
            rows = rng.choice(len(reference.values), size, replace=False)
            predicted = reference.predicted[rows]
            results = run_tests(
                sorted_reference,
                counts - class_counts(predicted, classes),  # the rest's
                FeatureMatrix(reference.names, reference.values[rows], predicted),
                reference.names,
                drawn_from_reference=True,
            )
            minima[row, draw] = results.p_values.min()
    return usable, minima


def calibrated_threshold(sizes: np.ndarray, null_minima: np.ndarray, alpha: float, batch_size: int) -> float:
    """The smallest-p-value threshold that a clean batch of `batch_size` images falls under with probability
    alpha, interpolated in log size between the simulated sizes."""
    # Just below the (k+1)-th smallest simulated minimum, so at most k simulated clean batches fall at or under
    # it (also where small batches' p-values tie); k is the 5% lower bound of the count a rate of alpha gives, so
    # the threshold's own false-alarm rate stays under alpha with 95% confidence despite the finite resamples.
    rank = int(stats.binom.ppf(CONFIDENCE_MISS, null_minima.shape[1], alpha))
    quantiles = np.log(np.nextafter(np.sort(null_minima, axis=1)[:, rank], 0))
    log_size = np.log(np.clip(batch_size, sizes[0], sizes[-1]))
    return float(np.exp(np.interp(log_size, np.log(sizes), quantiles)))


@dataclass(frozen=True)
class Verdict:
    status: str  # "drift", "no drift" or "inconclusive"
    threshold: float  # the per-test p-value threshold the smallest p-value is held to
    rejected: tuple[str, ...]  # the tests under the threshold with an effect at least the floor
    smallest_p: float
    reason: str


def decide(results: BatchTests, threshold: float, effect_floor: float, batch_size: int, min_batch: int) -> Verdict:
    smallest = float(results.p_values.min())
    if batch_size < min_batch:
        reason = f"{batch_size} images are fewer than drift.min_batch ({min_batch}): too few to tell"
        return Verdict("inconclusive", threshold, (), smallest, reason)
    significant = results.p_values <= threshold
    rejected = significant & (results.effects >= effect_floor)
    order = np.argsort(results.p_values)
    names = tuple(results.names[index] for index in order if rejected[index])
    if names:
        shown = ", ".join(names[:NAMED_IN_REASON]) + (", ..." if len(names) > NAMED_IN_REASON else "")
        return Verdict("drift", threshold, names, smallest, f"{len(names)} of {len(order)} tests rejected: {shown}")
    if significant.any():
        reason = f"significant differences too small to matter (effect below {effect_floor})"
        return Verdict("no drift", threshold, (), smallest, reason)
    return Verdict("no drift", threshold, (), smallest, f"no test's p-value under {threshold:.2g}")


@dataclass(frozen=True)
class CalibratedReference:
    """The reference a batch is tested against, with the null distribution of the smallest p-value."""

    matrix: FeatureMatrix
    sorted_values: np.ndarray
    counts: np.ndarray  # predicted-class counts
    null_sizes: np.ndarray
    null_minima: np.ndarray  # (sizes, resamples)


def calibrate(matrix: FeatureMatrix, classes: int, resamples: int, seed: int) -> CalibratedReference:
    """The reference with its null distribution simulated (the drift_reference stage; seconds per 100 resamples)."""
    sizes, minima = null_min_p_values(matrix, classes, CALIBRATION_SIZES, resamples, seed)
    return with_null(matrix, classes, sizes, minima)


def with_null(matrix: FeatureMatrix, classes: int, sizes: np.ndarray, minima: np.ndarray) -> CalibratedReference:
    return CalibratedReference(
        matrix=matrix,
        sorted_values=np.sort(matrix.values, axis=0),
        counts=class_counts(matrix.predicted, classes),
        null_sizes=sizes,
        null_minima=minima,
    )


def save_null(path, reference: CalibratedReference) -> None:
    with open(path, "wb") as file:
        np.savez(file, sizes=reference.null_sizes, minima=reference.null_minima)


def load_null(path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        return arrays["sizes"], arrays["minima"]


def judge_batch(
    reference: CalibratedReference, batch: FeatureMatrix, alpha: float, effect_floor: float, min_batch: int
) -> tuple[BatchTests, Verdict]:
    """Every test of the batch against the reference, and the verdict at false-alarm rate `alpha`."""
    results = run_tests(reference.sorted_values, reference.counts, batch, reference.matrix.names)
    threshold = calibrated_threshold(reference.null_sizes, reference.null_minima, alpha, len(batch.values))
    return results, decide(results, threshold, effect_floor, len(batch.values), min_batch)
