"""How far an image is from what the model was trained on: a score per image, higher = more unfamiliar.

The score is computed on the model's embedding (the penultimate layer, pipeline.model.network.with_embedding_output) and
is the sum of two standardised scores, chosen by measurement (bench/unfamiliarity_methods.py) among the methods
the out-of-distribution literature compares:
- the Mahalanobis distance to the nearest class mean, under one covariance shared by the classes (Lee, Lee, Lee
  and Shin, "A Simple Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks",
  NeurIPS 2018). It catches pictures far from all garments (letters, noise, photos) but not handwritten digits,
  which land near the garment classes' means;
- the energy score, minus the log-sum-exp of the logits (Liu, Wang, Owens and Li, "Energy-based
  Out-of-distribution Detection", NeurIPS 2020), the output layer applied to the embedding. It catches the digits,
  on which no class's logit is high, and misses letters and noise that do raise one.
Each is divided by its spread on the training images, so neither dominates. The distance to the nearest training
embeddings (Sun et al., ICML 2022) separates about as well, but costs a search through thousands of them per
image; the maximum softmax probability alone misses most foreign pictures. The threshold is set on held-out
validation images so that a chosen share of normal images is flagged:

    scorer = fit(train_embeddings, train_labels, *output_weights(model))
    scorer = dataclasses.replace(scorer, threshold=threshold_at(scores(scorer, validation_embeddings), 0.05))
    save(scorer, path); flagged(load(path), embeddings)
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy.special import logsumexp

from pipeline.errors import PipelineError
from pipeline.params import param

FIELDS = ("class_means", "precision", "logit_weights", "logit_bias", "centre", "spread", "threshold")


@dataclass(frozen=True)
class UnfamiliarityParams:
    SECTION: ClassVar[str] = "unfamiliarity"
    flag_rate: float = param("number", above=0, below=1)
    batch_size: int = param("number", integer=True, minimum=1)


@dataclass(frozen=True)
class Unfamiliarity:
    class_means: np.ndarray  # (classes, D) mean training embedding of each class
    precision: np.ndarray  # (D, D) pseudo-inverse of the covariance shared by the classes
    logit_weights: np.ndarray  # (D, classes) the output layer's kernel
    logit_bias: np.ndarray  # (classes,) and its bias
    centre: np.ndarray  # (2,) the Mahalanobis distance's and the energy's mean on the training images
    spread: np.ndarray  # (2,) and their standard deviation there
    threshold: float = float("nan")  # scores above it are flagged; NaN until set with threshold_at


def fit(embeddings: np.ndarray, labels: np.ndarray, logit_weights: np.ndarray, logit_bias: np.ndarray) -> Unfamiliarity:
    """The scorer's statistics from training embeddings and their labels (no threshold yet: see threshold_at)."""
    embeddings, labels = np.asarray(embeddings, dtype=np.float64), np.asarray(labels)
    if len(embeddings) < 2 or len(embeddings) != len(labels):
        raise PipelineError(f"need training embeddings and one label each: {len(embeddings)}, {len(labels)}")
    classes = np.unique(labels)
    class_means = np.stack([embeddings[labels == label].mean(axis=0) for label in classes])
    # One covariance of the embeddings around their own class's mean (Lee et al.'s "tied" covariance); the
    # pseudo-inverse, because units a ReLU never turns on make the covariance singular.
    centred = embeddings - class_means[np.searchsorted(classes, labels)]
    precision = np.linalg.pinv(centred.T @ centred / len(embeddings), hermitian=True)
    weights, bias = np.asarray(logit_weights, dtype=np.float64), np.asarray(logit_bias, dtype=np.float64)
    unstandardised = Unfamiliarity(class_means, precision, weights, bias, np.zeros(2), np.ones(2))
    parts = _parts(unstandardised, embeddings)
    return Unfamiliarity(class_means, precision, weights, bias, parts.mean(axis=0), parts.std(axis=0))


