"""How far an image is from what the model was trained on: a score per image, higher = more unfamiliar.

The score reads the image at several depths of the model (pipeline.model.views.with_unfamiliarity_views): its
embedding (the penultimate layer), and each convolution block's feature maps averaged and maxed over the image.
It is the sum of standardised scores, chosen by measurement (bench/unfamiliarity_methods.py) among the methods the
out-of-distribution literature compares:
- for each view, the Mahalanobis distance to the nearest class mean under one covariance shared by the classes
  (Lee, Lee, Lee and Shin, "A Simple Unified Framework for Detecting Out-of-Distribution Samples and Adversarial
  Attacks", NeurIPS 2018, whose "feature ensemble" sums it over layers). The early blocks see strokes, texture
  and noise that the embedding has already abstracted away: letters, photos and noise stand out there;
- the distance to the nearest training embedding, L2-normalised (Sun, Ming, Zhu and Li, "Out-of-Distribution
  Detection with Deep Nearest Neighbors", ICML 2022), over a seeded subsample of the training images, projected on
  its leading principal components: handwritten digits land near the garment classes' means, but far from every
  garment. The subsample and the projection keep the search within a tenth of the prediction's own cost.
Each part is divided by its spread on the validation images (none of them in the search bank, whose own members
would be at distance 0), so none dominates. The threshold is set on the same held-out validation images, so that
a chosen share of normal images is flagged; no foreign picture sets anything:

    scorer = fit(train_views, train_labels, params)
    scorer = standardised(scorer, validation_views, flag_rate)
    save(scorer, path); flagged(load(path), views)
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipeline.errors import PipelineError
from pipeline.params import param

SCALARS = ("threshold", "model_md5")
ARRAYS = ("projection_mean", "projection", "bank", "centre", "spread")


@dataclass(frozen=True)
class UnfamiliarityParams:
    SECTION: ClassVar[str] = "unfamiliarity"
    flag_rate: float = param("number", above=0, below=1)
    neighbour_bank: int = param("number", integer=True, minimum=1)
    neighbour_components: int = param("number", integer=True, minimum=1)
    seed: int = param("number", integer=True, minimum=0)
    batch_size: int = param("number", integer=True, minimum=1)


@dataclass(frozen=True)
class Unfamiliarity:
    class_means: tuple[np.ndarray, ...]  # per view (classes, D): the mean of each class's training images
    precisions: tuple[np.ndarray, ...]  # per view (D, D): pseudo-inverse of the covariance shared by the classes
    projection_mean: np.ndarray  # (E,) the training embeddings' mean, removed before projecting
    projection: np.ndarray  # (E, C) their leading principal axes
    bank: np.ndarray  # (B, C) float32: projected, L2-normalised embeddings of a subsample of the training images
    centre: np.ndarray  # (views + 1,) each part's mean on the validation images
    spread: np.ndarray  # (views + 1,) and its standard deviation there
    threshold: float = float("nan")  # scores above it are flagged; NaN until set by `standardised`
    # The md5 of the model file the views came from (as dvc.lock records it): the scorer fits that model alone, so a
    # service swapping models swaps a pair only when the scorer names the model beside it. Empty when not recorded.
    model_md5: str = ""


def fit(views: list[np.ndarray], labels: np.ndarray, params: UnfamiliarityParams) -> Unfamiliarity:
    """The scorer's statistics from the training images' views (embedding first) and labels; not yet standardised."""
    labels = np.asarray(labels)
    if len(labels) < 2 or any(len(view) != len(labels) for view in views):
        raise PipelineError(f"need training views and one label each: {[len(view) for view in views]}, {len(labels)}")
    means, precisions = zip(*(class_statistics(np.asarray(view, np.float64), labels) for view in views), strict=True)
    from sklearn.decomposition import PCA

    embeddings = np.asarray(views[0], np.float64)
    components = min(params.neighbour_components, *embeddings.shape)
    pca = PCA(n_components=components, svd_solver="randomized", random_state=params.seed).fit(embeddings)
    chosen = np.random.default_rng(params.seed).permutation(len(embeddings))[: params.neighbour_bank]
    unscaled = Unfamiliarity(
        means, precisions, pca.mean_, pca.components_.T, np.zeros((0, components), np.float32), np.zeros(0), np.zeros(0)
    )
    return replace(unscaled, bank=projected(unscaled, embeddings[np.sort(chosen)]))


def class_statistics(view: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes = np.unique(labels)
    means = np.stack([view[labels == label].mean(axis=0) for label in classes])
    # One covariance of the views around their own class's mean (Lee et al.'s "tied" covariance); the
    # pseudo-inverse, because units a ReLU never turns on make the covariance singular.
    centred = view - means[np.searchsorted(classes, labels)]
    precision = np.linalg.pinv(centred.T @ centred / len(view), hermitian=True)
    return means.astype(np.float32), precision.astype(np.float32)


def projected(scorer: Unfamiliarity, embeddings: np.ndarray) -> np.ndarray:
    """Embeddings on the principal axes, L2-normalised, float32 (the nearest-neighbour search's space)."""
    centre = np.asarray(scorer.projection_mean, np.float32)
    points = (np.asarray(embeddings, np.float32) - centre) @ np.asarray(scorer.projection, np.float32)
    return points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)


