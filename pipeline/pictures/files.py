"""Any picture file a person has, read as greyscale pixels: upright, transparency flattened, 16-bit data scaled.

Pillow's own `convert("L")` is not enough for pictures from outside: it ignores the EXIF orientation (a phone photo
stored sideways stays sideways), drops alpha (a black item on a transparent background, whose hidden pixels are
black too, becomes black on black) and clips 16-bit greyscale at 255 instead of scaling it.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import PipelineError

ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")
NUMERIC_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # read as numbers, not through Pillow's "L"
MID_GREY = 127.5
REASON_LENGTH = 120

# Pictures over the pixel limit are refused by an explicit check of their header's size (see read_picture_pixels), in
# every thread alike. Pillow's own warning between its limit and twice that would only repeat the refusal, and turning
# it into an error per call (warnings.catch_warnings) edits process-global state that concurrent readers share.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class PictureTooLarge(PipelineError):
    """A picture over the pixel limit: a decompression bomb, or more pixels than are safe to decode."""


def read_picture_pixels(
    path: Path, invert: str = "auto", *, data: bytes | None = None, max_pixels: int | None = None
) -> np.ndarray:
    """float32 (H, W) greyscale, 0-255, ITU-R 601-2 luma weights (as Pillow's "L"), the first frame, upright.

    Read from `data` when given (an upload), `path` then only naming it in errors. Transparency is composited on
    black or white, whichever the item contrasts with (see `flatten`; `invert` always says the item is dark, never
    that it is light). 16-bit
    greyscale is divided by 257; mode "I" is taken as 8-bit when its values fit, else as 16-bit (divided by 257)
    when they fit that, else scaled so its maximum is 255; negative values become 0. Mode "F" is taken as 0-1
    when its maximum is at most 1, else as 0-255, and clipped. Raises a one-line PipelineError naming the file
    for an unreadable file, and PictureTooLarge for one over `max_pixels` (default Pillow's decompression-bomb
    limit, `Image.MAX_IMAGE_PIXELS`), checked from the header before any pixel is decoded.
    """
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as opened:
            if opened.width * opened.height > limit:
                raise too_large(path, f"({opened.width * opened.height} pixels)", limit)
            opened.load()  # decode now, so that a truncated file fails here rather than on first use
            upright = ImageOps.exif_transpose(opened)  # a copy, still usable once the file is closed
        grey, alpha = grey_and_alpha(upright)
    except Image.DecompressionBombError as error:  # past twice Pillow's limit, Image.open refuses by itself
        raise too_large(path, str(error), limit) from None
    except UnidentifiedImageError:  # Pillow's own message names the file object, which tells a person nothing
        raise PipelineError(f"{path}: unreadable image (not a picture format Pillow reads)") from None
    # Pillow raises SyntaxError for some broken headers and ValueError for some broken chunks or conversions.
    except (OSError, ValueError, SyntaxError) as error:
        reason = " ".join(str(error).split())[:REASON_LENGTH] or type(error).__name__
        raise PipelineError(f"{path}: unreadable image ({reason})") from None
    return grey if alpha is None else flatten(grey, alpha, invert)


def grey_and_alpha(picture: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey 0-255 and alpha 0-1, both float32; alpha is None when the picture has no transparency."""
    if picture.mode in NUMERIC_MODES:
        return numeric_grey(picture), transparent_value_mask(picture)
    if picture.mode in ALPHA_MODES or "transparency" in picture.info:
        # Through RGBA, which turns a palette's or a tRNS chunk's transparency into alpha and un-premultiplies
        # RGBa (RGBa straight to LA loses its alpha); La, premultiplied too, converts only to LA.
        with_alpha = picture.convert("LA") if picture.mode == "La" else picture.convert("RGBA").convert("LA")
        pixels = np.asarray(with_alpha, dtype=np.float32)
        return pixels[..., 0], pixels[..., 1] / 255
    # CMYK, palette, YCbCr, LAB and the rest go through RGB: Pillow converts every mode to RGB, not all to "L".
    colour = picture if picture.mode in ("L", "RGB") else picture.convert("RGB")
    return np.asarray(colour.convert("L"), dtype=np.float32), None


def numeric_grey(picture: Image.Image) -> np.ndarray:
    values = np.nan_to_num(np.asarray(picture).astype(np.float32))
    largest = float(values.max())
    if picture.mode == "F":
        return np.clip(values * 255 if largest <= 1 else values, 0, 255)
    if picture.mode == "I" and largest <= 255:
        return np.clip(values, 0, 255)  # 8-bit data in a 32-bit container, as some TIFF writers make
    if picture.mode == "I" and largest > 65535:
        return np.clip(values * (255 / largest), 0, 255)
    return np.clip(values / 257, 0, 255)  # 16-bit: 65535 becomes 255 and 32896 becomes 128


def transparent_value_mask(picture: Image.Image) -> np.ndarray | None:
    """Alpha for a 16-bit greyscale PNG whose tRNS chunk marks one value transparent (Pillow has no 16-bit alpha)."""
    transparent = picture.info.get("transparency")
    if picture.mode == "F" or not isinstance(transparent, int):
        return None
    return (np.asarray(picture) != transparent).astype(np.float32)


def flatten(grey: np.ndarray, alpha: np.ndarray, invert: str = "auto") -> np.ndarray:
    """Composite on the plain background the item contrasts with: black under a light item, white under a dark one.

    With `invert` auto the item's brightness is the alpha-weighted mean of its (partly) opaque pixels; always says
    the item is dark, never that it is light, as for the item's contrast (pipeline/pictures/item.py). A fully
    transparent picture goes on white and so comes back blank.
    """
    coverage = float(alpha.sum(dtype=np.float64))
    item_brightness = float((grey * alpha).sum(dtype=np.float64)) / coverage if coverage > 0 else 0.0
    light_item = {"always": False, "never": True}.get(invert, item_brightness > MID_GREY)
    background = 0.0 if light_item else 255.0
    return (grey * alpha + background * (1 - alpha)).astype(np.float32)


def too_large(path: Path, counted_in: str, limit: int) -> PictureTooLarge:
    # Pillow refuses inside Image.open, before there is an image to ask for its size: the count is in its message.
    counted = re.search(r"\((\d+) pixels\)", counted_in)
    size = f"{int(counted[1]):,} pixels, " if counted else ""
    return PictureTooLarge(f"{path}: too large to read safely ({size}over the limit of {limit:,} pixels)")