def mahalanobis(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance to the nearest class mean (Lee et al. 2018, their confidence score negated)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    # (x - m)' P (x - m) = x'Px - 2 x'Pm + m'Pm, for every class at once: matrix products, no (N, classes, D) array.
    projected = embeddings @ scorer.precision
    own = np.einsum("nd,nd->n", projected, embeddings)
    means = np.einsum("kd,de,ke->k", scorer.class_means, scorer.precision, scorer.class_means)
    return (own[:, None] - 2 * projected @ scorer.class_means.T + means[None]).min(axis=1)


def energy(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    """The energy score -logsumexp(logits) (Liu et al. 2020): low where some class's logit is high."""
    logits = np.asarray(embeddings, dtype=np.float64) @ scorer.logit_weights + scorer.logit_bias
    return -logsumexp(logits, axis=1)


def _parts(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    return np.stack([mahalanobis(scorer, embeddings), energy(scorer, embeddings)], axis=1)


def scores(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    """The unfamiliarity of each embedding: the sum of the two scores, each standardised on training images."""
    return ((_parts(scorer, embeddings) - scorer.centre) / scorer.spread).sum(axis=1)


def threshold_at(validation_scores: np.ndarray, flag_rate: float) -> float:
    """The score above which `flag_rate` of these (normal, held-out) images lie."""
    if not 0 < flag_rate < 1:
        raise PipelineError(f"flag_rate must be between 0 and 1, got {flag_rate}")
    if len(validation_scores) == 0:
        raise PipelineError("no validation scores to set the threshold on")
    # "higher" rather than interpolation: a score of the validation images themselves, flagging at most the rate.
    return float(np.quantile(validation_scores, 1 - flag_rate, method="higher"))


def flagged(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    """Whether each image scores above the scorer's threshold (which must have been set)."""
    if np.isnan(scorer.threshold):
        raise PipelineError("the unfamiliarity threshold is not set (see threshold_at)")
    return scores(scorer, embeddings) > scorer.threshold


def save(scorer: Unfamiliarity, path: Path) -> None:
    """Every field as a plain array in an uncompressed .npz (readable without pickle)."""
    with open(path, "wb") as file:  # a file object: np.savez would add ".npz" to a path without it
        np.savez(file, **{name: np.asarray(getattr(scorer, name)) for name in FIELDS})


def load(path: Path) -> Unfamiliarity:
    """A saved scorer; a missing, unreadable or inconsistent file is a PipelineError naming it."""
    if not Path(path).is_file():
        raise PipelineError(
            f"{path}: unfamiliarity file not found (the unfamiliarity stage writes it beside the model)"
        )
    if not zipfile.is_zipfile(path):  # np.load would try to unpickle it, and say so
        raise PipelineError(f"{path}: not an unfamiliarity .npz (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            values = {name: arrays[name] for name in FIELDS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise PipelineError(f"{path}: not an unfamiliarity .npz ({' '.join(str(error).split())[:200]})") from None
    means, precision, weights = values["class_means"], values["precision"], values["logit_weights"]
    width = means.shape[-1] if means.ndim == 2 else -1
    if (
        precision.shape != (width, width)
        or weights.shape != (width, len(means))
        or values["logit_bias"].shape != (len(means),)
    ):
        raise PipelineError(f"{path}: inconsistent shapes {means.shape}, {precision.shape}, {weights.shape}")
    centre, spread, threshold = values["centre"], values["spread"], values["threshold"]
    if centre.shape != (2,) or spread.shape != (2,) or not (np.isfinite(centre).all() and (spread > 0).all()):
        raise PipelineError(f"{path}: corrupt standardisation (centre {centre}, spread {spread})")
    if threshold.shape != () or not np.isfinite(threshold):
        raise PipelineError(f"{path}: no threshold set (got {threshold}); the unfamiliarity stage sets one")
    return Unfamiliarity(
        means, precision, weights, values["logit_bias"], values["centre"], values["spread"], float(values["threshold"])
    )
