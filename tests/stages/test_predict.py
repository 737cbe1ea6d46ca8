"""The predict command on pictures, folders and arrays: class names, top-k, CSV/JSON, and unreadable files."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.commands.predict import FLAG_NOTE
from pipeline.data.datasets import dataset_spec
from tests.support.commands import predict, write_pngs
from tests.support.data import square_images, write_png
from tests.support.training import train_square_model
from tests.support.workspaces import run

CLASS_NAMES = dataset_spec("fashion_mnist").class_names


@pytest.fixture(scope="module")
def square_model(tmp_path_factory) -> Path:
    """A small model trained on the square task (the class is where the square sits)."""
    return train_square_model(tmp_path_factory.mktemp("square-model"))


def test_a_folder_of_pictures_gets_the_models_own_probabilities(square_model, tmp_path):
    from pipeline.keras_runtime import load_keras

    images, labels = square_images(30, seed=5)
    names = write_pngs(tmp_path / "pictures", images)
    # 28x28 pictures made as the training images are: --no-crop gives the model exactly these pixels.
    arguments = ["--model", square_model, tmp_path / "pictures", "--top-k", 3, "--no-crop"]
    predict(*arguments, "--output", tmp_path / "out.csv")
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table.columns) == [
        "image",
        "class",
        "probability",
        "class_2",
        "probability_2",
        "class_3",
        "probability_3",
        "unfamiliarity",
        "unfamiliar",
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
    assert set(records[0]) == {"image", "class", "probability", "unfamiliarity", "unfamiliar", "label"}
    assert all(isinstance(record["unfamiliar"], bool) for record in records)
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


def foreign_images(count: int) -> np.ndarray:
    """Nothing like the square task: bright random textures filling the frame."""
    return np.random.default_rng(9).integers(120, 256, (count, 28, 28, 1)).astype(np.uint8)


def test_unfamiliar_images_are_flagged_and_can_be_left_out(square_model, tmp_path):
    squares, _ = square_images(40, seed=10)
    np.save(tmp_path / "mixed.npy", np.concatenate([squares, foreign_images(10)]))
    result = predict("--model", square_model, tmp_path / "mixed.npy", "--output", tmp_path / "out.csv")
    table = pd.read_csv(tmp_path / "out.csv")
    assert table["unfamiliar"][40:].all()
    assert table["unfamiliar"][:40].mean() <= 0.15  # the threshold flags 5% of the validation squares
    assert table["unfamiliarity"][40:].min() > table["unfamiliarity"][:40].median()
    flagged_lines = [line for line in result.stdout.splitlines() if line.endswith(FLAG_NOTE)]
    assert len(flagged_lines) == table["unfamiliar"].sum()
    left_out = predict(
        "--model", square_model, tmp_path / "mixed.npy", "--unfamiliar", "skip", "--output", tmp_path / "kept.csv"
    )
    kept = pd.read_csv(tmp_path / "kept.csv")
    assert kept["image"].tolist() == table["image"][~table["unfamiliar"]].tolist()
    for name in table["image"][table["unfamiliar"]]:
        assert f"predict: left out {name}: {FLAG_NOTE}" in left_out.stderr


def test_leaving_out_every_image_says_so_and_writes_an_empty_table(square_model, tmp_path):
    np.save(tmp_path / "foreign.npy", foreign_images(6))
    arguments = ["--model", square_model, tmp_path / "foreign.npy", "--unfamiliar", "skip"]
    result = predict(*arguments, "--output", tmp_path / "kept.json")
    assert result.stdout == ""
    assert (
        result.stderr.strip().splitlines()[-1] == "predict: none of the 6 images left: every one is flagged unfamiliar"
    )
    assert json.loads((tmp_path / "kept.json").read_text()) == []


def test_without_its_unfamiliarity_file_a_model_is_refused_in_one_line(square_model, tmp_path):
    np.save(tmp_path / "batch.npy", square_images(10, seed=8)[0])
    result = predict(
        "--model", square_model, "--unfamiliarity", tmp_path / "absent.npz", tmp_path / "batch.npy", check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"predict: error: {tmp_path / 'absent.npz'}: unfamiliarity file not found (the unfamiliarity stage writes it "
        "beside the model)"
    )


def test_a_blank_picture_is_an_error_naming_it_and_skipped_by_name(square_model, tmp_path):
    (tmp_path / "pictures").mkdir()
    Image.new("RGB", (300, 200), (240, 240, 240)).save(tmp_path / "pictures" / "wall.jpg")
    result = predict("--model", square_model, tmp_path / "pictures", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"predict: error: {tmp_path / 'pictures' / 'wall.jpg'}: no item to classify (nothing stands out from the "
        "background)"
    )
    squares, _ = square_images(10, seed=11)
    write_pngs(tmp_path / "pictures", squares)
    result = predict(
        "--model", square_model, tmp_path / "pictures", "--on-error", "skip", "--output", tmp_path / "a.csv"
    )
    assert f"predict: skipped {tmp_path / 'pictures' / 'wall.jpg'}: no item to classify" in result.stderr
    assert len(pd.read_csv(tmp_path / "a.csv")) == 10
    # Without the crop nothing looks for the item: the blank picture gets a class, flagged as unfamiliar.
    predict("--model", square_model, tmp_path / "pictures", "--no-crop", "--output", tmp_path / "whole.csv")
    whole = pd.read_csv(tmp_path / "whole.csv").set_index("image")
    assert whole.loc["wall.jpg", "unfamiliar"]


def test_skipping_names_every_file_also_when_none_is_left(square_model, tmp_path):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "a.png").write_bytes(b"not a picture")
    (tmp_path / "pictures" / "b.jpg").write_bytes(b"")
    write_png(tmp_path / "pictures" / "huge.png", 14_000, 14_000, 1, 0, (bytes(1750) for _ in range(14_000)))
    result = predict("--model", square_model, tmp_path / "pictures", "--on-error", "skip", check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["predict"] * 3
    for name in ("a.png", "b.jpg"):
        assert any(
            line.startswith(f"predict: skipped {tmp_path / 'pictures' / name}: unreadable image") for line in lines
        )
    assert any(
        line.startswith(f"predict: skipped {tmp_path / 'pictures' / 'huge.png'}: too large to read safely")
        for line in lines
    )
    assert f"predict: skipped {tmp_path / 'pictures'}: no pictures left (3 skipped: unreadable or no item)" in lines
    assert lines[-1] == f"predict: error: no images left in {tmp_path / 'pictures'}"


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
