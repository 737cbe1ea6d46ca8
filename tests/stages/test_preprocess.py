import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.preprocessing import load_arrays, save_arrays, stratified_split, to_nhwc
from tests.support.data import write_dataset, write_manifest, write_pool_batch
from tests.support.workspaces import REPO_ROOT


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
            "--pool",
            str(tmp_path / "pool"),
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


def run_preprocess(raw: Path, out: Path, params: Path, pool: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.stages.preprocess", "--params", str(params), "--raw", str(raw)]
    command += ["--dataset", "fashion_mnist", "--out", str(out / "prepared"), "--pictures", str(out / "pictures")]
    return subprocess.run([*command, "--pool", str(pool)], capture_output=True, text=True, cwd=REPO_ROOT)


def test_accepted_batches_join_training_with_a_fixed_test_slice_per_source(tiny_arrays, tmp_path, write_params):
    raw = write_dataset(tmp_path / "raw", tiny_arrays, compress=False)
    write_manifest(raw)
    params = write_params({"preprocess.source_test_images": 500, "preprocess.reserve_images": 20})
    pool = tmp_path / "pool"
    write_pool_batch(pool, "first", "studio", 600, seed=101, accepted_at="2026-11-01T00:00:00+00:00")
    write_pool_batch(pool, "second", "studio", 800, seed=102, accepted_at="2026-11-02T00:00:00+00:00")
    result = run_preprocess(raw, tmp_path / "before", params, pool)
    assert result.returncode == 0, result.stderr
    prepared = tmp_path / "before" / "prepared"
    # Half of the first batch (300), then the 200 the slice still lacks from the second.
    slice_images, slice_labels = load_arrays(prepared / "slices" / "studio.npz")
    assert len(slice_labels) == 500
    record = json.loads((prepared / "pool.json").read_text())["batches"]
    assert [(entry["batch"], entry["test"], entry["train"] + entry["val"]) for entry in record] == [
        ("first", 300, 300),
        ("second", 200, 600),
    ]
    train, val = load_arrays(prepared / "train.npz"), load_arrays(prepared / "val.npz")
    # 180 training-file images (20 reserved) split 144/36, plus the pool's 900 split 80/20 by class.
    assert len(train[1]) + len(val[1]) == 180 + 900
    assert len(val[1]) == 36 + sum(entry["val"] for entry in record)
    pool_images = {row.tobytes() for row in np.concatenate([train[0], val[0]]).reshape(-1, 784)}
    assert not any(row.tobytes() in pool_images for row in slice_images.reshape(-1, 784))
    lineage = json.loads((tmp_path / "before" / "pictures" / "lineage.json").read_text())
    assert "first (studio" in lineage["accepted batches"] and "second (studio" in lineage["accepted batches"]

    # A later batch, of the same source and of a new one, moves none of the earlier images.
    write_pool_batch(pool, "third", "studio", 400, seed=103, accepted_at="2026-11-03T00:00:00+00:00")
    write_pool_batch(pool, "fourth", "phone", 100, seed=104, accepted_at="2026-11-04T00:00:00+00:00")
    assert run_preprocess(raw, tmp_path / "after", params, pool).returncode == 0
    after = tmp_path / "after" / "prepared"
    np.testing.assert_array_equal(load_arrays(after / "slices" / "studio.npz")[1], slice_labels)
    np.testing.assert_array_equal(load_arrays(after / "slices" / "studio.npz")[0], slice_images)
    assert len(load_arrays(after / "slices" / "phone.npz")[1]) == 50
    np.testing.assert_array_equal(load_arrays(after / "val.npz")[0][: len(val[1])], val[0])


def test_a_broken_pool_batch_is_named(tiny_arrays, tmp_path, write_params):
    raw = write_dataset(tmp_path / "raw", tiny_arrays, compress=False)
    write_manifest(raw)
    batch = write_pool_batch(tmp_path / "pool", "broken", "studio", 10, 1, "2026-11-01T00:00:00+00:00")
    (batch / "images.npz").write_bytes(b"not a zip")
    result = run_preprocess(raw, tmp_path, write_params(), tmp_path / "pool")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"preprocess: error: {batch}: not an accepted batch")
    assert not (tmp_path / "prepared").exists()
