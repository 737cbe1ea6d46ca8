"""Near-duplicate images: the same picture again after re-encoding, rescaling or re-framing, told apart from another
garment of the same kind.

Exact hashes miss a test image saved as a JPEG or redrawn larger, and plain pixel similarity cannot tell such a copy
from a different item: Fashion-MNIST's items are so alike that a training image's nearest test image has a cosine
similarity of 0.99 at the 99th percentile, while converting a copy through pipeline/pictures/batches.py moves its crop
by a pixel or two, which costs a thin sandal strap more than that. So each image is first framed on its own item (the
square around its brighter pixels, fitted to 28x28) and slightly blurred, and two images are compared at their best over
small shifts and rescalings. A copy then matches its original almost exactly and far better than any other image, which
is what `runner_up` is for. The measurements: params.yaml's accept section.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields

import numpy as np

SIDE = 28
# Pixels above this share of an image's brightest pixel mark its item's extent: low enough to keep a dark garment's
# body, high enough to leave out the faint shading a conversion leaves around an item.
FRAME_LEVEL = 0.2
# In pixels; smooths over the sub-pixel differences of two resamplings of the same picture.
BLUR_SIGMA = 0.7
# The alignments tried between an image and each candidate: framing two copies of an item differs by up to a pixel
# and a few percent of scale (measured between test images and their JPEG and 4x PNG copies after conversion).
SCALES = (0.92, 0.96, 1.0, 1.04, 1.08)
SHIFTS = (-1.0, -0.5, 0.0, 0.5, 1.0)
# Reference images compared with alignment per image: the nearest by the plain similarity. A copy's original is
# among its 10 nearest in more than 99% of the copies measured.
CANDIDATES = 10
ROWS_PER_CHUNK = 512  # bounds the memory of the (rows x reference) similarity matrix


@dataclass(frozen=True)
class Reference:
    """Images to compare with, as unit vectors; an image may come in several renderings (its `owners` say which)."""

    vectors: np.ndarray  # float32 (M, 784)
    owners: np.ndarray  # int (M,): the index of the image each vector renders


@dataclass(frozen=True)
class Matches:
    """Each compared image's most similar reference image and how close the next different one comes."""

    best: np.ndarray  # float (N,): similarity to the nearest reference image (1 = the same picture); -1 when none
    nearest: np.ndarray  # int (N,): that image's index; -1 when none
    runner_up: np.ndarray  # float (N,): similarity to the nearest other reference image; -1 when none


def framed(images: np.ndarray) -> np.ndarray:
    """float32 (N, 28, 28): each image's item squared, centred and fitted to 28x28, then blurred."""
    from PIL import Image
    from scipy import ndimage

    pixels = images.reshape(len(images), SIDE, SIDE).astype(np.float32)
    result = np.empty_like(pixels)
    margin = SIDE // 2  # room for a square wider than the image, around an item at an edge
    for index, image in enumerate(pixels):
        mask = image > FRAME_LEVEL * image.max()
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows):  # a blank image has no item to frame
            result[index] = image
            continue
        half = max(rows[-1] + 1 - rows[0], columns[-1] + 1 - columns[0]) / 2
        centre_row, centre_column = (rows[0] + rows[-1] + 1) / 2 + margin, (columns[0] + columns[-1] + 1) / 2 + margin
        box = (centre_column - half, centre_row - half, centre_column + half, centre_row + half)
        padded = Image.fromarray(np.pad(image, margin), mode="F")
        result[index] = np.asarray(padded.resize((SIDE, SIDE), Image.Resampling.BILINEAR, box=box))
    return ndimage.gaussian_filter(result, sigma=(0, BLUR_SIGMA, BLUR_SIGMA))


def unit_vectors(pixels: np.ndarray) -> np.ndarray:
    """Each image as a 784-vector, mean-subtracted and L2-normalised: a cosine similarity ignores brightness and
    contrast."""
    flat = pixels.reshape(len(pixels), -1).astype(np.float32)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)


def reference(*renderings: np.ndarray) -> Reference:
    """The same images in one or more renderings (e.g. as stored and as converted from a picture)."""
    count = len(renderings[0]) if renderings else 0
    if any(len(rendering) != count for rendering in renderings):
        raise ValueError("every rendering must hold the same images")
    vectors = [unit_vectors(framed(rendering)) for rendering in renderings if count]
    return Reference(
        vectors=np.concatenate(vectors) if vectors else np.zeros((0, SIDE * SIDE), np.float32),
        owners=np.tile(np.arange(count), len(vectors)),
    )


def nearest_matches(images: np.ndarray, target: Reference, earlier_only: bool = False) -> Matches:
    """Compare `images` with `target`; with `earlier_only` (an image against its own batch), row i only with
    reference images 0..i-1, so that of two copies only the later one counts as a repeat."""
    parts = [
        _match_rows(images[start : start + ROWS_PER_CHUNK], target, start if earlier_only else None)
        for start in range(0, len(images), ROWS_PER_CHUNK)
    ]
    if not parts:
        return Matches(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0))
    return Matches(*(np.concatenate([getattr(part, field.name) for part in parts]) for field in fields(Matches)))


def _match_rows(images: np.ndarray, target: Reference, first_row: int | None) -> Matches:
    rows = np.arange(len(images))
    if not len(target.vectors):
        return Matches(np.full(len(images), -1.0), np.full(len(images), -1), np.full(len(images), -1.0))
    pixels = framed(images)
    plain = unit_vectors(pixels) @ target.vectors.T
    if first_row is not None:
        plain[target.owners[None, :] >= (first_row + rows)[:, None]] = -np.inf
    count = min(CANDIDATES, len(target.vectors))
    candidates = np.argsort(plain, axis=1)[:, -count:]
    usable = np.take_along_axis(plain, candidates, axis=1) > -np.inf
    aligned = np.where(usable, _aligned_similarity(pixels, target.vectors[candidates]), -1.0)
    owners = np.where(usable, target.owners[candidates], -1)
    column = aligned.argmax(axis=1)
    best, nearest = aligned[rows, column], owners[rows, column]
    # The runner-up is another image, not another rendering of the nearest one.
    runner_up = np.where(owners != nearest[:, None], aligned, -1.0).max(axis=1)
    return Matches(best, nearest, runner_up)


def _aligned_similarity(pixels: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(N, K): each image's best cosine similarity with each of its K candidate vectors over SCALES x SHIFTS."""
    from scipy import ndimage

    best = np.full(candidates.shape[:2], -1.0, dtype=np.float32)
    centre = (SIDE - 1) / 2
    for scale, row_shift, column_shift in itertools.product(SCALES, SHIFTS, SHIFTS):
        # Output pixel p samples input pixel centre + (p - centre - shift) / scale: a zoom about the centre, moved.
        offset = [0, centre - (centre + row_shift) / scale, centre - (centre + column_shift) / scale]
        moved = ndimage.affine_transform(pixels, np.diag([1, 1 / scale, 1 / scale]), offset=offset, order=1)
        best = np.maximum(best, np.einsum("nd,nkd->nk", unit_vectors(moved), candidates))
    return best
