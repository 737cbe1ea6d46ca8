"""What the pipeline knows about each dataset: file names, class names and checksums."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.idx import read_idx
from pipeline.errors import PipelineError

# The four files of a dataset, keyed by the role they play. Names are those of the official release.
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SPLITS = ("train", "test")
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    class_names: tuple[str, ...]
    # sha256 of each decompressed file, by file name; None for a user's own, unverified data.
    sha256: dict[str, str] | None

    @property
    def verified(self) -> bool:
        return self.sha256 is not None


DATASETS = {
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
    "mnist": DatasetSpec(
        name="mnist",
        class_names=tuple(str(digit) for digit in range(10)),
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ),
    # A user's own data in the same layout: structural checks only; the validate stage is the gate.
    "custom": DatasetSpec(
        name="custom",
        class_names=tuple(f"class {label}" for label in range(10)),
        sha256=None,
    ),
}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise PipelineError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def check_structure(images: np.ndarray, labels: np.ndarray, split: str) -> None:
    """Structural checks on one split: 28x28 uint8 images, one uint8 label per image."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise PipelineError(f"{split} images: expected uint8 of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise PipelineError(f"{split} labels: expected a 1-D uint8 array, got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise PipelineError(f"{split}: {len(images)} images but {len(labels)} labels")


def check_split(images: np.ndarray, labels: np.ndarray, split: str) -> None:
    """Structural checks, and every label a class id 0-9."""
    check_structure(images, labels, split)
    if len(labels) and labels.max() >= NUM_CLASSES:
        bad = int((labels >= NUM_CLASSES).sum())
        raise PipelineError(f"{split} labels: {bad} labels outside 0-9 (max {labels.max()})")


def load_raw_split(raw_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of one split from a folder holding the four IDX files.

    Only the structure is checked here: the values are the validate stage's to judge.
    """
    images = read_idx(Path(raw_dir) / FILE_NAMES[f"{split}_images"])
    labels = read_idx(Path(raw_dir) / FILE_NAMES[f"{split}_labels"])
    check_structure(images, labels, split)
    return images, labels