def mahalanobis(means: np.ndarray, precision: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance to the nearest class mean (Lee et al. 2018, their confidence score negated).

    In float32, as the model's outputs come: a relative error of about 1e-6 against float64, at a twentieth of its
    time on 10,000 embeddings (float64 copies of fresh arrays cost more than the products themselves)."""
    view = np.asarray(view, dtype=np.float32)
    means, precision = np.asarray(means, dtype=np.float32), np.asarray(precision, dtype=np.float32)
    # (x - m)' P (x - m) = x'Px - 2 x'Pm + m'Pm, for every class at once: matrix products, no (N, classes, D) array.
    weighted = view @ precision
    own = np.einsum("nd,nd->n", weighted, view)
    # m'Pm as a matrix product: einsum's own loop over k, d and e would cost 3 ms per call at D = 512, which a
    # service predicting one image at a time pays on every request.
    of_means = ((means @ precision) * means).sum(axis=1)
    return (own[:, None] - 2 * weighted @ means.T + of_means[None]).min(axis=1).astype(np.float64)


def nearest_distance(scorer: Unfamiliarity, embeddings: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Squared distance to the nearest bank member, between unit vectors (Sun et al. 2022 with k = 1): squared, like
    the Mahalanobis distances it is summed with (measured: the unsquared distance separates digits less well)."""
    queries = projected(scorer, embeddings)
    nearest = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), chunk):  # a chunk's similarities to the bank: 40 MB at 10,000 members
        nearest[start : start + chunk] = (queries[start : start + chunk] @ scorer.bank.T).max(axis=1)
    return np.maximum(2 - 2 * nearest.astype(np.float64), 0)  # |a - b|^2 = 2 - 2 cos(a, b)


def parts(scorer: Unfamiliarity, views: list[np.ndarray]) -> np.ndarray:
    """(N, views + 1): each view's Mahalanobis distance, then the nearest-neighbour distance."""
    if len(views) != len(scorer.precisions):
        raise PipelineError(f"the scorer reads {len(scorer.precisions)} views of an image, got {len(views)}")
    distances = [
        mahalanobis(m, p, view) for m, p, view in zip(scorer.class_means, scorer.precisions, views, strict=True)
    ]
    return np.stack([*distances, nearest_distance(scorer, views[0])], axis=1)


def scores(scorer: Unfamiliarity, views: list[np.ndarray]) -> np.ndarray:
    """The unfamiliarity of each image: the sum of its parts, each standardised on the validation images."""
    return ((parts(scorer, views) - scorer.centre) / scorer.spread).sum(axis=1)


