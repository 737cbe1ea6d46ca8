"""Images that are not clothing, for checking an unfamiliarity score: each set uint8 (N, 28, 28, 1), light on dark.

Four kinds the score must catch (handwritten digits, letters, noise, photos), and two more shown apart (printed
digits, filled shapes), as a check that a score does not merely fit the four.

Everything is built offline and seeded: scikit-learn's bundled handwritten digits, letters drawn with Pillow's
built-in font, random noise, and crops of scikit-image's bundled sample photographs (these go through the
project's picture conversion, pipeline.pictures.batches.load_batch, the way a user's photo would).
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from pipeline.pictures.batches import load_batch

SIDE = 28
# scikit-image's sample photographs shipped in its wheel (no download); horse is a silhouette, text a scan.
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "coins", "moon", "rocket", "horse", "grass", "brick", "text")


def _as_batch(images: list[np.ndarray]) -> np.ndarray:
    return np.stack(images).astype(np.uint8)[..., None]


def _pad_to_side(image: Image.Image, left: int, top: int) -> np.ndarray:
    canvas = Image.new("L", (SIDE, SIDE), 0)
    canvas.paste(image, (left, top))
    return np.asarray(canvas)


def handwritten_digits() -> np.ndarray:
    """All 1,797 of scikit-learn's 8x8 digits (0-16), scaled to 0-255, resized to 20x20 and padded to 28x28 as
    MNIST was made (its digits fill a 20x20 box in the middle of the image)."""
    from sklearn.datasets import load_digits

    digits = np.rint(load_digits().images * (255 / 16)).astype(np.uint8)
    resized = [Image.fromarray(digit).resize((20, 20), Image.Resampling.BILINEAR) for digit in digits]
    return _as_batch([_pad_to_side(image, 4, 4) for image in resized])


def font_letters(seed: int = 0, per_letter: int = 10) -> np.ndarray:
    """A-Z and a-z, white on black in Pillow's built-in scalable font (Pillow >= 10.1), `per_letter` of each
    (520 by default) at random heights of 10-24 pixels and random positions inside 28x28."""
    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=64)
    images = []
    for letter in string.ascii_letters:
        glyph = Image.new("L", (96, 96), 0)
        ImageDraw.Draw(glyph).text((16, 8), letter, fill=255, font=font)
        glyph = glyph.crop(glyph.getbbox())
        for _ in range(per_letter):
            height = int(rng.integers(10, 25))
            width = max(1, min(SIDE, round(glyph.width * height / glyph.height)))
            resized = glyph.resize((width, height), Image.Resampling.LANCZOS)
            left, top = int(rng.integers(0, SIDE - width + 1)), int(rng.integers(0, SIDE - height + 1))
            images.append(_pad_to_side(resized, left, top))
    return _as_batch(images)


def random_noise(seed: int = 0, count: int = 501) -> np.ndarray:
    """A third each of uniform noise, Gaussian noise (random mean and spread, clipped) and smoothed noise blobs
    (Gaussian-filtered noise stretched to 0-255)."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        kind = index % 3
        if kind == 0:
            image = rng.uniform(0, 256, (SIDE, SIDE))
        elif kind == 1:
            image = rng.normal(rng.uniform(40, 200), rng.uniform(20, 80), (SIDE, SIDE))
        else:
            blobs = ndimage.gaussian_filter(rng.normal(size=(SIDE, SIDE)), sigma=rng.uniform(1.5, 4))
            image = 255 * (blobs - blobs.min()) / (np.ptp(blobs) or 1)
        images.append(np.clip(np.floor(image), 0, 255))
    return _as_batch(images)


def _photo(name: str) -> np.ndarray:
    import skimage.data
    from skimage.util import img_as_ubyte

    return img_as_ubyte(getattr(skimage.data, name)())


def natural_photos(seed: int = 0, count: int = 500) -> np.ndarray:
    """`count` random square crops (a sixth of the shorter side to all of it) of scikit-image's sample photographs,
    saved as PNG files and read back through the project's conversion, as a user's photo would be. The conversion
    refuses a picture in which nothing stands out from the background (no item to classify, so never scored):
    a quarter more crops are made than kept, and the first `count` it accepts returned."""
    rng = np.random.default_rng(seed)
    photos = [_photo(name) for name in PHOTOS]
    with tempfile.TemporaryDirectory(prefix="photos-") as scratch:
        for index in range(count + count // 4):
            photo = photos[index % len(photos)]
            shorter = min(photo.shape[:2])
            side = int(rng.integers(max(SIDE, shorter // 6), shorter + 1))
            top, left = int(rng.integers(0, photo.shape[0] - side + 1)), int(rng.integers(0, photo.shape[1] - side + 1))
            Image.fromarray(photo[top : top + side, left : left + side]).save(Path(scratch) / f"{index:04d}.png")
        return load_batch(scratch, on_skip=lambda reason: None).images[:count]


def printed_digits(seed: int = 0, count: int = 500) -> np.ndarray:
    """0-9 in Pillow's built-in font, tilted up to 20 degrees either way, at random heights of 14-24 pixels and random
    positions: digits again, but not the handwritten ones the unfamiliarity score was chosen on."""
    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=64)
    images = []
    for index in range(count):
        glyph = Image.new("L", (96, 96), 0)
        ImageDraw.Draw(glyph).text((16, 8), str(index % 10), fill=255, font=font)
        glyph = glyph.crop(glyph.getbbox()).rotate(float(rng.uniform(-20, 20)), Image.Resampling.BILINEAR, expand=True)
        height = int(rng.integers(14, 25))
        width = max(1, min(SIDE, round(glyph.width * height / glyph.height)))
        resized = glyph.resize((width, height), Image.Resampling.LANCZOS)
        images.append(
            _pad_to_side(resized, int(rng.integers(0, SIDE - width + 1)), int(rng.integers(0, SIDE - height + 1)))
        )
    return _as_batch(images)


def filled_shapes(seed: int = 0, count: int = 501) -> np.ndarray:
    """A third each of filled ellipses, rectangles and triangles of random size, place and brightness: solid light
    shapes on black, like a garment's silhouette but none of the ten classes."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        canvas = Image.new("L", (SIDE, SIDE), 0)
        draw = ImageDraw.Draw(canvas)
        left, top = (int(value) for value in rng.integers(0, 12, 2))
        right, bottom = (int(value) for value in rng.integers(16, SIDE, 2))
        fill = int(rng.integers(100, 256))
        if index % 3 == 0:
            draw.ellipse((left, top, right, bottom), fill=fill)
        elif index % 3 == 1:
            draw.rectangle((left, top, right, bottom), fill=fill)
        else:
            draw.polygon([(left, bottom), (right, bottom), ((left + right) // 2, top)], fill=fill)
        images.append(np.asarray(canvas))
    return _as_batch(images)
