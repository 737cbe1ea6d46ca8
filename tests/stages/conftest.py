"""Fixtures of the stage tests: tiny datasets in IDX files, and prepared splits of a toy task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.data import TinyDataset, make_split, square_images, write_dataset


@pytest.fixture
def tiny_arrays() -> dict[str, np.ndarray]:
    train_images, train_labels = make_split(per_class=20, seed=1)
    test_images, test_labels = make_split(per_class=5, seed=2)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


@pytest.fixture
def tiny_dataset(tmp_path, tiny_arrays) -> TinyDataset:
    return TinyDataset(write_dataset(tmp_path / "source", tiny_arrays), tiny_arrays)


@pytest.fixture
def prepared_dir(tmp_path) -> Path:
    """train/val/test .npz of the square task, in the layout the preprocess stage writes."""
    from pipeline.data.preprocessing import save_arrays

    directory = tmp_path / "prepared"
    directory.mkdir()
    for name, count, seed in (("train", 200, 1), ("val", 50, 2), ("test", 50, 3)):
        save_arrays(directory / f"{name}.npz", *square_images(count, seed))
    return directory
