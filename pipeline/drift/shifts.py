"""Simulated shifts of a batch, for drift demos and tests: what a camera, a scanner or a new supplier could do.

Each scenario takes a strength (0 = no change) and has a default strength at which the drift stage is
expected to report dataset drift. All are seeded, so the same params give the same batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from pipeline.errors import PipelineError


def brightness(images, labels, strength, rng):
    """Adds strength * 255 to every pixel (a brighter exposure)."""
    return _to_uint8(images.astype(np.float32) + strength * 255), labels


def contrast(images, labels, strength, rng):
    """Pulls every pixel towards the image's mean by `strength` (0.5 halves the contrast)."""
    pixels = images.astype(np.float32)
    means = pixels.mean(axis=(1, 2, 3), keepdims=True)
    return _to_uint8(means + (pixels - means) * (1 - strength)), labels


def noise(images, labels, strength, rng):
    """Gaussian noise with a standard deviation of strength * 255 (a noisy sensor)."""
    return _to_uint8(images + rng.normal(0, strength * 255, images.shape)), labels


def blur(images, labels, strength, rng):
    """Gaussian blur of `strength` pixels' standard deviation (an out-of-focus camera)."""
    return _to_uint8(ndimage.gaussian_filter(images.astype(np.float32), sigma=(0, strength, strength, 0))), labels


def rotation(images, labels, strength, rng):
    """Rotates each image by `strength` degrees, clockwise or anticlockwise at random (a tilted camera)."""
    angles = strength * rng.choice([-1.0, 1.0], size=len(images))
    rotated = [
        ndimage.rotate(image, angle, axes=(0, 1), reshape=False, order=1)
        for image, angle in zip(images, angles, strict=True)
    ]
    return _to_uint8(np.stack(rotated)), labels


def inversion(images, labels, strength, rng):
    """Inverts that share of the images (dark garments on a light background)."""
    chosen = rng.random(len(images)) < strength
    shifted = images.copy()
    shifted[chosen] = 255 - shifted[chosen]
    return shifted, labels


def class_mix(images, labels, strength, rng):
    """Redraws the batch so that `strength` of it comes from one class, the rest from the batch as it was."""
    if labels is None:
        raise PipelineError("the class_mix scenario needs labelled images (an .npz with labels, or IDX files)")
    favoured = rng.integers(0, int(labels.max()) + 1)
    pool = np.flatnonzero(labels == favoured)
    count = int(round(strength * len(images)))
    chosen = np.concatenate([rng.choice(pool, count), rng.choice(len(images), len(images) - count)])
    return images[chosen], labels[chosen]


# name -> (shift, default strength)
SCENARIOS: dict[str, tuple[Callable, float]] = {
    "brightness": (brightness, 0.25),
    "contrast": (contrast, 0.5),
    "noise": (noise, 0.1),
    "blur": (blur, 1.0),
    "rotation": (rotation, 20.0),
    "inversion": (inversion, 0.5),
    "class_mix": (class_mix, 0.5),
}


def apply_shift(images, labels, scenario: str, strength: float | None, seed: int):
    """The batch under `scenario` ("none" leaves it as it is) at `strength` (None: the scenario's default)."""
    if scenario == "none":
        return images, labels
    shift, default = SCENARIOS[scenario]
    return shift(images, labels, default if strength is None else strength, np.random.default_rng(seed))


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
