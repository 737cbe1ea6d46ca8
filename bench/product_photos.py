"""Test images made into the photos people take of an item: dark on a light, unevenly lit or noisy background,
the item filling part of a larger frame, anywhere in it, in colour, sometimes JPEG-compressed.

Each photo is the test image's garment (its brightness read as how dark the item is) multiplied into a background
of one of four kinds, so the label is known and the model's answer on the original image is the reference.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

CANVAS = 224  # a phone photo shrunk for upload; an item filling 30% of it spans 67 pixels
BACKGROUNDS = ("plain", "gradient", "noisy", "shadowed")
FILLS = (1.0, 0.7, 0.5, 0.4, 0.3)  # the item's longest side as a share of the photo's width
TINT = np.array([1.0, 0.96, 0.9], dtype=np.float32)  # warm indoor light, so the photo is in colour
JPEG_QUALITY = 75


def item_darkness(image: np.ndarray, side: int) -> np.ndarray:
    """The 28x28 garment (uint8, light on black) resized to `side` pixels, as darkness in [0, 1]."""
    picture = Image.fromarray(image.reshape(28, 28).astype(np.float32) / 255, mode="F")
    return np.clip(np.asarray(picture.resize((side, side), Image.Resampling.LANCZOS)), 0, 1)


def background(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A (CANVAS, CANVAS) grey-level background of the given kind, before any item or shadow."""
    if kind in ("plain", "shadowed"):
        return np.full((CANVAS, CANVAS), rng.uniform(215, 250), dtype=np.float32)
    if kind == "noisy":
        return np.full((CANVAS, CANVAS), rng.uniform(200, 235), dtype=np.float32)
    # gradient: light falling off across the frame in a random direction, from near white to mid-grey
    angle = rng.uniform(0, 2 * np.pi)
    rows, cols = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32) / (CANVAS - 1) - 0.5
    ramp = rows * np.sin(angle) + cols * np.cos(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    return (250 - 110 * ramp).astype(np.float32)


def product_photo(image: np.ndarray, fill: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 (CANVAS, CANVAS, 3) photo of the garment in `image`, placed at random."""
    side = round(fill * CANVAS)
    darkness = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    top, left = rng.integers(0, CANVAS - side + 1, size=2)
    darkness[top : top + side, left : left + side] = item_darkness(image, side)
    light = background(kind, rng)
    if kind == "shadowed":
        # A soft shadow cast down and to the right: the item's outline, shifted and blurred, darkening the floor.
        shift = 0.07 * side
        outline = ndimage.shift((darkness > 0.05).astype(np.float32), (shift, shift), order=1)
        shadow = ndimage.gaussian_filter(outline, 0.06 * side)
        light *= 1 - 0.35 * shadow
    grey = light * (1 - darkness)
    if kind == "noisy":
        grey += rng.normal(0, 14, size=grey.shape).astype(np.float32)  # sensor noise, on the item too
    return np.clip(grey[..., None] * TINT, 0, 255).astype(np.uint8)
