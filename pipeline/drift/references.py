"""The drift references on disk: one per source of the reference split, written by the drift_reference stage for the
model in use (so a promotion, which reruns it, recomputes them from the new model's features), read by the drift
stage and the benches.

    <folder>/sources.json                    the sources, their image counts, the split they come from
    <folder>/<source>.features.npz           that source's reference features (pipeline/drift/features.py)
    <folder>/<source>.null.npz               the null of its smallest p-value (pipeline/drift/stat_tests.py)
    <folder>/classifier.npz                  the source classifier and held-out probabilities (two sources or more)

The embedding's principal components are fitted on all sources' embeddings together, so every source's features
lie in one space and a mixture of them can be compared with a batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.drift.features import ImageFeatures, fit_components, load_features, save_features
from pipeline.drift.sources import SourceClassifier, SourceReferences, fit_classifier
from pipeline.drift.stat_tests import (
    CalibratedReference,
    FeatureMatrix,
    calibrate,
    feature_matrix,
    load_null,
    save_null,
    with_null,
)
from pipeline.errors import PipelineError

SOURCES_FILE = "sources.json"
CLASSIFIER_FIELDS = ("mean", "scale", "coefficients", "intercepts")


@dataclass
class LoadedReferences:
    known: SourceReferences
    features: dict[str, ImageFeatures]  # by source
    components: object  # the fitted PCA of the embeddings


def common_components(features: list[ImageFeatures], count: int, seed: int):
    return fit_components(np.concatenate([feature.embeddings for feature in features]), count, seed)


def build_references(
    features: dict[str, ImageFeatures], classes: int, components_count: int, resamples: int, seed: int
) -> tuple[list[CalibratedReference], tuple[SourceClassifier, list[np.ndarray]] | None]:
    """Each source's calibrated reference, and with two sources or more the source classifier."""
    components = common_components(list(features.values()), components_count, seed)
    # Column names do not matter to the null or the classifier: only the values are used.
    names = tuple(str(index) for index in range(classes))
    matrices = [feature_matrix(feature, components, names) for feature in features.values()]
    references = [calibrate(matrix, classes, resamples, seed) for matrix in matrices]
    return references, (fit_classifier(matrices, seed) if len(matrices) > 1 else None)


def save_references(folder: Path, features: dict[str, ImageFeatures], references, classifier, split: str) -> None:
    """Every file of the folder (which must be new: the stage writes it into a staging folder)."""
    folder.mkdir(parents=True)
    for source, reference in zip(features, references, strict=True):
        save_features(folder / f"{source}.features.npz", features[source])
        save_null(folder / f"{source}.null.npz", reference)
    if classifier is not None:
        model, held_out = classifier
        arrays = {name: getattr(model, name) for name in CLASSIFIER_FIELDS}
        arrays.update({f"held_out_{index}": probabilities for index, probabilities in enumerate(held_out)})
        with open(folder / "classifier.npz", "wb") as file:
            np.savez(file, **arrays)
    sources = [{"source": source, "images": len(feature.probabilities)} for source, feature in features.items()]
    (folder / SOURCES_FILE).write_text(json.dumps({"split": split, "sources": sources}, indent=2) + "\n")


def load_references(
    folder: Path, class_names: tuple[str, ...], components_count: int, resamples: int, seed: int
) -> LoadedReferences:
    """The references as the drift stage judges against them; a missing or incomplete folder is one line."""
    try:
        listed = json.loads((folder / SOURCES_FILE).read_text())["sources"]
        names = tuple(entry["source"] for entry in listed)
        features = {name: load_features(folder / f"{name}.features.npz") for name in names}
        nulls = [load_null(folder / f"{name}.null.npz") for name in names]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PipelineError(
            f"{folder}: not a drift reference folder ({' '.join(str(error).split())[:160]}); "
            "run the drift_reference stage"
        ) from None
    components = common_components(list(features.values()), components_count, seed)
    matrices = [feature_matrix(feature, components, class_names) for feature in features.values()]
    references = [with_null(matrix, len(class_names), *null) for matrix, null in zip(matrices, nulls, strict=True)]
    classifier, held_out = None, []  # one source: no mix to estimate
    if len(names) > 1:
        classifier, held_out = load_classifier(folder / "classifier.npz", len(names))
    known = SourceReferences(names, references, classifier, held_out, resamples, seed)
    return LoadedReferences(known, features, components)


def load_classifier(path: Path, sources: int) -> tuple[SourceClassifier, list[np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            model = SourceClassifier(*(arrays[name] for name in CLASSIFIER_FIELDS))
            held_out = [arrays[f"held_out_{index}"] for index in range(sources)]
    except (OSError, ValueError, KeyError) as error:
        raise PipelineError(f"{path}: not a source classifier ({' '.join(str(error).split())[:160]})") from None
    return model, held_out


def matrix_of(loaded: LoadedReferences, features: ImageFeatures, class_names: tuple[str, ...]) -> FeatureMatrix:
    """A batch's features in the references' space."""
    return feature_matrix(features, loaded.components, class_names)
