"""Batches of images from outside the pipeline, made into what the model takes: uint8 28x28x1, light on dark.

Accepted: a folder of PNG/JPEG files, one image file, a .npy or .npz array, or an IDX images file.
Conversion rule for pictures that are not already 28x28 greyscale:
1. greyscale (ITU-R 601-2 luma, as Pillow's "L" mode);
2. fit inside 28x28 keeping the aspect ratio (Lanczos), centred on a square of the border colour;
3. Fashion-MNIST garments are light on a dark background: with `invert: auto` an image whose border
   is brighter than mid-grey (a product photo on white) is inverted; `always` and `never` force it.
Arrays and IDX files must already be 28x28 (N,28,28 or N,28,28,1) with values 0-255; they are only inverted
on `invert: always`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.idx import read_idx

SIDE = 28
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
INVERT_CHOICES = ("auto", "always", "never")


@dataclass
class Batch:
    images: np.ndarray  # uint8, (N, 28, 28, 1)
    labels: np.ndarray | None  # when the source has them (.npz with labels, IDX with its labels file)
    names: list[str]  # one per image: a file name, or "<source>[i]"
    skipped: list[str] = field(default_factory=list)  # why each unreadable picture was left out


def load_batch(source: Path | str, invert: str = "auto", skip_unreadable: bool = False) -> Batch:
    """Read and convert a batch; every problem is a PipelineError naming the file.

    With `skip_unreadable`, pictures in a folder that cannot be read are left out and listed in `skipped`.
    """
    source = Path(source)
    if invert not in INVERT_CHOICES:
        raise PipelineError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    if not source.exists():
        raise PipelineError(f"{source}: no such file or folder")
    if source.is_dir():
        files = sorted(path for path in source.iterdir() if path.suffix.lower() in PICTURE_SUFFIXES)
        if not files:
            raise PipelineError(f"{source}: empty batch (no .png, .jpg or .jpeg files)")
        batch = read_folder(source, files, invert, skip_unreadable)
    elif source.suffix.lower() in PICTURE_SUFFIXES:
        batch = Batch(read_picture(source, invert)[None], None, [source.name])
    elif source.suffix == ".npy":
        batch = from_array(source, _load_npy(source), None, invert)
    elif source.suffix == ".npz":
        batch = from_array(source, *_load_npz(source), invert)
    elif "idx3" in source.name:
        batch = from_array(source, read_idx(source), _idx_labels(source), invert)
    else:
        raise PipelineError(f"{source}: not a folder of pictures, .png/.jpg, .npy, .npz or IDX images file")
    return batch


def read_folder(folder: Path, files: list[Path], invert: str, skip_unreadable: bool) -> Batch:
    pictures, names, skipped = [], [], []
    for path in files:
        try:
            pictures.append(read_picture(path, invert))
        except PipelineError as error:
            if not skip_unreadable:
                raise
            skipped.append(str(error))
            continue
        names.append(path.name)
    if not pictures:
        raise PipelineError(f"{folder}: no readable pictures ({len(skipped)} unreadable)")
    return Batch(np.stack(pictures), None, names, skipped)


def read_picture(path: Path, invert: str) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            picture = opened.convert("L")
    except (UnidentifiedImageError, OSError) as error:
        raise PipelineError(f"{path}: unreadable image ({' '.join(str(error).split())[:120]})") from None
    pixels = np.asarray(picture)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = int(np.median(border))
    if picture.size != (SIDE, SIDE):
        picture = ImageOps.pad(picture, (SIDE, SIDE), method=Image.Resampling.LANCZOS, color=background)
    image = np.asarray(picture, dtype=np.uint8)
    if invert == "always" or (invert == "auto" and background > 127):
        image = 255 - image
    return image[..., None]


def from_array(source: Path, images: np.ndarray, labels: np.ndarray | None, invert: str) -> Batch:
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise PipelineError(f"{source}: images must have shape (N, 28, 28) or (N, 28, 28, 1), got {images.shape}")
    if len(images) == 0:
        raise PipelineError(f"{source}: empty batch (0 images)")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number) or images.min() < 0 or images.max() > 255:
            raise PipelineError(f"{source}: pixel values must be 0-255, got dtype {images.dtype}")
        images = np.rint(images).astype(np.uint8)
    if labels is not None and len(labels) != len(images):
        raise PipelineError(f"{source}: {len(labels)} labels for {len(images)} images")
    if invert == "always":
        images = 255 - images
    names = [f"{source.name}[{index}]" for index in range(len(images))]
    return Batch(images[..., None], labels, names)


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
