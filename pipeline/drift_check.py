"""Does a batch of images still look like the reference? Evidently's comparison and its summary, for the drift stage.

Each image becomes a row of features (pipeline/drift_features.py); Evidently compares each feature's
distribution in the batch with the reference (normalised Wasserstein distance for numbers, Jensen-Shannon
for the predicted class) and calls the dataset drifted when enough features drifted.
"""

from __future__ import annotations

import warnings

import pandas as pd

from pipeline.drift_features import feature_table, fit_components, image_features
from pipeline.drift_params import DriftParams
from pipeline.shifts import SCENARIOS, apply_shift

PREDICTION = "predicted_class"


def compare(reference: pd.DataFrame, current: pd.DataFrame, params: DriftParams):
    """Evidently's data drift preset over every feature column; returns its snapshot."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numerical = [column for column in reference.columns if column != PREDICTION]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=[PREDICTION])
    preset = DataDriftPreset(
        drift_share=params.drift_share,
        num_method="wasserstein",
        cat_method="jensenshannon",
        threshold=params.feature_threshold,
    )
    with warnings.catch_warnings():
        # Evidently's histograms divide by zero-width bins on constant columns; harmless.
        warnings.simplefilter("ignore", RuntimeWarning)
        return Report([preset], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )


def drift_summary(
    snapshot, reference: pd.DataFrame, current: pd.DataFrame, params: DriftParams, class_names: tuple[str, ...]
) -> dict:
    """What a person (and the monitor flow) needs from the report, in plain json."""
    scores = {
        metric["config"]["column"]: round(float(metric["value"]), 4)
        for metric in snapshot.dict()["metrics"]
        if metric["config"].get("type", "").endswith("ValueDrift")
    }
    drifted = {
        name: score
        for name, score in sorted(scores.items(), key=lambda item: -item[1])
        if score >= params.feature_threshold
    }
    share = len(drifted) / len(scores)
    class_shares = (
        pd.DataFrame(
            {
                "reference": reference[PREDICTION].value_counts(normalize=True),
                "current": current[PREDICTION].value_counts(normalize=True),
            }
        )
        .reindex(list(class_names))
        .fillna(0.0)
    )
    return {
        "dataset_drift": share >= params.drift_share,
        "drifted_share": round(share, 4),
        "drifted_count": len(drifted),
        "feature_count": len(scores),
        "drifted_features": drifted,
        "feature_scores": scores,
        "prediction_drift": {
            "score": scores[PREDICTION],
            "drifted": PREDICTION in drifted,
            "class_shares": {
                name: {"reference": round(float(row.reference), 4), "current": round(float(row.current), 4)}
                for name, row in class_shares.iterrows()
            },
        },
        "thresholds": {"feature": params.feature_threshold, "drift_share": params.drift_share},
    }


def check_drift(model, reference_features, batch, params: DriftParams, class_names) -> tuple[object, dict]:
    images, labels = apply_shift(batch.images, batch.labels, params.scenario, params.strength, params.seed)
    current_features = image_features(model, images, params.batch_size)
    components = fit_components(reference_features.embeddings, params.embedding_components, params.seed)
    reference = feature_table(reference_features, components, class_names)
    current = feature_table(current_features, components, class_names)
    snapshot = compare(reference, current, params)
    summary = drift_summary(snapshot, reference, current, params, class_names)
    strength = params.strength
    if params.scenario != "none" and strength is None:
        strength = SCENARIOS[params.scenario][1]
    summary["batch"] = {"images": len(images), "scenario": params.scenario, "strength": strength}
    summary["reference"] = {"split": params.reference, "images": len(reference)}
    return snapshot, summary
