"""How far an image is from what the model was trained on: a score per image, higher = more unfamiliar.

The score is computed on the model's embedding (the penultimate layer, pipeline.model.with_embedding_output) and
is the sum of two standardised distances, chosen by measurement (bench/unfamiliarity_methods.py) among the
methods the out-of-distribution literature compares:
- Mahalanobis distance to the nearest class mean, under one covariance shared by the classes (Lee, Lee, Lee and
  Shin, "A Simple Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks",
  NeurIPS 2018). It catches pictures far from all garments (letters, noise, photos) but not handwritten digits,
  which land near the garment classes' means;
- the distance to the k-th nearest training embedding, both L2-normalised (Sun, Ming, Zhu and Li,
  "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022). It catches the digits, which fall
  between the training embeddings, and is weaker on the rest.
Each is divided by its spread on training images outside the neighbour bank, so neither dominates; the maximum
softmax probability alone misses most of these pictures. The threshold is set on held-out validation images so
that a chosen share of normal images (5%) is flagged:

    scorer = fit(train_embeddings, train_labels)
    scorer = dataclasses.replace(scorer, threshold=threshold_at(scores(scorer, validation_embeddings), 0.05))
    save(scorer, path); flagged(load(path), embeddings)
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipeline.errors import PipelineError
from pipeline.params import param

BANK_SIZE = 10_000  # training embeddings kept for the neighbour search: a fifth of the training split
NEIGHBOURS = 10  # Sun et al. take k=50 over all of CIFAR-10's 50,000; k scales with the share kept
STANDARDISING = 5_000  # training embeddings outside the bank that set each distance's centre and spread
CHUNK = 1024  # rows per similarity block: 1024 x 10,000 float32 is 40 MB
FIELDS = ("class_means", "precision", "bank", "neighbours", "centre", "spread", "threshold")


@dataclass(frozen=True)
class UnfamiliarityParams:
    SECTION: ClassVar[str] = "unfamiliarity"
    flag_rate: float = param("number", above=0, below=1)
    bank_size: int = param("number", integer=True, minimum=100)
    seed: int = param("number", integer=True, minimum=0)
    batch_size: int = param("number", integer=True, minimum=1)


@dataclass(frozen=True)
class Unfamiliarity:
    class_means: np.ndarray  # (classes, D) mean training embedding of each class
    precision: np.ndarray  # (D, D) pseudo-inverse of the covariance shared by the classes
    bank: np.ndarray  # (M, D) float32 L2-normalised training embeddings
    neighbours: int  # k: the k-th nearest bank embedding gives the distance
    centre: np.ndarray  # (2,) Mahalanobis and kNN distances' mean on training images outside the bank
    spread: np.ndarray  # (2,) and their standard deviation there
    threshold: float = float("nan")  # scores above it are flagged; NaN until set with threshold_at


def fit(embeddings: np.ndarray, labels: np.ndarray, seed: int = 0, bank_size: int = BANK_SIZE) -> Unfamiliarity:
    """The scorer's statistics from training embeddings and their labels (no threshold yet: see threshold_at)."""
    embeddings, labels = np.asarray(embeddings, dtype=np.float64), np.asarray(labels)
    if len(embeddings) <= bank_size or len(embeddings) != len(labels):
        raise PipelineError(
            f"need over {bank_size} training embeddings and one label each: {len(embeddings)}, {len(labels)}"
        )
    classes = np.unique(labels)
    class_means = np.stack([embeddings[labels == label].mean(axis=0) for label in classes])
    # One covariance of the embeddings around their own class's mean (Lee et al.'s "tied" covariance); the
    # pseudo-inverse, because units a ReLU never turns on make the covariance singular.
    centred = embeddings - class_means[np.searchsorted(classes, labels)]
    precision = np.linalg.pinv(centred.T @ centred / len(embeddings), hermitian=True)
    order = np.random.default_rng(seed).permutation(len(embeddings))
    bank = _normalised(embeddings[order[:bank_size]])
    unstandardised = Unfamiliarity(class_means, precision, bank, NEIGHBOURS, np.zeros(2), np.ones(2))
    # Images in the bank are their own nearest neighbour: the spreads come from images left out of it.
    held_out = embeddings[order[bank_size : bank_size + STANDARDISING]]
    distances = np.stack([mahalanobis(unstandardised, held_out), knn_distance(unstandardised, held_out)])
    return Unfamiliarity(class_means, precision, bank, NEIGHBOURS, distances.mean(axis=1), distances.std(axis=1))


def _normalised(embeddings: np.ndarray) -> np.ndarray:
    lengths = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(lengths, 1e-12)).astype(np.float32)


def mahalanobis(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance to the nearest class mean (Lee et al. 2018, their confidence score negated)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    # (x - m)' P (x - m) = x'Px - 2 x'Pm + m'Pm, for every class at once: matrix products, no (N, classes, D) array.
    projected = embeddings @ scorer.precision
    own = np.einsum("nd,nd->n", projected, embeddings)
    means = np.einsum("kd,de,ke->k", scorer.class_means, scorer.precision, scorer.class_means)
    return (own[:, None] - 2 * projected @ scorer.class_means.T + means[None]).min(axis=1)


def knn_distance(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    """Euclidean distance between normalised embeddings to the k-th nearest in the bank (Sun et al. 2022)."""
    queries = _normalised(np.asarray(embeddings))
    kth = np.empty(len(queries))
    for start in range(0, len(queries), CHUNK):
        similarity = queries[start : start + CHUNK] @ scorer.bank.T
        kth[start : start + CHUNK] = np.partition(similarity, -scorer.neighbours, axis=1)[:, -scorer.neighbours]
    # Unit vectors: |a - b|^2 = 2 - 2 cos(a, b).
    return np.sqrt(np.maximum(2 - 2 * kth, 0))


def scores(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    """The unfamiliarity of each embedding: the sum of the two distances, each standardised on training images."""
    distances = np.stack([mahalanobis(scorer, embeddings), knn_distance(scorer, embeddings)], axis=1)
    return ((distances - scorer.centre) / scorer.spread).sum(axis=1)


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
    np.savez(path, **{name: np.asarray(getattr(scorer, name)) for name in FIELDS})


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
    means, precision, bank = values["class_means"], values["precision"], values["bank"]
    width = means.shape[-1] if means.ndim == 2 else -1
    if precision.shape != (width, width) or bank.ndim != 2 or bank.shape[1] != width or len(bank) == 0:
        raise PipelineError(f"{path}: inconsistent shapes {means.shape}, {precision.shape}, {bank.shape}")
    if values["centre"].shape != (2,) or values["spread"].shape != (2,) or not 1 <= values["neighbours"] <= len(bank):
        raise PipelineError(f"{path}: corrupt standardisation or neighbour count")
    return Unfamiliarity(
        means,
        precision,
        bank,
        int(values["neighbours"]),
        values["centre"],
        values["spread"],
        float(values["threshold"]),
    )
