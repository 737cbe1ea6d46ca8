"""Finding the item in a picture, and turning the picture into the item's contrast against its background.

Fashion-MNIST items are cut out, light on a black background, with their longest side filling the frame (98% of
the training images span all 28 pixels). A photo of a shoe on a floor is none of that: the item fills part of the
frame, the background is lit unevenly, noisy, or carries the item's shadow. So, for each picture:
1. the background is modelled as a smooth surface (a quadratic in the pixel position, fitted robustly to a band
   along the picture's edges), which follows gradients and vignetting that a single border colour does not;
2. each pixel's contrast is its difference from that surface relative to the background's own brightness (the
   item's reflectance under the same light), so the background becomes 0 whatever its level and the item keeps
   the shading it has in the training images;
3. the item is the region whose smoothed contrast stands out from the background's noise and from faint shading
   such as soft shadows; the crop is the square around it, the item's longest side filling it as in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

ROOM_FLOOR = 64.0  # grey levels: see item_contrast
EDGE_BAND = 0.04  # share of the shorter side along each edge that the background surface is fitted to
# Fitted residuals beyond this many robust standard deviations are the item touching an edge, not background.
OUTLIER_SIGMAS = 3.0
# A pixel belongs to the item when its smoothed contrast exceeds all of: this many times the background's noise;
# this share of the item's strongest contrast (soft shadows and shading are fainter than the item itself); and
# this many grey levels (a clean, flat background has no noise to measure).
NOISE_SIGMAS = 5.0
PEAK_SHARE = 0.3
MIN_CONTRAST = 12.0
SMOOTHING = 0.006  # Gaussian smoothing of the contrast, as a share of the longer side (at least 1 pixel)
# Parts of one item (a sandal's straps) are joined across gaps of this share of the longer side; specks smaller
# than MIN_PART_SHARE of the largest part are dust, not item.
JOIN_GAP = 0.02
MIN_PART_SHARE = 0.05
EDGE_CONTRAST = 4.0  # grey levels: the faint edge of an item on a clean background still counts for its box


@dataclass(frozen=True)
class Contrast:
    """A picture as the item's contrast against its background: 0 on the background, up to 255 on the item."""

    pixels: np.ndarray  # float32 (H, W), signed before clipping: noise on the background goes both ways
    noise: float  # the background's robust standard deviation, in contrast units
    inverted: bool  # whether the item is darker than its background (a light background)


def background_surface(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A quadratic surface fitted to the edge band, refitted without outliers; and the edge band's mask."""
    height, width = grey.shape
    band = max(1, round(EDGE_BAND * min(height, width)))
    edge = np.ones_like(grey, dtype=bool)
    edge[band:-band, band:-band] = False
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    rows, cols = rows / max(height - 1, 1) - 0.5, cols / max(width - 1, 1) - 0.5
    terms = np.stack([np.ones_like(rows), rows, cols, rows * rows, rows * cols, cols * cols], axis=-1)
    # Start from the edges' median, so an item covering part of the edges cannot skew the first fit.
    surface = np.full_like(grey, np.median(grey[edge]))
    for _ in range(3):
        residual = grey[edge] - surface[edge]
        inliers = edge.copy()
        inliers[edge] = np.abs(residual) <= max(OUTLIER_SIGMAS * robust_sigma(residual), 2.0)
        if inliers.sum() < terms.shape[-1] * 4:  # the item covers the edges: their median is all there is
            break
        coefficients, *_ = np.linalg.lstsq(terms[inliers], grey[inliers], rcond=None)
        surface = terms @ coefficients
    return surface.astype(np.float32), edge


def robust_sigma(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) if values.size else 0.0


def item_contrast(grey: np.ndarray, invert: str) -> Contrast:
    """The picture's contrast against its background. `invert`: auto (the item is darker than its background when
    the picture's strongest departures from the background are darker, as a garment on a light floor), always (the
    item is darker) or never (lighter)."""
    surface, edge = background_surface(grey)
    departure = grey - surface
    if invert == "auto":
        darkest, lightest = np.percentile(departure, [0.5, 99.5])
        inverted = bool(-darkest > lightest)
    else:
        inverted = invert == "always"
    # Relative to the room the background leaves (its level for a dark item, 255 minus it for a light one), at
    # most 4 times: a background near white or black would otherwise turn its noise into an item.
    if inverted:
        pixels = -departure / np.maximum(surface, ROOM_FLOOR) * 255
    else:
        pixels = departure / np.maximum(255 - surface, ROOM_FLOOR) * 255
    return Contrast(pixels.astype(np.float32), robust_sigma(pixels[edge]), inverted)


def find_item(contrast: Contrast) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The item's bounding box (top, left, bottom, right; bottom and right exclusive) and its region with a margin
    (bool, holes filled), or None for a blank picture: nothing stands out from the background."""
    height, width = contrast.pixels.shape
    smoothing = max(1.0, SMOOTHING * max(height, width))
    smoothed = ndimage.gaussian_filter(contrast.pixels, smoothing)
    noise = contrast.noise / (2 * np.sqrt(np.pi) * smoothing)  # a Gaussian filter's effect on white noise
    peak = float(np.percentile(smoothed, 99.5))
    threshold = max(NOISE_SIGMAS * noise, PEAK_SHARE * peak, MIN_CONTRAST)
    mask = smoothed > threshold
    if not mask.any():
        return None
    gap = max(1, round(JOIN_GAP * max(height, width)))
    joined = ndimage.binary_dilation(mask, iterations=gap)
    parts, count = ndimage.label(joined)
    sizes = ndimage.sum(mask, parts, index=np.arange(1, count + 1))
    kept = np.isin(parts, 1 + np.flatnonzero(sizes >= MIN_PART_SHARE * sizes.max()))
    region = ndimage.binary_fill_holes(kept)  # the kept parts, each with a margin of `gap` around it
    # The box reaches out to the item's faint edges, as the training images' frames do, but not past the region;
    # an item fainter than the noise of single pixels has its smoothed core as its box.
    faint = contrast.pixels > max(NOISE_SIGMAS * contrast.noise, EDGE_CONTRAST)
    return bounding_box(region & faint | kept & mask), region


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The mask's bounding box: top, left, bottom, right (bottom and right exclusive)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def square_around(box: tuple[int, int, int, int], fill: float) -> tuple[int, int, int, int]:
    """The square centred on `box` whose side the box's longest side fills to `fill` (it may reach past the
    picture's edges)."""
    top, left, bottom, right = box
    side = max(bottom - top, right - left) / fill
    centre_row, centre_col = (top + bottom) / 2, (left + right) / 2
    top, left = round(centre_row - side / 2), round(centre_col - side / 2)
    return top, left, top + round(side), left + round(side)


def cut(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box's part of `pixels`, zero (the background's contrast) where the box reaches past the edges."""
    top, left, bottom, right = box
    out = np.zeros((bottom - top, right - left), dtype=pixels.dtype)
    height, width = pixels.shape
    source = pixels[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    out[max(-top, 0) : max(-top, 0) + source.shape[0], max(-left, 0) : max(-left, 0) + source.shape[1]] = source
    return out
