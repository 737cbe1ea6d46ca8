"""preprocess: raw IDX to NHWC uint8 arrays with a stratified, seeded validation split, plus sample pictures.

Images stay 0-255 uint8 here: scaling by 1/255 happens once, inside the model, so a served model
takes the same raw images the pipeline ingested.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from pipeline.cli import run_stage
from pipeline.datasets import IMAGE_SHAPE, NUM_CLASSES, dataset_spec, load_raw_split
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.lineage import lineage
from pipeline.params import PreprocessParams, read_section
from pipeline.plots import save_sample_pictures

ARRAY_FILES = ("train.npz", "val.npz", "test.npz")


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


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--raw", required=True, type=Path, help="folder of the four IDX files")
        parser.add_argument("--out", required=True, type=Path, help="output folder for train/val/test .npz")
        parser.add_argument("--pictures", required=True, type=Path, help="output folder for the sample pictures")
        parser.add_argument("--dataset", required=True, help="dataset name, for its class names")

    def work(arguments):
        params = PreprocessParams.load(Path(arguments.params))
        class_names = dataset_spec(arguments.dataset).class_names
        train_images, train_labels = load_raw_split(arguments.raw, "train")
        test_images, test_labels = load_raw_split(arguments.raw, "test")
        train_images, test_images = to_nhwc(train_images), to_nhwc(test_images)
        train_index, val_index = stratified_split(train_labels, params.val_fraction, params.seed)
        with atomic_path(arguments.out) as out_dir:
            out_dir.mkdir()
            save_arrays(out_dir / "train.npz", train_images[train_index], train_labels[train_index])
            save_arrays(out_dir / "val.npz", train_images[val_index], train_labels[val_index])
            save_arrays(out_dir / "test.npz", test_images, test_labels)
        with atomic_path(arguments.pictures) as pictures_dir:
            pictures_dir.mkdir()
            save_sample_pictures(train_images, train_labels, class_names, pictures_dir)
            params_used = {"preprocess": read_section("preprocess", arguments.params)}
            record = lineage(arguments.raw / "manifest.json", params_used)
            (pictures_dir / "lineage.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"preprocess: train {len(train_index)}, val {len(val_index)}, test {len(test_labels)} images")

    run_stage("preprocess", configure, work, argv)


if __name__ == "__main__":
    main()
