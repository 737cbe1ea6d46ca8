"""fashion-predict with the default model the pipeline trains: real test images as files, product photos and phone
photos of them, and pictures that are not clothing."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.support.commands import predict, write_pngs

pytestmark = pytest.mark.slow


def product_photo(image: np.ndarray) -> Image.Image:
    """A test image as a shop would show it: dark on white, in colour, larger, not square, cropped to the item."""
    dark_on_light = Image.fromarray(255 - image[..., 0]).resize((112, 112), Image.Resampling.BICUBIC)
    photo = Image.new("RGB", (120, 112), (255, 255, 255))
    photo.paste(dark_on_light.convert("RGB"), (4, 0))
    return photo


def test_predicting_pngs_of_real_test_images_matches_the_evaluate_stage(default_pipeline, tmp_path):
    from pipeline.data.preprocessing import load_arrays

    root, _ = default_pipeline
    images, _ = load_arrays(root / "data" / "prepared" / "test.npz")
    count = 500
    write_pngs(tmp_path / "pictures", images[:count])
    model = root / "models" / "model.keras"
    # Already cropped as the training images are: --no-crop gives the model the test images' own pixels.
    result = predict("--model", model, "--params", root / "params.yaml", tmp_path / "pictures", "--no-crop")
    printed = result.stdout.splitlines()
    assert len(printed) == count + 1  # a header line, then one per picture
    arguments = ["--model", model, "--dataset", "fashion_mnist", tmp_path / "pictures", "--no-crop"]
    predict(*arguments, "--output", tmp_path / "out.csv")
    predicted = pd.read_csv(tmp_path / "out.csv")
    evaluated = pd.read_csv(root / "reports" / "evaluate" / "predictions.csv")["predicted"][:count]
    assert predicted["class"].tolist() == evaluated.tolist()
    # The threshold flags 5% of the validation images; these are as familiar.
    assert predicted["unfamiliar"].mean() <= 0.08


def test_product_photos_on_white_are_converted_and_keep_their_class(default_pipeline, tmp_path):
    from pipeline.data.preprocessing import load_arrays

    root, _ = default_pipeline
    images, _ = load_arrays(root / "data" / "prepared" / "test.npz")
    count = 200
    (tmp_path / "photos").mkdir()
    for index in range(count):
        product_photo(images[index]).save(tmp_path / "photos" / f"photo{index:03d}.jpg", quality=90)
    predict(
        "--model",
        root / "models" / "model.keras",
        "--dataset",
        "fashion_mnist",
        tmp_path / "photos",
        "--output",
        tmp_path / "predicted.csv",
    )
    predicted = pd.read_csv(tmp_path / "predicted.csv")["class"]
    evaluated = pd.read_csv(root / "reports" / "evaluate" / "predictions.csv")["predicted"][:count]
    assert (predicted.to_numpy() == evaluated.to_numpy()).mean() >= 0.9


def phone_photo(image: np.ndarray, seed: int) -> Image.Image:
    """A test image as a phone photo of it on a floor: the item 40% of the width, anywhere, lit unevenly."""
    rng = np.random.default_rng(seed)
    side = 112
    darkness = np.asarray(Image.fromarray(image[..., 0]).resize((side, side), Image.Resampling.BICUBIC)) / 255
    floor = np.linspace(235, 175, 280)[None, :] * np.ones((280, 1))
    top, left = rng.integers(0, 280 - side, size=2)
    floor[top : top + side, left : left + side] *= 1 - darkness
    return Image.fromarray(np.clip(floor + rng.normal(0, 4, floor.shape), 0, 255).astype(np.uint8)).convert("RGB")


def test_phone_photos_of_items_are_cropped_to_the_item_and_keep_their_class(default_pipeline, tmp_path):
    from pipeline.data.preprocessing import load_arrays

    root, _ = default_pipeline
    images, _ = load_arrays(root / "data" / "prepared" / "test.npz")
    count = 200
    (tmp_path / "photos").mkdir()
    for index in range(count):
        phone_photo(images[index], index).save(tmp_path / "photos" / f"photo{index:03d}.jpg", quality=85)
    arguments = ["--model", root / "models" / "model.keras", "--dataset", "fashion_mnist", tmp_path / "photos"]
    predict(*arguments, "--output", tmp_path / "predicted.csv")
    predicted = pd.read_csv(tmp_path / "predicted.csv")
    evaluated = pd.read_csv(root / "reports" / "evaluate" / "predictions.csv")["predicted"][:count]
    assert (predicted["class"].to_numpy() == evaluated.to_numpy()).mean() >= 0.9
    assert predicted["unfamiliar"].mean() <= 0.15  # photos of garments are not foreign pictures
    # Without the crop the item is a small part of the frame, and the answers are mostly wrong.
    predict(*arguments, "--no-crop", "--output", tmp_path / "uncropped.csv")
    uncropped = pd.read_csv(tmp_path / "uncropped.csv")
    assert (uncropped["class"].to_numpy() == evaluated.to_numpy()).mean() < 0.5


def test_pictures_that_are_not_clothing_are_flagged_unfamiliar(default_pipeline, tmp_path):
    from sklearn.datasets import load_digits

    root, _ = default_pipeline
    digits = load_digits().images[:100] / 16 * 255  # 8x8 handwritten digits, light on dark
    digits = np.stack(
        [np.asarray(Image.fromarray(digit).resize((20, 20), Image.Resampling.BILINEAR)) for digit in digits]
    )
    digits = np.pad(np.clip(digits, 0, 255), ((0, 0), (4, 4), (4, 4)))  # centred in 28x28, as MNIST
    noise = np.random.default_rng(0).integers(0, 256, (100, 28, 28))
    blank = np.stack([np.zeros((28, 28)), np.full((28, 28), 255)])  # all black, all white: never a silent class
    np.save(tmp_path / "foreign.npy", np.concatenate([digits, noise, blank]).astype(np.uint8)[..., None])
    arguments = ["--model", root / "models" / "model.keras", "--dataset", "fashion_mnist", tmp_path / "foreign.npy"]
    predict(*arguments, "--output", tmp_path / "predicted.csv")
    flagged = pd.read_csv(tmp_path / "predicted.csv")["unfamiliar"].to_numpy()
    assert flagged[:100].mean() >= 0.8 and flagged[100:].all()
