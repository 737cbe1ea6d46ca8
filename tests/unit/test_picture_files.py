"""Picture files as people have them: sideways phone photos, transparent cut-outs, CMYK, palettes, 16-bit, bombs."""

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.pictures.files import grey_and_alpha, read_picture_pixels
from tests.support.data import write_png

ORIENTATION_TAG = 0x0112


def bar_on_the_left() -> Image.Image:
    """20 high, 40 wide, dark, with a bright bar down its left edge: every turn and flip tells."""
    pixels = np.zeros((20, 40), dtype=np.uint8)
    pixels[:, :8] = 255
    return Image.fromarray(pixels).convert("RGB")


def assert_one_line_naming(error: pytest.ExceptionInfo, path, words: str):
    message = str(error.value)
    assert message.startswith(f"{path}: {words}") and "\n" not in message and len(message) < len(str(path)) + 200


@pytest.mark.parametrize(
    ("orientation", "bar_rows", "bar_columns"),
    [(6, slice(0, 8), slice(None)), (8, slice(32, 40), slice(None)), (3, slice(None), slice(32, 40))],
)
def test_a_phone_jpeg_stored_sideways_arrives_upright(tmp_path, orientation, bar_rows, bar_columns):
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    bar_on_the_left().save(tmp_path / "photo.jpg", quality=95, exif=exif)
    pixels = read_picture_pixels(tmp_path / "photo.jpg")
    assert pixels.shape == ((20, 40) if orientation == 3 else (40, 20))
    assert pixels[bar_rows, bar_columns].mean() > 240
    assert pixels.mean() < 0.3 * 255  # the rest stayed dark: the bar is where the turn puts it, not elsewhere too


def test_a_jpeg_without_exif_is_not_turned(tmp_path):
    bar_on_the_left().save(tmp_path / "photo.jpg", quality=95)
    pixels = read_picture_pixels(tmp_path / "photo.jpg")
    assert pixels.shape == (20, 40) and pixels.dtype == np.float32
    assert pixels[:, :8].mean() > 240 and pixels[:, 10:].mean() < 15


@pytest.mark.parametrize(("mode", "suffix"), [("RGBA", ".png"), ("LA", ".png"), ("PA", ".tif")])
@pytest.mark.parametrize(("item", "background"), [(0, 255), (255, 0)])
def test_an_item_on_a_transparent_background_lands_on_the_background_it_contrasts_with(
    tmp_path, mode, suffix, item, background
):
    # The hidden pixels have the item's own colour, so dropping alpha (as Pillow's "L" does) would lose the item.
    pixels = np.zeros((20, 20, 4), dtype=np.uint8)
    pixels[..., :3] = item
    pixels[5:15, 5:15, 3] = 255
    pixels[5:15, 4, 3] = 128  # an anti-aliased edge: half the item, half the background
    Image.fromarray(pixels).convert(mode).save(tmp_path / f"cut-out{suffix}")
    with Image.open(tmp_path / f"cut-out{suffix}") as opened:
        assert opened.mode == mode
    grey = read_picture_pixels(tmp_path / f"cut-out{suffix}")
    assert np.all(grey[5:15, 5:15] == item)
    assert grey[0, 0] == background and grey[19, 19] == background
    np.testing.assert_allclose(grey[5:15, 4], (item + background) / 2, atol=1)


def test_a_palette_picture_with_a_transparent_entry_keeps_its_item(tmp_path):
    picture = Image.new("P", (20, 20), 0)
    picture.putpalette([0, 0, 0, 30, 30, 30])  # entry 0 (transparent) is black, nearly the dark item's colour
    picture.paste(1, (5, 5, 15, 15))
    picture.save(tmp_path / "palette.png", transparency=0)
    grey = read_picture_pixels(tmp_path / "palette.png")
    assert np.all(grey[5:15, 5:15] == 30) and grey[0, 0] == 255


def test_invert_says_which_background_a_transparent_picture_goes_on(tmp_path):
    picture = np.zeros((20, 20, 4), dtype=np.uint8)
    picture[5:15, 5:15] = (200, 200, 200, 255)  # a light item: on black by its own brightness
    Image.fromarray(picture).save(tmp_path / "light.png")
    assert read_picture_pixels(tmp_path / "light.png")[0, 0] == 0
    assert read_picture_pixels(tmp_path / "light.png", invert="always")[0, 0] == 255  # "the item is dark"
    assert read_picture_pixels(tmp_path / "light.png", invert="never")[0, 0] == 0


def test_a_fully_transparent_picture_is_blank_white(tmp_path):
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "nothing.png")
    assert np.all(read_picture_pixels(tmp_path / "nothing.png") == 255)


def test_grey_pictures_come_back_unchanged_and_colour_as_pillows_luma(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 20), dtype=np.uint8)
    colour = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(colour).save(tmp_path / "colour.png")
    np.testing.assert_array_equal(read_picture_pixels(tmp_path / "grey.png"), grey)
    pillow_luma = np.asarray(Image.fromarray(colour).convert("L"), dtype=np.float32)
    np.testing.assert_allclose(read_picture_pixels(tmp_path / "colour.png"), pillow_luma, atol=1)


@pytest.mark.parametrize(("suffix", "tolerance"), [(".tif", 1), (".jpg", 6)])
def test_a_cmyk_picture_reads_as_its_rgb_luma(tmp_path, suffix, tolerance):
    colour = np.zeros((16, 48, 3), dtype=np.uint8)
    colour[:, 16:32] = (200, 10, 10)
    colour[:, 32:] = 255
    Image.fromarray(colour).convert("CMYK").save(tmp_path / f"print{suffix}", quality=95)
    with Image.open(tmp_path / f"print{suffix}") as opened:
        assert opened.mode == "CMYK"
    grey = read_picture_pixels(tmp_path / f"print{suffix}")
    np.testing.assert_allclose(grey[8, [8, 24, 40]], [0, 67, 255], atol=tolerance)


