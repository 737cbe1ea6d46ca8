"""The figures of live accuracy and the verdict: binomial intervals, calibration error and an exact one-sided test.

The verdict asks whether the random sample's accuracy is below the test accuracy less live.margin. Its test is exact
(binomial, one-sided), so a model whose live accuracy is exactly at that floor is called worse at rate live.alpha at
any number of labels, and a model as good live as on the test set far less often. It says "not shown worse" only
once the labels are enough to have seen a drop of live.detect_drop with probability live.power; before that it is
inconclusive, saying how many more labels that takes. The false-alarm rate is per verdict: the monitor judges every
day, on overlapping windows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

WORSE, NOT_SHOWN_WORSE, INCONCLUSIVE = "worse live", "not shown worse", "inconclusive"
MOST_LABELS = 20_000  # the search for the labels a verdict needs stops here


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sound at small counts and near 0 or 1, where p +- 2 se is not."""
    if trials == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(0.5 + confidence / 2)
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def worse_p_value(correct: int, labels: int, floor: float) -> float:
    """P(at most `correct` right of `labels`) for a model exactly at the floor: small when it is below."""
    return float(stats.binom.cdf(correct, labels, floor))


@lru_cache(maxsize=64)  # the same few settings are asked for again and again (every verdict, every page)
def labels_needed(test_accuracy: float, margin: float, drop: float, alpha: float, power: float) -> int | None:
    """The fewest labels from which on the verdict calls a model `drop` below its test accuracy worse with probability
    at least `power` (None past MOST_LABELS). An exact test's power zigzags as labels are added: the count is the
    first after the last one short of `power`, not the first to reach it."""
    floor, dropped = test_accuracy - margin, test_accuracy - drop
    if dropped <= 0 or floor <= 0:
        return 1
    counts = np.arange(1, MOST_LABELS + 1)
    # The largest number right that the test still calls worse: one below the alpha quantile at the floor.
    critical = stats.binom.ppf(alpha, counts, floor) - 1
    caught = stats.binom.cdf(critical, counts, dropped)
    short = np.flatnonzero(caught < power)
    if len(short) == 0:
        return 1
    return int(counts[short[-1] + 1]) if short[-1] + 1 < len(counts) else None


def bootstrap_interval(
    statistic: Callable[..., float], arrays: tuple[np.ndarray, ...], resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of `statistic(*arrays)`, resampling rows; seeded, so reproducible."""
    size = len(arrays[0])
    if size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = [statistic(*(array[rows] for array in arrays)) for rows in rng.integers(0, size, (resamples, size))]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # WORSE, NOT_SHOWN_WORSE or INCONCLUSIVE
    labels: int  # labelled random-sample pictures judged
    correct: int
    test_accuracy: float
    floor: float  # test accuracy less live.margin
    p_value: float | None  # None without labels
    needed: int | None  # labels that see a live.detect_drop drop with live.power
    reason: str  # the verdict in words

    @property
    def still_needed(self) -> int | None:
        """Labels to add before "not shown worse" can be said; None when no sample is large enough."""
        return None if self.needed is None else max(0, self.needed - self.labels)


def judge(correct: int, labels: int, test_accuracy: float, params) -> Verdict:
    """The verdict on `correct` right answers of `labels` random-sample pictures (params: LiveParams)."""
    floor = test_accuracy - params.margin
    needed = labels_needed(test_accuracy, params.margin, params.detect_drop, params.alpha, params.power)
    p_value = worse_p_value(correct, labels, floor) if labels else None
    figures = Verdict(INCONCLUSIVE, labels, correct, test_accuracy, floor, p_value, needed, "")
    rule = f"test accuracy {test_accuracy:.1%} less live.margin ({params.margin * 100:g} points) = {floor:.1%}"
    enough = "more than any sample" if needed is None else f"{needed}"
    if not labels:
        return _with(figures, INCONCLUSIVE, f"no labelled random-sample pictures yet; {enough} needed")
    live = f"live accuracy {correct / labels:.1%} ({correct} of {labels} labelled random-sample pictures)"
    if p_value < params.alpha:
        return _with(figures, WORSE, f"{live} is below the {rule}: p = {p_value:.2g} < live.alpha ({params.alpha})")
    drop = f"a {params.detect_drop * 100:g}-point drop (live.detect_drop) with {params.power:.0%} power (live.power)"
    if needed is None or labels < needed:
        more = "more than any sample" if needed is None else f"{needed - labels} more"
        return _with(figures, INCONCLUSIVE, f"{live}: {more} needed to tell {drop}")
    return _with(
        figures, NOT_SHOWN_WORSE, f"{live} is not below the {rule} (p = {p_value:.2g}); enough labels to see {drop}"
    )


def _with(figures: Verdict, verdict: str, reason: str) -> Verdict:
    return Verdict(**{**figures.__dict__, "verdict": verdict, "reason": reason})
