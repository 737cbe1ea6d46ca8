"""Calibration: whether the model's confidence matches how often it is right."""

from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 10


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error: the gap between confidence and accuracy, averaged over equal-width confidence bins
    weighted by their pictures (0 for a model exactly as sure as it is right)."""
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gaps = [
        abs(correct[which == index].mean() - confidence[which == index].mean()) * np.mean(which == index)
        for index in range(bins)
        if np.any(which == index)
    ]
    return float(np.sum(gaps))