def test_a_palette_picture_reads_as_its_colours_luma(tmp_path):
    picture = Image.new("P", (3, 1))
    picture.putpalette([255, 0, 0, 0, 0, 255, 255, 255, 255])
    picture.putdata([0, 1, 2])
    picture.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_picture_pixels(tmp_path / "palette.png"), [[76, 29, 255]])


def test_a_one_bit_picture_reads_as_black_and_white(tmp_path):
    Image.fromarray(np.array([[True, False, True]])).save(tmp_path / "bits.png")
    with Image.open(tmp_path / "bits.png") as opened:
        assert opened.mode == "1"
    np.testing.assert_array_equal(read_picture_pixels(tmp_path / "bits.png"), [[255, 0, 255]])


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.array([[0, 32896, 65535, 257]], dtype=np.uint16)).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as opened:
        assert opened.mode == "I;16"
        assert np.asarray(opened.convert("L"))[0, 1] == 255  # what Pillow's own conversion does
    np.testing.assert_allclose(read_picture_pixels(tmp_path / "deep.png"), [[0, 128, 255, 1]], atol=0.01)


def test_sixteen_bit_grey_with_a_transparent_value_is_composited(tmp_path):
    pixels = np.zeros((10, 10), dtype=np.uint16)  # the transparent value, 0, is black
    pixels[3:7, 3:7] = 257 * 30
    Image.fromarray(pixels).save(tmp_path / "deep.png", transparency=0)
    grey = read_picture_pixels(tmp_path / "deep.png")
    assert np.all(grey[3:7, 3:7] == 30) and grey[0, 0] == 255  # a dark item goes on white


def test_premultiplied_alpha_is_undone_before_compositing():
    # Pillow writes neither mode to a file, but reads them from some TIFFs; "RGBa" straight to "LA" drops alpha.
    pixels = np.zeros((2, 2, 4), dtype=np.uint8)
    pixels[0, 0] = (0, 0, 0, 255)
    pixels[0, 1] = (0, 0, 0, 128)
    for mode in ("RGBa", "La"):
        grey, alpha = grey_and_alpha(Image.fromarray(pixels).convert("LA" if mode == "La" else "RGBA").convert(mode))
        np.testing.assert_allclose(alpha, [[1, 128 / 255], [0, 0]])
        np.testing.assert_allclose(grey[0], [0, 0])


def test_sixteen_bit_colour_reads_as_eight_bit_colour(tmp_path):
    row = np.array([[65535, 0, 0], [0, 0, 65535], [32896, 32896, 32896]], dtype=">u2")
    write_png(tmp_path / "deep.png", 3, 1, 16, 2, [row.tobytes()])
    np.testing.assert_allclose(read_picture_pixels(tmp_path / "deep.png"), [[76, 29, 128]], atol=1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([[0, 100, 255]], dtype=np.int32), [[0, 100, 255]]),  # 8-bit values in a 32-bit container
        (np.array([[0, 32896, 65535]], dtype=np.int32), [[0, 128, 255]]),  # 16-bit values
        (np.array([[-5, 100000, 200000]], dtype=np.int32), [[0, 127.5, 255]]),  # wider: scaled by its maximum
        (np.array([[0, 0.5, 1]], dtype=np.float32), [[0, 127.5, 255]]),  # floats 0-1
        (np.array([[-3, 100, 300]], dtype=np.float32), [[0, 100, 255]]),  # floats 0-255, clipped
    ],
)
def test_integer_and_float_tiffs_are_scaled_to_0_255(tmp_path, values, expected):
    Image.fromarray(values).save(tmp_path / "numbers.tif")
    with Image.open(tmp_path / "numbers.tif") as opened:
        assert opened.mode == ("F" if values.dtype == np.float32 else "I")
    np.testing.assert_allclose(read_picture_pixels(tmp_path / "numbers.tif"), expected, atol=0.01)


def test_an_animation_reads_as_its_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), level) for level in (40, 200)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    assert np.all(read_picture_pixels(tmp_path / "moving.gif") == 40)


@pytest.mark.parametrize("limit", [300, 150])  # 400 pixels: over the warning level, then over twice it (the error)
def test_a_picture_over_pillows_pixel_limit_is_refused(tmp_path, monkeypatch, limit):
    Image.new("L", (20, 20)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(PipelineError) as error:
        read_picture_pixels(tmp_path / "bomb.png")
    assert_one_line_naming(error, tmp_path / "bomb.png", "too large to read safely (400 pixels")


@pytest.mark.parametrize("side", [10_000, 14_000])  # 100 and 196 million pixels: the warning and the error level
def test_a_real_decompression_bomb_is_refused_before_decoding(tmp_path, side):
    # One-bit black rows, compressed as they are written: a file of some kilobytes, never a picture in memory.
    write_png(tmp_path / "bomb.png", side, side, 1, 0, (bytes((side + 7) // 8) for _ in range(side)))
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.raises(PipelineError) as error:
        read_picture_pixels(tmp_path / "bomb.png")
    assert_one_line_naming(error, tmp_path / "bomb.png", f"too large to read safely ({side * side:,} pixels")


def test_truncated_and_non_pictures_are_refused_by_name(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.png")
    whole = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "notes.png").write_text("not a picture\nat all\n")
    for name in ("truncated.png", "notes.png"):
        with pytest.raises(PipelineError) as error:
            read_picture_pixels(tmp_path / name)
        assert_one_line_naming(error, tmp_path / name, "unreadable image (")
