"""The live verdict on small simulated streams of labelled traffic: clean, dropped, too few labels; and the figures
it rests on (intervals, labels needed, calibration error)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.calibration import calibration_error
from pipeline.live.params import LiveParams
from pipeline.live.performance import in_window, model_figures
from pipeline.live.record import LABEL_COLUMNS, RANDOM, UNFAMILIAR
from pipeline.live.statistics import INCONCLUSIVE, NOT_SHOWN_WORSE, WORSE, judge, labels_needed, wilson_interval
from pipeline.model.version import model_of
from pipeline.params import load_params

CLASSES = tuple(f"class {index}" for index in range(10))
TEST_ACCURACY = 0.94
VERSION = "model-aaaaaaaaaaaa+scorer-bbbbbbbbbbbb"


@pytest.fixture
def params(repo_params) -> LiveParams:
    return load_params(LiveParams, raw=repo_params["live"])


def stream(accuracy: float, per_day: int, days: int, seed: int, group: str = RANDOM) -> pd.DataFrame:
    """`days` days of labelled random-sample pictures, each answered rightly with probability `accuracy`."""
    rng = np.random.default_rng(seed)
    total = per_day * days
    labels = rng.integers(0, 10, total)
    right = rng.random(total) < accuracy
    answers = np.where(right, labels, (labels + 1 + rng.integers(0, 9, total)) % 10)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    times = [start + timedelta(days=index // per_day, minutes=index % per_day) for index in range(total)]
    return pd.DataFrame(
        {
            "picture": [f"day/chunk.npz[{index}]" for index in range(total)],
            "group": group,
            "model_version": VERSION,
            "answered_at": [time.isoformat() for time in times],
            "predicted": [CLASSES[k] for k in answers],
            "confidence": np.where(right, 0.9, 0.6).astype(str),
            "label": [CLASSES[k] for k in labels],
            "labelled_at": "2026-12-01T00:00:00+00:00",
            "sheet": "live-x",
            "file": [f"{index:05d}.png" for index in range(total)],
        },
        columns=LABEL_COLUMNS,
    )


def verdict_of(rows: pd.DataFrame, params: LiveParams):
    window = in_window(rows, model_of(VERSION), params.window_days)
    return judge(int((window["label"] == window["predicted"]).sum()), len(window), TEST_ACCURACY, params)


def test_a_clean_stream_is_as_tested_once_the_labels_are_enough(params):
    rows = stream(TEST_ACCURACY, per_day=50, days=6, seed=1)
    verdict = verdict_of(rows, params)
    assert verdict.verdict == NOT_SHOWN_WORSE, verdict.reason
    assert verdict.labels == 300 and verdict.p_value > params.alpha


def test_a_stream_ten_points_down_is_worse_live(params):
    rows = stream(TEST_ACCURACY - 0.10, per_day=50, days=6, seed=2)
    verdict = verdict_of(rows, params)
    assert verdict.verdict == WORSE and verdict.p_value < params.alpha
    assert "is below the test accuracy 94.0% less live.margin (3 points) = 91.0%" in verdict.reason


def test_too_few_labels_are_inconclusive_with_the_number_still_needed(params):
    rows = stream(TEST_ACCURACY, per_day=20, days=1, seed=3)
    verdict = verdict_of(rows, params)
    needed = labels_needed(TEST_ACCURACY, params.margin, params.detect_drop, params.alpha, params.power)
    assert verdict.verdict == INCONCLUSIVE and verdict.still_needed == needed - 20
    assert f"{needed - 20} more needed to tell a 10-point drop" in verdict.reason
    assert judge(0, 0, TEST_ACCURACY, params).verdict == INCONCLUSIVE


def test_only_the_random_sample_of_the_window_counts(params):
    old_and_bad = stream(0.5, per_day=50, days=3, seed=4)  # 60 days before the others: out of the window
    old_and_bad["answered_at"] = [
        (datetime.fromisoformat(time) - timedelta(days=60)).isoformat() for time in old_and_bad["answered_at"]
    ]
    hard = stream(0.2, per_day=50, days=6, seed=5, group=UNFAMILIAR)
    clean = stream(TEST_ACCURACY, per_day=50, days=6, seed=1)
    rows = pd.concat([old_and_bad, hard, clean], ignore_index=True)
    assert verdict_of(rows, params) == verdict_of(clean, params)
    figures = model_figures(rows, model_of(VERSION), CLASSES)
    assert figures.labels == 450 and figures.hard_cases[UNFAMILIAR][0] == 300
    assert figures.confusion.sum() == 450 and sum(item.labels for item in figures.per_class) == 450


def test_labels_needed_grow_as_the_drop_shrinks_and_the_test_holds_its_false_alarm_rate(params):
    ten = labels_needed(TEST_ACCURACY, params.margin, 0.10, params.alpha, params.power)
    five = labels_needed(TEST_ACCURACY, params.margin, 0.05, params.alpha, params.power)
    assert 50 < ten < 300 < five
    # Exactly at the floor, the exact test calls "worse" at most alpha of the time, at any number of labels.
    rng = np.random.default_rng(0)
    for labels in (30, 129, 1000):
        correct = rng.binomial(labels, TEST_ACCURACY - params.margin, 4000)
        alarms = np.mean([judge(int(k), labels, TEST_ACCURACY, params).verdict == WORSE for k in correct])
        assert alarms <= params.alpha + 0.01, (labels, alarms)


def test_wilson_interval_and_calibration_error():
    low, high = wilson_interval(90, 100)
    assert 0.82 < low < 0.83 and 0.94 < high < 0.95
    assert wilson_interval(0, 0) == (0.0, 1.0)
    confidence = np.array([0.9] * 10)
    assert calibration_error(confidence, np.array([1.0] * 9 + [0.0])) == pytest.approx(0.0)
    assert calibration_error(confidence, np.zeros(10)) == pytest.approx(0.9)
