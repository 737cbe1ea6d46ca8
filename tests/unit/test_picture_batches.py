"""Batches from outside: pictures, arrays and IDX files, converted by the documented rule or refused by name."""

import numpy as np
import pytest
from PIL import Image

from pipeline.data.idx import write_idx
from pipeline.errors import PipelineError
from pipeline.pictures.batches import load_batch


@pytest.fixture
def garments():
    """Light shapes on a dark background, like Fashion-MNIST."""
    rng = np.random.default_rng(0)
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    for index, image in enumerate(images):
        image[4 + index : 24, 6:22] = rng.integers(120, 256, (20 - index, 16))
    return images


def test_a_folder_of_28x28_grey_pngs_comes_back_exactly(tmp_path, garments):
    for index, image in enumerate(garments):
        Image.fromarray(image).save(tmp_path / f"item{index}.png")
    batch = load_batch(tmp_path, crop=False)
    assert batch.images.shape == (4, 28, 28, 1) and batch.images.dtype == np.uint8
    np.testing.assert_array_equal(batch.images[..., 0], garments)
    assert batch.names == [f"item{index}.png" for index in range(4)]
    assert batch.labels is None


def product_photo(path):
    """A dark garment on a white background, larger than 28x28, in colour."""
    photo = np.full((120, 90, 3), 250, dtype=np.uint8)
    photo[20:100, 25:65] = (40, 30, 90)
    Image.fromarray(photo).save(path)


def test_a_product_photo_is_greyscaled_fitted_and_inverted(tmp_path):
    product_photo(tmp_path / "photo.jpg")
    image = load_batch(tmp_path / "photo.jpg").images[0, ..., 0]
    assert image.shape == (28, 28)
    assert image[:, :5].max() < 30 and image[:, -5:].max() < 30  # the white background beside it became dark
    assert image[14, 14] > 180  # the dark garment became light
    # Cropped to the garment: 80 high and 40 wide, it spans the frame's height and half its width, centred.
    assert (image[1:-1, 14] > 180).all()
    assert ((image[14] > 90).nonzero()[0][[0, -1]] == [7, 20]).all()
    # "never": the item is lighter than its background, so a dark garment leaves nothing above the background.
    with pytest.raises(PipelineError, match=r"photo\.jpg: no item to classify"):
        load_batch(tmp_path / "photo.jpg", invert="never")


def test_a_dark_item_on_a_mid_grey_background_is_found_by_its_own_contrast(tmp_path):
    photo = np.full((100, 100), 140, dtype=np.uint8)
    photo[20:80, 30:70] = 30
    Image.fromarray(photo).save(tmp_path / "grey.png")
    image = load_batch(tmp_path / "grey.png").images[0, ..., 0]
    assert image[14, 14] > 150 and image[14, :4].max() < 10  # light garment, black background
    with pytest.raises(PipelineError, match=r"grey\.png: no item to classify"):
        load_batch(tmp_path / "grey.png", invert="never")


def test_an_unreadable_picture_is_named(tmp_path, garments):
    Image.fromarray(garments[0]).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(PipelineError, match=r"broken\.png: unreadable image"):
        load_batch(tmp_path)


def test_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(PipelineError, match="empty batch"):
        load_batch(tmp_path)


def test_arrays_keep_their_labels_and_must_be_28x28(tmp_path, garments):
    np.savez(tmp_path / "batch.npz", images=garments[..., None], labels=np.arange(4, dtype=np.uint8))
    batch = load_batch(tmp_path / "batch.npz")
    np.testing.assert_array_equal(batch.labels, np.arange(4))
    np.save(tmp_path / "wrong.npy", np.zeros((3, 32, 32), dtype=np.uint8))
    with pytest.raises(PipelineError, match=r"wrong\.npy: images must have shape .* got \(3, 32, 32\)"):
        load_batch(tmp_path / "wrong.npy")
    np.save(tmp_path / "scaled.npy", garments / 255.0 - 0.5)
    with pytest.raises(PipelineError, match="pixel values must be 0-255"):
        load_batch(tmp_path / "scaled.npy")
    np.save(tmp_path / "nan.npy", np.full((2, 28, 28), np.nan))
    with pytest.raises(PipelineError, match=r"nan\.npy: pixel values must be 0-255"):
        load_batch(tmp_path / "nan.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28), dtype=np.uint8))
    with pytest.raises(PipelineError, match="empty batch"):
        load_batch(tmp_path / "empty.npy")


def test_idx_images_with_their_labels_file(tmp_path, garments):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", garments, compress=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([9, 8, 7, 6], dtype=np.uint8), compress=True)
    batch = load_batch(tmp_path / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(batch.images[..., 0], garments)
    np.testing.assert_array_equal(batch.labels, [9, 8, 7, 6])


def test_missing_and_unknown_sources_are_errors(tmp_path):
    with pytest.raises(PipelineError, match="no such file or folder"):
        load_batch(tmp_path / "absent")
    (tmp_path / "batch.csv").write_text("1,2,3")
    with pytest.raises(PipelineError, match=r"batch\.csv: not a folder of pictures"):
        load_batch(tmp_path / "batch.csv")
    with pytest.raises(PipelineError, match="invert must be one of"):
        load_batch(tmp_path, invert="sometimes")


@pytest.mark.parametrize(("name", "content"), [("empty.npy", b""), ("cut.npz", b"PK\x03\x04 cut short")])
def test_empty_or_truncated_arrays_are_named(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PipelineError, match=rf"{name}: unreadable \.np[yz]"):
        load_batch(tmp_path / name)


def test_skipping_unreadable_pictures_keeps_the_rest_and_says_why(tmp_path, garments):
    for index, image in enumerate(garments):
        Image.fromarray(image).save(tmp_path / f"item{index}.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    skipped = []
    batch = load_batch(tmp_path, on_skip=skipped.append)
    assert batch.names == [f"item{index}.png" for index in range(4)]
    [reason] = skipped
    assert reason.startswith(f"{tmp_path / 'broken.png'}: unreadable image")
    (tmp_path / "other.png").write_bytes(b"")
    for path in tmp_path.glob("item*.png"):
        path.unlink()
    with pytest.raises(PipelineError, match="no pictures left \\(2 skipped: unreadable or no item\\)"):
        load_batch(tmp_path, on_skip=skipped.append)
    assert len(skipped) == 1 + 2  # each skipped file is named, also when none is left
