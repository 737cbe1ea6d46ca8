"""Drift judged per source: the original images and each accepted source have a reference of their own.

A batch whose source is known is tested against that source's reference, with its own calibrated null
(pipeline/drift/stat_tests.py). A batch of unknown source (the monitor's traffic) may be any mixture of known
sources, so its null hypothesis is composite: "the batch is drawn from w_1 P_1 + ... + w_K P_K for some weights w".
It is tested against the mixture the batch itself suggests:
1. the weights are estimated from the batch: the mean, over its images, of a source classifier's probabilities
   (a logistic regression on the drift features, fitted on the references, balanced over sources), rounded to
   MIXTURE_STEP. A batch that looks like one source gets that source's weight 1, and is judged exactly as a
   check of known source;
2. every test compares the batch with the mixture of the references' distributions at those weights (a weighted
   sum of their empirical CDFs; KS against it, and chi-square against the mixed predicted-class shares);
3. the threshold of the smallest p-value is calibrated by simulation at those weights and the batch's size: clean
   batches drawn from the references in those proportions, whose weights are estimated again and rounded the same
   way, each tested against the rest (a parametric bootstrap, so the estimation's own effect is in the null).
So a clean batch from one source, or a clean mixture of sources in any proportions, is called drifted with
probability about alpha, while a change that no mixture of known sources explains is not absorbed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.drift.stat_tests import (
    LABEL_SHIFT,
    BatchTests,
    CalibratedReference,
    FeatureMatrix,
    Verdict,
    calibrated_threshold,
    class_counts,
    decide,
    judge_batch,
    ks_p_values,
    label_shift,
)
from pipeline.errors import PipelineError

UNKNOWN_SOURCE = "unknown"  # what a check names as the source of a batch whose source is not known
MIXTURE_STEP = 0.05  # estimated weights are rounded to this: mixtures closer than it share one calibration
SUM_WEIGHT = 100.0  # how strongly the estimated weights are held to summing to one


@dataclass(frozen=True)
class SourceClassifier:
    """Multinomial logistic regression from the standardised feature columns to the source."""

    mean: np.ndarray  # (columns,)
    scale: np.ndarray  # (columns,)
    coefficients: np.ndarray  # (sources, columns)
    intercepts: np.ndarray  # (sources,)

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        logits = ((values - self.mean) / self.scale) @ self.coefficients.T + self.intercepts
        logits -= logits.max(axis=1, keepdims=True)
        odds = np.exp(logits)
        return odds / odds.sum(axis=1, keepdims=True)


def fit_classifier(matrices: list[FeatureMatrix], seed: int) -> tuple[SourceClassifier, list[np.ndarray]]:
    """The source classifier, and each reference image's source probabilities from a model fitted without it
    (5-fold cross-fitting: in-sample probabilities would be surer than a new batch's)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    values = np.concatenate([matrix.values for matrix in matrices])
    sources = np.concatenate([np.full(len(matrix.values), index) for index, matrix in enumerate(matrices)])
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale[scale == 0] = 1.0
    standardised = (values - mean) / scale
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    held_out = cross_val_predict(model, standardised, sources, cv=folds, method="predict_proba")
    model.fit(standardised, sources)
    coefficients, intercepts = model.coef_, model.intercept_
    if len(matrices) == 2:  # scikit-learn keeps one row for two classes: the second's log-odds against the first
        coefficients, intercepts = (
            np.vstack([-coefficients / 2, coefficients / 2]),
            np.r_[-intercepts / 2, intercepts / 2],
        )
    bounds = np.cumsum([0, *(len(matrix.values) for matrix in matrices)])
    return SourceClassifier(mean, scale, coefficients, intercepts), [
        held_out[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def rounded_weights(probabilities: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """The batch's estimated mixture, rounded to MIXTURE_STEP, summing to 1.

    The images' mean source probabilities alone are biased towards the other sources (a classifier is never sure,
    so a batch of one source would look like a 95/5 mix, which a large batch tells apart from that one source).
    Corrected as black-box shift estimation does (Lipton, Wang and Smola, ICML 2018): the mean probabilities are
    `confusion @ weights`, where column s of `confusion` is the mean held-out probabilities of source s's images;
    solved for weights >= 0 summing to 1.
    """
    from scipy.optimize import nnls

    sources = len(confusion)
    # The sum-to-one constraint as an extra equation, weighted so that it holds almost exactly.
    system = np.vstack([confusion, np.full((1, sources), SUM_WEIGHT)])
    weights, _ = nnls(system, np.r_[probabilities.mean(axis=0), SUM_WEIGHT])
    weights = np.round(weights / max(weights.sum(), 1e-12) / MIXTURE_STEP) * MIXTURE_STEP
    if weights.sum() == 0:
        weights[np.argmax(probabilities.mean(axis=0))] = 1.0
    return weights / weights.sum()


def source_confusion(held_out: list[np.ndarray]) -> np.ndarray:
    """(sources, sources): column s is the mean held-out source probabilities of source s's reference images."""
    return np.stack([probabilities.mean(axis=0) for probabilities in held_out], axis=1)


def column_counts(sorted_values: np.ndarray, points: np.ndarray, side: str) -> np.ndarray:
    """(points, columns): how many of each column's sorted values lie below (side "left") or at most (side "right")
    each point of that column; one search for all columns, each shifted into a range of its own."""
    columns = sorted_values.shape[1]
    low = min(sorted_values.min(initial=np.inf), points.min())
    span = max(sorted_values.max(initial=-np.inf), points.max()) - low + 1.0
    offsets = np.arange(columns) * span - low
    flat = (sorted_values + offsets).T.ravel()
    starts = np.arange(columns) * len(sorted_values)
    found = np.searchsorted(flat, (points + offsets).T.ravel(), side).reshape(columns, len(points))
    return (found - starts[:, None]).T


def mixture_tests(
    references: list[CalibratedReference], weights: np.ndarray, batch: FeatureMatrix, drawn: list[np.ndarray] | None
) -> BatchTests:
    """KS of each column and chi-square of the predicted classes, the batch against the weighted mixture of the
    references; `drawn` (per source, the rows of its reference that are in the batch) leaves the batch's own
    images out of the references, as the null simulation needs."""
    size = len(batch.values)
    current = np.sort(batch.values, axis=0)
    below, up_to = np.zeros(current.shape), np.zeros(current.shape)
    shares, inverse_size = 0.0, 0.0
    for index, (reference, weight) in enumerate(zip(references, weights, strict=True)):
        if weight == 0:
            continue
        left = column_counts(reference.sorted_values, current, "left").astype(np.float64)
        right = column_counts(reference.sorted_values, current, "right").astype(np.float64)
        counts = reference.counts.astype(np.float64)
        if drawn is not None and len(drawn[index]):
            own = np.sort(reference.matrix.values[drawn[index]], axis=0)
            left -= column_counts(own, current, "left")
            right -= column_counts(own, current, "right")
            counts = counts - class_counts(reference.matrix.predicted[drawn[index]], len(counts))
        total = counts.sum()
        below += weight * left / total
        up_to += weight * right / total
        shares = shares + weight * counts / total
        inverse_size += weight**2 / total
    steps = np.arange(size)[:, None]
    distances = np.maximum((below - steps / size).max(axis=0), ((steps + 1) / size - up_to).max(axis=0))
    # The weighted CDF's variance is that of one sample of this size: the KS p-value's reference size.
    effective_size = 1 / inverse_size
    label_p, label_effect = label_shift(np.round(shares * effective_size).astype(np.int64), batch.predicted)
    return BatchTests(
        names=(*references[0].matrix.names, LABEL_SHIFT),
        p_values=np.append(ks_p_values(distances, effective_size, size), label_p),
        effects=np.append(distances, label_effect),
    )


def mixture_null(
    references: list[CalibratedReference],
    held_out: list[np.ndarray],
    weights: np.ndarray,
    size: int,
    resamples: int,
    seed: int,
) -> np.ndarray:
    """The smallest p-value of `resamples` clean batches of `size` images drawn from the references in the
    proportions `weights`, each with its weights estimated again (from its images' held-out source probabilities)
    and tested against the rest of the references. At most half of a reference is drawn, as for one source."""
    rng = np.random.default_rng([seed, size, *np.round(weights / MIXTURE_STEP).astype(int)])
    confusion = source_confusion(held_out)
    minima = np.empty(resamples)
    for draw in range(resamples):
        counts = rng.multinomial(size, weights)
        drawn = [
            rng.choice(len(reference.matrix.values), min(count, len(reference.matrix.values) // 2), replace=False)
            for reference, count in zip(references, counts, strict=True)
        ]
        batch = FeatureMatrix(
            references[0].matrix.names,
            np.concatenate([reference.matrix.values[rows] for reference, rows in zip(references, drawn, strict=True)]),
            np.concatenate(
                [reference.matrix.predicted[rows] for reference, rows in zip(references, drawn, strict=True)]
            ),
        )
        probabilities = np.concatenate([own[rows] for own, rows in zip(held_out, drawn, strict=True)])
        estimated = rounded_weights(probabilities, confusion)
        minima[draw] = mixture_tests(references, estimated, batch, drawn).p_values.min()
    return minima


@dataclass
class SourceReferences:
    """Every known source's calibrated reference, the source classifier and the references' held-out source
    probabilities; thresholds of mixtures already simulated are kept (a bench judges thousands of batches)."""

    names: tuple[str, ...]
    references: list[CalibratedReference]
    classifier: SourceClassifier | None  # None with a single source
    held_out: list[np.ndarray]  # per source, its images' held-out source probabilities; none with a single source
    resamples: int
    seed: int
    simulated: dict = field(default_factory=dict)

    def mixture_threshold(self, weights: np.ndarray, size: int, alpha: float) -> float:
        key = (tuple(np.round(weights / MIXTURE_STEP).astype(int)), size)
        if key not in self.simulated:
            self.simulated[key] = mixture_null(self.references, self.held_out, weights, size, self.resamples, self.seed)
        return calibrated_threshold(np.array([size]), self.simulated[key][None], alpha, size)


@dataclass(frozen=True)
class SourceJudgement:
    tests: BatchTests
    verdict: Verdict
    weights: dict[str, float]  # the reference each source weighs in the comparison, summing to 1
    how: str  # "named source", "one source (estimated)" or "mixture (estimated)"


def judge_by_source(
    known: SourceReferences, batch: FeatureMatrix, source: str | None, alpha: float, effect_floor: float, min_batch: int
) -> SourceJudgement:
    """The batch against its named source, or, with `source` None, against the mixture of sources it suggests."""
    if source is not None:
        if source not in known.names:
            raise PipelineError(f"no reference for source {source!r}; known sources: {', '.join(known.names)}")
        weights, how = np.array([float(name == source) for name in known.names]), "named source"
    elif known.classifier is None:
        weights, how = np.ones(1), "one source (estimated)"
    else:
        weights = rounded_weights(known.classifier.probabilities(batch.values), source_confusion(known.held_out))
        how = "one source (estimated)" if weights.max() == 1 else "mixture (estimated)"
    if weights.max() == 1:
        tests, verdict = judge_batch(known.references[int(np.argmax(weights))], batch, alpha, effect_floor, min_batch)
    else:
        size = len(batch.values)
        tests = mixture_tests(known.references, weights, batch, None)
        verdict = decide(tests, known.mixture_threshold(weights, size, alpha), effect_floor, size, min_batch)
    shown = {name: round(float(weight), 4) for name, weight in zip(known.names, weights, strict=True) if weight > 0}
    return SourceJudgement(tests, verdict, shown, how)
