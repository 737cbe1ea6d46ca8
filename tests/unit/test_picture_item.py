"""Finding the item in a picture: known boxes on plain, gradient, noisy and shadowed backgrounds, and no item."""

import numpy as np
import pytest
from scipy import ndimage

from pipeline.pictures.convert import picture_to_image
from pipeline.pictures.item import find_item, item_contrast

HEIGHT, WIDTH = 240, 320


def background(kind: str, rng: np.random.Generator) -> np.ndarray:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    if kind == "gradient":  # light falling off from the top left corner: 245 down to 150
        return 245 - 95 * (rows / HEIGHT + cols / WIDTH) / 2
    grey = np.full((HEIGHT, WIDTH), 230, dtype=np.float32)
    if kind == "noisy":
        grey += rng.normal(0, 12, grey.shape)
    return grey


def picture(box: tuple[int, int, int, int], kind: str = "plain", shadow: bool = False, seed: int = 0):
    """A dark, textured item filling `box` (top, left, bottom, right) on a background of the given kind."""
    rng = np.random.default_rng(seed)
    grey = background(kind, rng)
    top, left, bottom, right = box
    item = np.zeros_like(grey)
    item[top:bottom, left:right] = rng.uniform(0.5, 0.9, (bottom - top, right - left))
    if shadow:  # a soft shadow cast down and to the right, darkening the floor by up to a third
        outline = ndimage.shift((item > 0).astype(np.float32), (8, 8), order=0)
        grey *= 1 - 0.35 * ndimage.gaussian_filter(outline, 6)
    return np.clip(grey * (1 - item), 0, 255)


def found_box(grey: np.ndarray):
    item = find_item(item_contrast(grey, "auto"))
    return None if item is None else item[0]


@pytest.mark.parametrize("kind", ["plain", "gradient", "noisy"])
@pytest.mark.parametrize(
    "box",
    [
        (100, 120, 180, 170),  # in the middle
        (10, 12, 70, 60),  # in the top left corner
        (150, 250, 232, 310),  # in the bottom right corner
        (0, 100, 120, 180),  # touching the top edge
        (60, 0, 200, 90),  # touching the left edge
    ],
)
def test_the_box_found_is_the_items_on_every_background(box, kind):
    found = found_box(picture(box, kind))
    assert found is not None
    assert np.abs(np.array(found) - np.array(box)).max() <= 3, (found, box)


def test_most_of_a_soft_shadow_is_left_out_of_the_box():
    box = (60, 100, 160, 180)
    found = found_box(picture(box, shadow=True))
    # The shadow reaches 8 pixels past the item plus its blur (about 15 more), down and to the right: the box
    # takes its darkest part only.
    assert np.abs(np.array(found[:2]) - np.array(box[:2])).max() <= 3, found
    assert 0 <= found[2] - box[2] <= 12 and 0 <= found[3] - box[3] <= 12, found


def test_a_faint_item_in_strong_noise_is_found_by_its_smoothed_contrast():
    rng = np.random.default_rng(3)
    grey = 230 + rng.normal(0, 25, (HEIGHT, WIDTH))
    grey[80:160, 100:200] *= 0.75  # darker by a quarter: less than the noise of single pixels three times over
    found = found_box(grey)
    assert found is not None and np.abs(np.array(found) - np.array((80, 100, 160, 200))).max() <= 6, found


@pytest.mark.parametrize("kind", ["plain", "gradient", "noisy"])
def test_a_picture_without_an_item_has_no_box(kind):
    assert found_box(background(kind, np.random.default_rng(1))) is None
    assert picture_to_image(background(kind, np.random.default_rng(1)), "auto", crop=True) is None


def test_a_small_item_anywhere_fills_the_frame_as_in_the_training_images():
    # A 60 x 30 item (taller than wide) in the top left corner of a 240 x 320 picture.
    image = picture_to_image(picture((10, 12, 70, 42)), "auto", crop=True)[..., 0]
    rows, cols = np.flatnonzero((image > 40).any(axis=1)), np.flatnonzero((image > 40).any(axis=0))
    assert rows[0] <= 1 and rows[-1] >= 26  # its longest side spans the frame, as 98% of the training items do
    assert 11 <= cols[-1] - cols[0] + 1 <= 16  # half as wide, centred
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1
    uncropped = picture_to_image(picture((10, 12, 70, 42)), "auto", crop=False)[..., 0]
    assert (uncropped > 40).sum() < (image > 40).sum() / 10  # without the crop it is a speck in a corner


@pytest.mark.parametrize("kind", ["plain", "gradient", "noisy"])
def test_the_background_becomes_black_whatever_its_level_and_gradient(kind):
    # 120 high and 90 wide: in the 28x28 frame the item is 21 columns wide, with background either side.
    image = picture_to_image(picture((60, 100, 180, 190), kind), "auto", crop=True)[..., 0]
    assert image[:, :2].max() <= 6 and image[:, -2:].max() <= 6
    assert image[:, 6:22].mean() > 100
