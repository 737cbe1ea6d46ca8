"""One picture made into the model's input: uint8 28x28x1, light on dark, the item filling the square.

The conversion rule is in pipeline/pictures/batches.py's docstring, where callers enter; this module does steps 1-3
for one picture: files.py reads it as greyscale, item.py finds the item, and here it is cut out and fitted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.pictures.files import read_picture_pixels
from pipeline.pictures.item import cut, find_item, item_contrast, square_around

SIDE = 28
# Pictures are shrunk to this longest side first: an item filling 30% of the picture still spans 150 pixels for a
# 28x28 result, while a 12-megapixel photo would cost 50 times the work.
WORKING_SIDE = 512
# How much of the square the item's longest side fills: the training images' items span the whole frame (98% of
# them all 28 pixels), and this matches the share of that span which pipeline/pictures/item.py finds on them.
TRAINING_FILL = 1.0


def read_picture(path: Path, invert: str, crop: bool = True) -> np.ndarray:
    """One picture file as a uint8 28x28x1 image; a PipelineError naming the file when it has no item."""
    image = picture_to_image(read_picture_pixels(path, invert), invert, crop)
    if image is None:
        raise PipelineError(f"{path}: no item to classify (nothing stands out from the background)")
    return image


def picture_to_image(grey: np.ndarray, invert: str, crop: bool) -> np.ndarray | None:
    """A greyscale picture (float, 0-255) as the model's input, or None when nothing stands out from its
    background (with `crop`)."""
    grey = shrunk(grey, WORKING_SIDE)
    contrast = item_contrast(grey, invert)
    if not crop:
        return whole_picture(grey, contrast.inverted)
    item = find_item(contrast)
    if item is None:
        return None
    box, region = item
    # Faint shading outside the item, such as its shadow, is background.
    pixels = np.where(region, contrast.pixels, 0)
    fitted = shrunk(cut(pixels, square_around(box, TRAINING_FILL)), SIDE, exact=True)
    return np.clip(np.rint(fitted), 0, 255).astype(np.uint8)[..., None]


def whole_picture(grey: np.ndarray, inverted: bool) -> np.ndarray:
    """A picture already cropped as the training images are: inverted if its item is darker than its background,
    centred on a square of its border colour, fitted into 28x28; a 28x28 picture keeps its pixels."""
    if inverted:
        grey = 255 - grey
    height, width = grey.shape
    border = np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    side = max(height, width)
    square = np.full((side, side), border, dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = grey
    fitted = shrunk(square, SIDE, exact=True)
    return np.clip(np.rint(fitted), 0, 255).astype(np.uint8)[..., None]


def shrunk(pixels: np.ndarray, side: int, exact: bool = False) -> np.ndarray:
    """`pixels` resized (Lanczos, antialiased) so its longest side is at most `side`, or exactly `side` by `side`."""
    from PIL import Image

    height, width = pixels.shape
    if exact:
        size = (side, side)
    elif max(height, width) <= side:
        return pixels
    else:
        scale = side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if (width, height) == size:
        return pixels
    resized = Image.fromarray(pixels.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.float32)
