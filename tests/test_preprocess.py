import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.prepared import load_arrays, save_arrays, stratified_split, to_nhwc
from tests.conftest import REPO_ROOT, write_dataset, write_manifest


def test_to_nhwc_adds_the_channel_axis_without_scaling():
    images = np.arange(2 * 28 * 28, dtype=np.uint16).reshape(2, 28, 28).astype(np.uint8)
    shaped = to_nhwc(images)
    assert shaped.shape == (2, 28, 28, 1) and shaped.dtype == np.uint8
    np.testing.assert_array_equal(shaped[..., 0], images)


def test_stratified_split_holds_out_the_fraction_of_every_class():
    labels = np.repeat(np.arange(10), [100, 50, 10, 20, 30, 40, 60, 70, 80, 90])
    train, val = stratified_split(labels, 0.2, seed=7)
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    np.testing.assert_array_equal(np.bincount(labels[val]), np.round(np.bincount(labels) * 0.2).astype(int))


def test_stratified_split_is_seeded():
    labels = np.repeat(np.arange(10), 50)
    first, again, other = (stratified_split(labels, 0.3, seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_prepared_arrays_load_without_pickle(tmp_path):
    images, labels = np.ones((3, 28, 28, 1), np.uint8), np.array([1, 2, 3], np.uint8)
    save_arrays(tmp_path / "ok.npz", images, labels)
    loaded_images, loaded_labels = load_arrays(tmp_path / "ok.npz")
    np.testing.assert_array_equal(loaded_images, images)
    np.savez(tmp_path / "pickled.npz", images=np.array([object()], dtype=object), labels=labels)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_arrays(tmp_path / "pickled.npz")


def test_stage_writes_prepared_arrays_and_pictures(tiny_arrays, tmp_path):
    raw = write_dataset(tmp_path / "raw", tiny_arrays, compress=False)
    write_manifest(raw)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.preprocess",
            "--raw",
            str(raw),
            "--dataset",
            "fashion_mnist",
            "--out",
            str(tmp_path / "prepared"),
            "--pictures",
            str(tmp_path / "pictures"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    splits = {name: load_arrays(tmp_path / "prepared" / f"{name}.npz") for name in ("train", "val", "test")}
    assert {name: len(labels) for name, (_, labels) in splits.items()} == {"train": 160, "val": 40, "test": 50}
    for images, _ in splits.values():
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
    np.testing.assert_array_equal(np.bincount(splits["val"][1]), np.full(10, 4))
    # Every training image lands in exactly one of train and val.
    together = np.concatenate([splits["train"][0], splits["val"][0]]).reshape(200, -1)
    assert len(np.unique(together, axis=0)) == 200
    pictures = sorted(path.name for path in (tmp_path / "pictures").iterdir())
    assert pictures == ["lineage.json", "sample_grid.png", "sample_image.png"]
    assert json.loads((tmp_path / "pictures" / "lineage.json").read_text())["params"]["preprocess"]["seed"] == 42
