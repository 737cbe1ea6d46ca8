"""Batches of images from outside the pipeline, made into what the model takes: uint8 28x28x1, light on dark.

Accepted: a folder of pictures (PICTURE_SUFFIXES), one picture, a .npy or .npz array, or an IDX images file.
Conversion rule for pictures (pipeline/pictures/convert.py, which has pipeline/pictures/files.py read the file and
pipeline/pictures/item.py find the item):
1. greyscale (ITU-R 601-2 luma, as Pillow's "L" mode), upright by its EXIF orientation, transparency composited
   on a background the item contrasts with;
2. the item's contrast against its background: Fashion-MNIST garments are light on black, so with `invert: auto`
   an item whose strongest departures from the background are darker (a product photo on white) becomes light;
   `always` and `never` say the item is darker, or lighter, than its background whatever the picture;
3. with `crop` (the default) the square around the item, its longest side filling the square as in the training
   images; without it the whole picture, centred on a square; either fitted into 28x28 (Lanczos).
A picture in which nothing stands out from the background is an error: there is no item to classify. So is a
picture whose item covers all its edges, which is taken for the background: `crop` off reads it whole.
Arrays and IDX files must already be 28x28 (N,28,28 or N,28,28,1) with values 0-255; they are only inverted
on `invert: always`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.idx import read_idx
from pipeline.errors import PipelineError
from pipeline.pictures.convert import SIDE, picture_to_image, read_picture
from pipeline.pictures.options import INVERT_CHOICES

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class Batch:
    images: np.ndarray  # uint8, (N, 28, 28, 1)
    labels: np.ndarray | None  # when the source has them (.npz with labels, IDX with its labels file)
    names: list[str]  # one per image: a file name, or "<source>[i]"


def load_batch(
    source: Path | str, invert: str = "auto", on_skip: Callable[[str], None] | None = None, crop: bool = True
) -> Batch:
    """Read and convert a batch; every problem is a PipelineError naming the file.

    With `on_skip`, a picture in a folder that cannot be read or has no item is left out, and `on_skip` is told
    why as soon as it is found. `crop` cuts each picture to its item; turn it off for pictures already cropped as
    the training images are.
    """
    source = Path(source)
    if invert not in INVERT_CHOICES:
        raise PipelineError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    if not source.exists():
        raise PipelineError(f"{source}: no such file or folder")
    if source.is_dir():
        files = sorted(path for path in source.iterdir() if path.suffix.lower() in PICTURE_SUFFIXES)
        if not files:
            raise PipelineError(f"{source}: empty batch (no {', '.join(PICTURE_SUFFIXES)} files)")
        batch = read_folder(source, files, invert, on_skip, crop)
    elif source.suffix.lower() in PICTURE_SUFFIXES:
        batch = Batch(read_picture(source, invert, crop)[None], None, [source.name])
    elif source.suffix == ".npy":
        batch = from_array(source, _load_npy(source), None, invert)
    elif source.suffix == ".npz":
        batch = from_array(source, *_load_npz(source), invert)
    elif "idx3" in source.name:
        batch = from_array(source, read_idx(source), _idx_labels(source), invert)
    else:
        raise PipelineError(f"{source}: not a folder of pictures, .png/.jpg, .npy, .npz or IDX images file")
    return batch


def read_folder(
    folder: Path, files: list[Path], invert: str, on_skip: Callable[[str], None] | None, crop: bool
) -> Batch:
    pictures, names, skipped = [], [], 0
    for path in files:
        try:
            pictures.append(read_picture(path, invert, crop))
        except PipelineError as error:
            if on_skip is None:
                raise
            on_skip(str(error))
            skipped += 1
            continue
        names.append(path.name)
    if not pictures:
        raise PipelineError(f"{folder}: no pictures left ({skipped} skipped: unreadable or no item)")
    return Batch(np.stack(pictures), None, names)


def from_array(source: Path, images: np.ndarray, labels: np.ndarray | None, invert: str) -> Batch:
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise PipelineError(f"{source}: images must have shape (N, 28, 28) or (N, 28, 28, 1), got {images.shape}")
    if len(images) == 0:
        raise PipelineError(f"{source}: empty batch (0 images)")
    if images.dtype != np.uint8:
        numeric = np.issubdtype(images.dtype, np.number) and np.isfinite(images).all()
        if not numeric or images.min() < 0 or images.max() > 255:
            raise PipelineError(f"{source}: pixel values must be 0-255, got dtype {images.dtype}")
        images = np.rint(images).astype(np.uint8)
    if labels is not None and len(labels) != len(images):
        raise PipelineError(f"{source}: {len(labels)} labels for {len(images)} images")
    if invert == "always":
        images = 255 - images
    names = [f"{source.name}[{index}]" for index in range(len(images))]
    return Batch(images[..., None], labels, names)


def arrays_as_pictures(images: np.ndarray, invert: str, crop: bool) -> np.ndarray:
    """uint8 (N, 28, 28, 1) images as they would read from pictures of them (what a re-encoded copy of one
    becomes); an image the conversion finds no item in stays as it is."""
    pictures = [picture_to_image(image[:, :, 0].astype(np.float32), invert, crop) for image in images]
    return np.stack([image if picture is None else picture for image, picture in zip(images, pictures, strict=True)])


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise PipelineError(f"{path}: unreadable .npy ({error})") from None


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The `images` array (and `labels` if present), or the only array in the file."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = list(arrays.files)
            if "images" in names:
                return arrays["images"], arrays["labels"] if "labels" in names else None
            if len(names) == 1:
                return arrays[names[0]], None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise PipelineError(f"{path}: unreadable .npz ({error})") from None
    raise PipelineError(f"{path}: expected an 'images' array or a single array, found {names}")


def _idx_labels(images_path: Path) -> np.ndarray | None:
    labels_path = images_path.with_name(images_path.name.replace("images-idx3", "labels-idx1"))
    return read_idx(labels_path) if labels_path != images_path and labels_path.exists() else None
