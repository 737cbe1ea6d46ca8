"""The drift verdict's statistics on synthetic features: exact KS distances, uniform p-values under no shift, a
false-alarm rate of alpha at small batch sizes (measured over enough batches to see the rate), known shifts found,
too-small effects and too-small batches not called drift; and the checks' history the monitor reads."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from pipeline.drift.history import drifted_in_a_row, poolable
from pipeline.drift.stat_tests import (
    FeatureMatrix,
    calibrate,
    calibrated_threshold,
    judge_batch,
    ks_distances,
    ks_p_values,
)

NAMES = tuple(f"feature_{index}" for index in range(6))
CLASSES = 10
ALPHA = 0.05


def synthetic(rng, count: int, shift: float = 0.0, class_weights=None) -> FeatureMatrix:
    """Six features, three of them correlated (as the project's are), and a predicted class."""
    base = rng.normal(size=(count, 1))
    values = np.column_stack([base + rng.normal(scale=0.5, size=(count, 1)) for _ in range(3)])
    values = np.column_stack([values, rng.normal(size=(count, 2)), rng.integers(0, 5, size=(count, 1))])
    values[:, 0] += shift
    predicted = rng.choice(CLASSES, size=count, p=class_weights)
    return FeatureMatrix(NAMES, values.astype(np.float64), predicted)


@pytest.fixture(scope="module")
def reference():
    return calibrate(synthetic(np.random.default_rng(0), 4000), CLASSES, resamples=1000, seed=1)


def test_ks_distances_are_scipys_also_with_ties_and_drawn_batches():
    rng = np.random.default_rng(3)
    for trial in range(50):
        ties = trial % 2 == 0
        reference = rng.integers(0, 6, size=(300, 2)).astype(float) if ties else rng.normal(size=(300, 2))
        batch = rng.integers(0, 6, size=(40, 2)).astype(float) if ties else rng.normal(0.3, size=(40, 2))
        expected = [stats.ks_2samp(reference[:, column], batch[:, column]).statistic for column in range(2)]
        np.testing.assert_allclose(ks_distances(np.sort(reference, axis=0), batch), expected)
        pooled = np.sort(np.concatenate([reference, batch]), axis=0)
        np.testing.assert_allclose(ks_distances(pooled, batch, drawn_from_reference=True), expected)


def test_p_values_of_one_distribution_are_uniform():
    rng = np.random.default_rng(4)
    reference = np.sort(rng.normal(size=(2000, 1)), axis=0)
    p_values = np.array(
        [ks_p_values(ks_distances(reference, rng.normal(size=(50, 1))), 2000, 50)[0] for _ in range(1500)]
    )
    assert stats.kstest(p_values, "uniform").pvalue > 0.001
    assert 0.03 <= (p_values <= 0.05).mean() <= 0.07


@pytest.mark.parametrize("size", [20, 100])
def test_clean_batches_are_called_drifted_at_most_at_rate_alpha(reference, size):
    rng = np.random.default_rng(size)
    verdicts = [judge_batch(reference, synthetic(rng, size), ALPHA, 0.0, 10)[1].status for _ in range(600)]
    rate = verdicts.count("drift") / len(verdicts)
    # 600 batches: the rate's standard error at 0.05 is 0.009, so 0.08 is more than three of them above alpha.
    assert rate <= 0.08, rate
    assert rate >= 0.01  # and not a test that never alarms: calibration, not Bonferroni's worst case


def test_with_correlated_tests_the_threshold_is_less_strict_than_bonferroni():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(3000, 1))
    values = base + rng.normal(scale=0.2, size=(3000, 20))  # twenty tests that mostly agree
    matrix = FeatureMatrix(tuple(f"feature_{index}" for index in range(20)), values, rng.choice(CLASSES, 3000))
    reference = calibrate(matrix, CLASSES, resamples=1000, seed=2)
    for size in (20, 100, 1000):
        threshold = calibrated_threshold(reference.null_sizes, reference.null_minima, ALPHA, size)
        assert threshold > 1.5 * ALPHA / 21, size  # Bonferroni would hold each test to alpha / 21


def test_known_shifts_are_found_and_named(reference):
    rng = np.random.default_rng(7)
    results, verdict = judge_batch(reference, synthetic(rng, 200, shift=0.6), ALPHA, 0.025, 20)
    assert verdict.status == "drift" and verdict.rejected[0] == "feature_0"
    weights = np.full(CLASSES, 0.5 / (CLASSES - 1))
    weights[0] = 0.5  # half the batch predicted as class 0: a label shift
    _, verdict = judge_batch(reference, synthetic(rng, 200, class_weights=weights), ALPHA, 0.025, 20)
    assert verdict.status == "drift" and "predicted class" in verdict.rejected


def test_a_tiny_effect_on_a_huge_batch_is_not_drift(reference):
    rng = np.random.default_rng(8)
    results, verdict = judge_batch(reference, synthetic(rng, 20000, shift=0.12), ALPHA, 0.08, 20)
    assert results.p_values[0] < verdict.threshold  # significant...
    assert verdict.status == "no drift" and "too small to matter" in verdict.reason  # ...but below the floor


def test_a_batch_under_the_minimum_is_inconclusive(reference):
    rng = np.random.default_rng(9)
    _, verdict = judge_batch(reference, synthetic(rng, 12, shift=3.0), ALPHA, 0.025, 20)
    assert verdict.status == "inconclusive" and "fewer than drift.min_batch (20)" in verdict.reason


def entry(identifier: str, days_ago: float, verdict: str, source: str = "monitor", **extra) -> dict:
    time = datetime(2026, 11, 30, tzinfo=UTC) - timedelta(days=days_ago)
    return {"id": identifier, "time": time.isoformat(), "source": source, "verdict": verdict, "images": 8, **extra}


def test_the_monitor_pools_recent_unpooled_inconclusive_checks():
    now = datetime(2026, 11, 30, tzinfo=UTC)
    history = [
        entry("old", 9, "inconclusive", batch_file="old/batch.npz"),
        entry("a", 3, "inconclusive", batch_file="a/batch.npz"),
        entry("b", 2, "inconclusive", batch_file="b/batch.npz"),
        entry("pool", 2, "no drift", pooled=["a"]),
        entry("c", 1, "inconclusive", batch_file="c/batch.npz"),
        entry("stage", 1, "inconclusive", source="stage"),
    ]
    assert [item["id"] for item in poolable(history, now, window_days=7)] == ["b", "c"]


def test_drift_counts_in_a_row_only_the_monitors_conclusive_checks():
    now = datetime(2026, 11, 30, tzinfo=UTC)
    history = [
        entry("1", 4, "drift"),
        entry("2", 3, "no drift"),
        entry("3", 2, "drift"),
        entry("4", 1.5, "inconclusive"),
        entry("5", 1.2, "no drift", source="stage"),
        entry("6", 1, "drift"),
    ]
    assert drifted_in_a_row(history, now, window_days=7) == 2
    assert drifted_in_a_row(history, now, window_days=1.1) == 1
