"""The prepared splits: raw IDX made into NHWC uint8 arrays with a stratified, seeded validation split.

Images stay 0-255 uint8 here: scaling by 1/255 happens once, inside the model, so a served model
takes the same raw images the pipeline ingested.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipeline.data.datasets import IMAGE_SHAPE, NUM_CLASSES
from pipeline.errors import PipelineError
from pipeline.params import param
from pipeline.plots import headless_pyplot


@dataclass(frozen=True)
class PreprocessParams:
    SECTION: ClassVar[str] = "preprocess"
    val_fraction: float = param("number", above=0, below=1)
    seed: int = param("number", integer=True, minimum=0)
    source_test_images: int = param("number", integer=True, minimum=0)
    source_test_share: float = param("number", minimum=0, below=1)
    reserve_images: int = param("number", integer=True, minimum=0)


def reserved_indices(total: int, count: int, seed: int) -> np.ndarray:
    """The training-file images kept out of training and validation (sorted), the same for the same seed."""
    if count >= total:
        raise PipelineError(f"preprocess.reserve_images must be below the {total} training images, got {count}")
    # A stream of its own, so reserving images leaves the rest's split as seeded as before.
    return np.sort(np.random.default_rng([seed, 1]).choice(total, size=count, replace=False))


def to_nhwc(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) to (N, 28, 28, 1): the channel axis Keras' Conv2D expects."""
    return images.reshape(*images.shape, 1)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) holding out `val_fraction` of every class, the same for the same seed."""
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held_out = int(round(len(members) * val_fraction))
        val_parts.append(members[:held_out])
        train_parts.append(members[held_out:])
    # Sorted, so arrays keep the source order within each split (shuffling is training's job).
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts))


def save_arrays(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    np.savez_compressed(path, images=images, labels=labels)


def load_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from a prepared .npz file; never unpickles."""
    with np.load(path, allow_pickle=False) as arrays:
        return arrays["images"], arrays["labels"]


def load_prepared(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A prepared split, checked: uint8 images of shape (N, 28, 28, 1) and N labels 0-9."""
    try:
        images, labels = load_arrays(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise PipelineError(f"{path}: not a prepared .npz with images and labels ({error})") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (*IMAGE_SHAPE, 1):
        raise PipelineError(f"{path}: images must be uint8 of shape (N, 28, 28, 1), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise PipelineError(f"{path}: labels must be {len(images)} integers, got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise PipelineError(f"{path}: labels must be 0-9, got {labels.min()}..{labels.max()}")
    return images, labels


def save_sample_pictures(images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], out_dir: Path) -> None:
    """The tutorial's two pictures: one image with a colour bar, and a 5x5 grid labelled with class names."""
    plt = headless_pyplot()
    figure, axis = plt.subplots(figsize=(4, 4))
    shown = axis.imshow(images[0, :, :, 0], cmap="gray")
    figure.colorbar(shown, ax=axis)
    axis.set_title(class_names[labels[0]])
    figure.savefig(out_dir / "sample_image.png", dpi=100)
    plt.close(figure)

    figure, axes = plt.subplots(5, 5, figsize=(8, 8))
    for index, axis in enumerate(axes.flat):
        axis.imshow(images[index, :, :, 0], cmap="binary")
        axis.set_xlabel(class_names[labels[index]])
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(out_dir / "sample_grid.png", dpi=100)
    plt.close(figure)
