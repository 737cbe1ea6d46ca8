"""What the drift report compares: a row per image of features that move when the images move.

- pixel statistics: brightness, contrast, how much of the frame the garment fills, where it sits, how sharp it is;
- the model's outputs: predicted class name, confidence, entropy;
- the model's embedding (its penultimate layer), as principal components fitted on the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.model.network import with_embedding_output

INK_LEVEL = 64  # of 255: a pixel at least this bright belongs to the garment, not the background


@dataclass
class ImageFeatures:
    pixels: pd.DataFrame  # one column per pixel statistic
    probabilities: np.ndarray  # (N, classes), the model's output
    embeddings: np.ndarray  # (N, units) of the embedding layer
    # A few of the images themselves (uint8, N x 28 x 28 x 1), kept with reference features for the drift page.
    sample_images: np.ndarray | None = None


def pixel_statistics(images: np.ndarray) -> pd.DataFrame:
    """Per-image statistics of uint8 (N, 28, 28, 1) images, vectorised over the batch."""
    pixels = images[..., 0].astype(np.float32) / 255
    ink = pixels >= INK_LEVEL / 255
    mass = pixels.sum(axis=(1, 2)) + 1e-6
    positions = np.arange(pixels.shape[1], dtype=np.float32)
    return pd.DataFrame(
        {
            "mean_intensity": pixels.mean(axis=(1, 2)),
            "contrast": pixels.std(axis=(1, 2)),
            "ink_fraction": ink.mean(axis=(1, 2)),
            "centroid_row": (pixels.sum(axis=2) * positions).sum(axis=1) / mass,
            "centroid_col": (pixels.sum(axis=1) * positions).sum(axis=1) / mass,
            "bbox_height": _extent(ink.any(axis=2)),
            "bbox_width": _extent(ink.any(axis=1)),
            # Mean absolute difference between neighbouring pixels: falls with blur, rises with noise.
            "edge_energy": np.abs(np.diff(pixels, axis=1)).mean(axis=(1, 2))
            + np.abs(np.diff(pixels, axis=2)).mean(axis=(1, 2)),
        }
    )


def _extent(occupied: np.ndarray) -> np.ndarray:
    """Rows (or columns) from the first to the last occupied one, per image; 0 when none is."""
    first = occupied.argmax(axis=1)
    last = occupied.shape[1] - 1 - occupied[:, ::-1].argmax(axis=1)
    return np.where(occupied.any(axis=1), last - first + 1, 0).astype(np.float32)


def image_features(model, images: np.ndarray, batch_size: int) -> ImageFeatures:
    """The features of each image; the model's outputs and its embedding come from one prediction pass."""
    try:
        probabilities, embeddings = with_embedding_output(model).predict(images, batch_size=batch_size, verbose=0)
    except ValueError as error:  # a model made for other images
        raise PipelineError(f"the model cannot take 28x28x1 images ({' '.join(str(error).split())[:200]})") from None
    return ImageFeatures(pixels=pixel_statistics(images), probabilities=probabilities, embeddings=embeddings)


def save_features(path, features: ImageFeatures) -> None:
    with open(path, "wb") as file:
        np.savez(
            file,
            pixel_names=np.array(features.pixels.columns, dtype=str),
            pixels=features.pixels.to_numpy(np.float32),
            probabilities=features.probabilities.astype(np.float32),
            embeddings=features.embeddings.astype(np.float32),
            sample_images=np.zeros((0, 28, 28, 1), np.uint8)
            if features.sample_images is None
            else features.sample_images,
        )


def load_features(path) -> ImageFeatures:
    with np.load(path, allow_pickle=False) as arrays:
        return ImageFeatures(
            pixels=pd.DataFrame(arrays["pixels"], columns=list(arrays["pixel_names"])),
            probabilities=arrays["probabilities"],
            embeddings=arrays["embeddings"],
            sample_images=arrays.get("sample_images", None),
        )


def fit_components(reference_embeddings: np.ndarray, count: int, seed: int):
    from sklearn.decomposition import PCA

    return PCA(n_components=count, svd_solver="randomized", random_state=seed).fit(reference_embeddings)


def feature_table(features: ImageFeatures, components, class_names: tuple[str, ...]) -> pd.DataFrame:
    """The columns the drift report compares, one row per image."""
    probabilities = np.clip(features.probabilities, 1e-7, 1.0)
    table = features.pixels.copy()
    table["predicted_class"] = np.array(class_names)[probabilities.argmax(axis=1)]
    table["confidence"] = probabilities.max(axis=1)
    table["entropy"] = -(probabilities * np.log(probabilities)).sum(axis=1)
    projected = components.transform(features.embeddings)
    for index in range(projected.shape[1]):
        table[f"embedding_pc{index + 1}"] = projected[:, index]
    return table