def standardised(scorer: Unfamiliarity, validation_views: list[np.ndarray], flag_rate: float) -> Unfamiliarity:
    """The scorer with each part's centre and spread, and the threshold, set on held-out normal images."""
    raw = parts(scorer, validation_views)
    spread = raw.std(axis=0)
    scaled = replace(scorer, centre=raw.mean(axis=0), spread=np.where(spread > 0, spread, 1.0))
    return replace(scaled, threshold=threshold_at(scores(scaled, validation_views), flag_rate))


def threshold_at(validation_scores: np.ndarray, flag_rate: float) -> float:
    """The score above which `flag_rate` of these (normal, held-out) images lie."""
    if not 0 < flag_rate < 1:
        raise PipelineError(f"flag_rate must be between 0 and 1, got {flag_rate}")
    if len(validation_scores) == 0:
        raise PipelineError("no validation scores to set the threshold on")
    # "higher" rather than interpolation: a score of the validation images themselves, flagging at most the rate.
    return float(np.quantile(validation_scores, 1 - flag_rate, method="higher"))


def flagged(scorer: Unfamiliarity, views: list[np.ndarray]) -> np.ndarray:
    """Whether each image scores above the scorer's threshold (which must have been set)."""
    if np.isnan(scorer.threshold):
        raise PipelineError("the unfamiliarity threshold is not set (see standardised)")
    return scores(scorer, views) > scorer.threshold


def save(scorer: Unfamiliarity, path: Path) -> None:
    """Every field as a plain array in an uncompressed .npz (readable without pickle)."""
    fields = {name: np.asarray(getattr(scorer, name)) for name in (*ARRAYS, *SCALARS)}
    for index, (means, precision) in enumerate(zip(scorer.class_means, scorer.precisions, strict=True)):
        fields[f"class_means_{index}"], fields[f"precision_{index}"] = means, precision
    with open(path, "wb") as file:  # a file object: np.savez would add ".npz" to a path without it
        np.savez(file, **fields)


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
            values = {name: arrays[name] for name in arrays.files}
        views = sum(name.startswith("precision_") for name in values)
        means = tuple(values[f"class_means_{index}"] for index in range(views))
        precisions = tuple(values[f"precision_{index}"] for index in range(views))
        scorer = Unfamiliarity(
            means,
            precisions,
            *(values[name] for name in ARRAYS),
            threshold=float(values["threshold"]),
            model_md5=str(values["model_md5"]) if "model_md5" in values else "",
        )
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as error:
        raise PipelineError(f"{path}: not an unfamiliarity .npz ({' '.join(str(error).split())[:200]})") from None
    check_consistent(path, scorer)
    return scorer


def file_md5(path: Path) -> str:
    """A file's md5, as DVC records it for a file output."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_consistent(path: Path, scorer: Unfamiliarity) -> None:
    if not np.isfinite(scorer.threshold):
        raise PipelineError(f"{path}: no threshold set (got {scorer.threshold}); the unfamiliarity stage sets one")
    shapes = [
        (means.shape, precision.shape) for means, precision in zip(scorer.class_means, scorer.precisions, strict=True)
    ]
    if not shapes or any(len(m) != 2 or p != (m[1], m[1]) for m, p in shapes):
        raise PipelineError(f"{path}: inconsistent class means and precisions {shapes}")
    width, components = scorer.projection.shape if scorer.projection.ndim == 2 else (-1, -1)
    if (width, scorer.projection_mean.shape, scorer.bank.shape[1:]) != (shapes[0][0][1], (width,), (components,)):
        raise PipelineError(f"{path}: inconsistent projection {scorer.projection.shape} and bank {scorer.bank.shape}")
    parts_count = len(shapes) + 1
    if scorer.centre.shape != (parts_count,) or scorer.spread.shape != (parts_count,):
        raise PipelineError(f"{path}: corrupt standardisation (centre {scorer.centre}, spread {scorer.spread})")
    if not (np.isfinite(scorer.centre).all() and (scorer.spread > 0).all()):
        raise PipelineError(f"{path}: corrupt standardisation (centre {scorer.centre}, spread {scorer.spread})")
