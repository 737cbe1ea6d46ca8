"""Does a batch of images still look like the reference? The verdict (pipeline/drift/stat_tests.py), its summary in
plain json, and Evidently's report of the same feature distributions, for the drift stage.

Each image becomes a row of features (pipeline/drift/features.py). The verdict is a calibrated test with a stated
false-alarm rate; Evidently draws each feature's distribution with the same tests (KS for numbers, chi-square for
the predicted class) at the verdict's per-test threshold, so a person sees what the verdict saw.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.drift.features import ImageFeatures, feature_table, image_features
from pipeline.drift.params import DriftParams
from pipeline.drift.references import LoadedReferences, matrix_of
from pipeline.drift.shifts import SCENARIOS, apply_shift
from pipeline.drift.sources import judge_by_source
from pipeline.drift.stat_tests import BatchTests, FeatureMatrix, Verdict, feature_matrix

PREDICTION = "predicted_class"


def compare(reference: pd.DataFrame, current: pd.DataFrame, threshold: float, title: str = "Drift check"):
    """Evidently's data drift preset over every feature column, KS / chi-square at `threshold`; its snapshot,
    named `title` (what was checked)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numerical = [column for column in reference.columns if column != PREDICTION]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=[PREDICTION])
    # Evidently's dataset verdict as close to ours as it can say it: any one column.
    preset = DataDriftPreset(
        drift_share=0.999 / len(reference.columns), num_method="ks", cat_method="chisquare", threshold=threshold
    )
    with warnings.catch_warnings():
        # Evidently's histograms divide by zero-width bins on constant columns; harmless.
        warnings.simplefilter("ignore", RuntimeWarning)
        return Report([preset], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
            name=title,
        )


@dataclass
class DriftCheck:
    """One check: the batch as checked (shift applied), its features and tests, the verdict and Evidently's view."""

    images: np.ndarray
    features: ImageFeatures
    matrix: FeatureMatrix
    reference_matrix: FeatureMatrix
    results: BatchTests
    verdict: Verdict
    snapshot: object
    summary: dict
    reference: ImageFeatures  # the reference as compared: one source's, or the mix of sources the batch looks like
    title: str  # what was checked, in words


def distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance in units of the reference's standard deviation: how far, in words a person reads."""
    return float(stats.wasserstein_distance(reference, current) / (reference.std() or 1.0))


def per_test_rows(check: DriftCheck) -> dict[str, dict]:
    """Per test: p-value, effect (KS distance or total variation) and the normalised distance, most significant
    first."""
    rows = {}
    for index in np.argsort(check.results.p_values):
        name = check.results.names[index]
        row = {
            "p_value": float(f"{check.results.p_values[index]:.3g}"),
            "effect": round(float(check.results.effects[index]), 4),
        }
        if index < len(check.matrix.names):
            row["distance"] = round(distance(check.reference_matrix.values[:, index], check.matrix.values[:, index]), 4)
        rows[name] = row
    return rows


def drift_summary(check: DriftCheck, params: DriftParams, class_names: tuple[str, ...]) -> dict:
    """What a person (and the monitor flow) needs from the check, in plain json."""
    verdict = check.verdict
    classes = len(class_names)
    reference_shares = np.bincount(check.reference_matrix.predicted, minlength=classes) / len(
        check.reference_matrix.predicted
    )
    batch_shares = np.bincount(check.matrix.predicted, minlength=classes) / max(len(check.matrix.predicted), 1)
    return {
        "verdict": verdict.status,
        "dataset_drift": verdict.status == "drift",
        "reason": verdict.reason,
        "smallest_p_value": float(f"{verdict.smallest_p:.3g}"),
        "threshold": float(f"{verdict.threshold:.3g}"),
        "alpha": params.alpha,
        "effect_floor": params.effect_floor,
        "min_batch": params.min_batch,
        "rejected": list(verdict.rejected),
        "drifted_count": len(verdict.rejected),
        "feature_count": len(check.results.names),
        "tests": per_test_rows(check),
        "prediction_drift": {
            "class_shares": {
                name: {
                    "reference": round(float(reference_shares[index]), 4),
                    "current": round(float(batch_shares[index]), 4),
                }
                for index, name in enumerate(class_names)
            },
        },
    }


def mixed_reference(loaded: LoadedReferences, weights: dict[str, float], seed: int) -> ImageFeatures:
    """The references' images in the proportions `weights`, as a person and Evidently see the comparison: all of
    the source that limits the mix and a seeded share of the others (for one source, its reference as it is)."""
    if len(weights) == 1:
        return loaded.features[next(iter(weights))]
    rng = np.random.default_rng(seed)
    sizes = {source: len(loaded.features[source].probabilities) for source in weights}
    total = min(sizes[source] / weight for source, weight in weights.items())
    parts = []
    for source, weight in weights.items():
        features = loaded.features[source]
        rows = np.sort(rng.permutation(sizes[source])[: max(1, int(round(weight * total)))])
        shown = features.sample_images
        samples = shown[: max(1, int(round(weight * len(shown))))] if shown is not None else None
        parts.append((features, rows, samples))
    return ImageFeatures(
        pixels=pd.concat([features.pixels.iloc[rows] for features, rows, _ in parts], ignore_index=True),
        probabilities=np.concatenate([features.probabilities[rows] for features, rows, _ in parts]),
        embeddings=np.concatenate([features.embeddings[rows] for features, rows, _ in parts]),
        # Shuffled, so that the page's first few show every source of the mix.
        sample_images=rng.permutation(np.concatenate([samples for _, _, samples in parts if samples is not None])),
    )


def check_drift(
    model, loaded: LoadedReferences, batch, params: DriftParams, class_names, source: str | None, title: str
) -> DriftCheck:
    """The batch (shifted as params say) against its source's reference, or with `source` None against the mix of
    known sources it looks like (pipeline/drift/sources.py)."""
    images, labels = apply_shift(batch.images, batch.labels, params.scenario, params.strength, params.seed)
    current_features = image_features(model, images, params.batch_size)
    matrix = matrix_of(loaded, current_features, class_names)
    judgement = judge_by_source(loaded.known, matrix, source, params.alpha, params.effect_floor, params.min_batch)
    mixed = mixed_reference(loaded, judgement.weights, params.seed)
    reference_matrix = feature_matrix(mixed, loaded.components, class_names)
    snapshot = compare(
        feature_table(mixed, loaded.components, class_names),
        feature_table(current_features, loaded.components, class_names),
        judgement.verdict.threshold,
        title,
    )
    check = DriftCheck(
        images,
        current_features,
        matrix,
        reference_matrix,
        judgement.tests,
        judgement.verdict,
        snapshot,
        {},
        mixed,
        title,
    )
    check.summary = drift_summary(check, params, class_names)
    strength = params.strength
    if params.scenario != "none" and strength is None:
        strength = SCENARIOS[params.scenario][1]
    check.summary["batch"] = {"images": len(images), "scenario": params.scenario, "strength": strength}
    check.summary["reference"] = {
        "split": params.reference,
        "images": len(reference_matrix.values),
        "sources": judgement.weights,
        "chosen": judgement.how,
        "known_sources": list(loaded.known.names),
    }
    return check
