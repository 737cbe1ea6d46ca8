"""The predict command on pictures, folders and arrays: class names, top-k, CSV/JSON, and unreadable files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline.datasets import dataset_spec
from pipeline.prepared import save_arrays
from tests.conftest import REPO_ROOT, TINY_TRAIN, run, set_keys, square_images
from tests.test_train import run_train

CLASS_NAMES = dataset_spec("fashion_mnist").class_names


@pytest.fixture(scope="module")
def square_model(tmp_path_factory) -> Path:
    """A small model trained on the square task (the class is where the square sits)."""
    root = tmp_path_factory.mktemp("square-model")
    prepared = root / "prepared"
    prepared.mkdir()
    for name, count, seed in (("train", 400, 1), ("val", 50, 2), ("test", 50, 3)):
        save_arrays(prepared / f"{name}.npz", *square_images(count, seed))
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    set_keys(params, {**TINY_TRAIN, "train.epochs": 5})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result, out = run_train(root, root / "params.yaml", prepared)
    assert result.returncode == 0, result.stderr
    return out / "model.keras"


def predict(*arguments, check=True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.stages.predict", *map(str, arguments)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def write_pngs(folder: Path, images: np.ndarray) -> list[str]:
    folder.mkdir(exist_ok=True)
    names = [f"item{index:03d}.png" for index in range(len(images))]
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image[..., 0]).save(folder / name)
    return names


def test_a_folder_of_pictures_gets_the_models_own_probabilities(square_model, tmp_path):
    from pipeline.keras_runtime import load_keras

    images, labels = square_images(30, seed=5)
    names = write_pngs(tmp_path / "pictures", images)
    predict("--model", square_model, tmp_path / "pictures", "--top-k", 3, "--output", tmp_path / "out.csv")
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table.columns) == [
        "image",
        "class",
        "probability",
        "class_2",
        "probability_2",
        "class_3",
        "probability_3",
    ]
    assert table["image"].tolist() == names
    expected = load_keras().models.load_model(square_model).predict(images, verbose=0)
    np.testing.assert_allclose(table["probability"], expected.max(axis=1), atol=1e-6)
    assert table["class"].tolist() == [CLASS_NAMES[index] for index in expected.argmax(axis=1)]
    assert (table["probability"] >= table["probability_2"]).all() and (
        table["probability_2"] >= table["probability_3"]
    ).all()
    assert (table["class"] == np.array(CLASS_NAMES)[labels]).mean() >= 0.9


def test_json_output_and_labels_from_an_npz(square_model, tmp_path):
    images, labels = square_images(20, seed=6)
    np.savez(tmp_path / "batch.npz", images=images, labels=labels)
    result = predict("--model", square_model, tmp_path / "batch.npz", "--output", tmp_path / "out.json")
    records = json.loads((tmp_path / "out.json").read_text())
    assert [record["image"] for record in records] == [f"batch.npz[{index}]" for index in range(20)]
    assert [record["label"] for record in records] == [CLASS_NAMES[label] for label in labels]
    assert set(records[0]) == {"image", "class", "probability", "label"}
    assert "batch.npz[19]" in result.stdout  # printed as well as written


def test_a_corrupt_file_fails_the_run_naming_it_and_writes_nothing(square_model, tmp_path):
    write_pngs(tmp_path / "pictures", square_images(10, seed=7)[0])
    (tmp_path / "pictures" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = predict("--model", square_model, tmp_path / "pictures", "--output", tmp_path / "out.csv", check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"predict: error: {tmp_path / 'pictures' / 'broken.png'}: unreadable image")
    assert not (tmp_path / "out.csv").exists()


def test_skipping_unreadable_files_names_them_and_predicts_the_rest(square_model, tmp_path):
    write_pngs(tmp_path / "pictures", square_images(10, seed=7)[0])
    (tmp_path / "pictures" / "broken.png").write_bytes(b"garbage")
    (tmp_path / "empty.npy").write_bytes(b"")
    result = predict(
        "--model",
        square_model,
        tmp_path / "pictures",
        tmp_path / "empty.npy",
        "--on-error",
        "skip",
        "--output",
        tmp_path / "out.csv",
    )
    assert f"predict: skipped {tmp_path / 'pictures' / 'broken.png'}: unreadable image" in result.stderr
    assert f"predict: skipped {tmp_path / 'empty.npy'}: unreadable .npy" in result.stderr
    assert len(pd.read_csv(tmp_path / "out.csv")) == 10


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--top-k", "11"], "--top-k must be between 1 and 10, got 11"),
        (["--output", "out.txt"], "out.txt: --output must end in .csv or .json"),
        (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    ],
)
def test_bad_arguments_are_one_line_errors(square_model, tmp_path, arguments, message):
    np.save(tmp_path / "batch.npy", square_images(10, seed=8)[0])
    result = predict("--model", square_model, tmp_path / "batch.npy", *arguments, check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("predict: error: ") and message in line


def test_the_console_command_is_installed(tmp_path):
    command = Path(sys.executable).parent / "fashion-predict"
    result = run([str(command), "--help"], tmp_path)
    assert "--top-k" in result.stdout and "--on-error" in result.stdout


def product_photo(image: np.ndarray) -> Image.Image:
    """A test image as a shop would show it: dark on white, in colour, larger, not square, cropped to the item."""
    dark_on_light = Image.fromarray(255 - image[..., 0]).resize((112, 112), Image.Resampling.BICUBIC)
    photo = Image.new("RGB", (120, 112), (255, 255, 255))
    photo.paste(dark_on_light.convert("RGB"), (4, 0))
    return photo


@pytest.mark.slow
def test_predicting_pngs_of_real_test_images_matches_the_evaluate_stage(default_pipeline, tmp_path):
    from pipeline.prepared import load_arrays

    root, _ = default_pipeline
    images, _ = load_arrays(root / "data" / "prepared" / "test.npz")
    count = 500
    write_pngs(tmp_path / "pictures", images[:count])
    model = root / "models" / "model.keras"
    result = predict("--model", model, "--params", root / "params.yaml", tmp_path / "pictures")
    printed = result.stdout.splitlines()
    assert len(printed) == count + 1  # a header line, then one per picture
    predict("--model", model, "--dataset", "fashion_mnist", tmp_path / "pictures", "--output", tmp_path / "out.csv")
    predicted = pd.read_csv(tmp_path / "out.csv")["class"]
    evaluated = pd.read_csv(root / "reports" / "evaluate" / "predictions.csv")["predicted"][:count]
    assert predicted.tolist() == evaluated.tolist()


@pytest.mark.slow
def test_product_photos_on_white_are_converted_and_keep_their_class(default_pipeline, tmp_path):
    from pipeline.prepared import load_arrays

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
