"""The drift stage's parts: image features, the model's embedding, Evidently's verdict, and the stage itself."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.drift.check import compare
from pipeline.drift.features import image_features, pixel_statistics
from pipeline.drift.params import DriftParams
from pipeline.drift.shifts import apply_shift
from pipeline.model.network import build_model, with_flip_averaging
from pipeline.model.training import TrainParams
from pipeline.params import ParamsError, load_params
from pipeline.stages import drift, drift_reference
from tests.support.data import set_keys, square_images
from tests.support.training import TINY_TRAIN
from tests.support.workspaces import REPO_ROOT

CLASS_NAMES = tuple(f"class {index}" for index in range(10))


def test_pixel_statistics_of_a_known_square():
    images = np.zeros((2, 28, 28, 1), dtype=np.uint8)
    images[0, 2:10, 1:5] = 255  # 8 rows by 4 columns
    stats = pixel_statistics(images)
    square, blank = stats.iloc[0], stats.iloc[1]
    assert (square.bbox_height, square.bbox_width) == (8, 4)
    assert square.centroid_row == pytest.approx(5.5, abs=1e-3) and square.centroid_col == pytest.approx(2.5, abs=1e-3)
    assert square.ink_fraction == pytest.approx(32 / 784)
    assert square.mean_intensity == pytest.approx(32 / 784)
    assert (blank.bbox_height, blank.bbox_width, blank.ink_fraction, blank.edge_energy) == (0, 0, 0, 0)


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory):
    import yaml

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    set_keys(params, {**TINY_TRAIN, "drift.calibration_resamples": 100})
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_one_pass_gives_the_models_own_outputs_and_its_embedding(tiny_params):
    params = load_params(TrainParams, tiny_params)
    images, _ = square_images(20, seed=0)
    for model in (build_model(params), with_flip_averaging(build_model(params))):
        features = image_features(model, images, batch_size=8)
        np.testing.assert_allclose(features.probabilities, model.predict(images, verbose=0), atol=1e-6)
        assert features.embeddings.shape == (20, params.dense_units)


def feature_frame(rng, count, shift=0.0):
    frame = pd.DataFrame({f"feature_{index}": rng.normal(shift if index < 3 else 0, 1, count) for index in range(5)})
    frame["predicted_class"] = rng.choice(CLASS_NAMES, count)
    return frame


def test_evidently_draws_the_same_tests_and_flags_the_shifted_features():
    rng = np.random.default_rng(0)
    reference = feature_frame(rng, 5000)
    snapshot = compare(reference, feature_frame(rng, 2000, shift=0.5), threshold=0.001)
    drifted = {
        metric["config"]["column"]
        for metric in snapshot.dict()["metrics"]
        if metric["config"].get("type", "").endswith("ValueDrift") and metric["value"] <= 0.001  # a p-value
    }
    assert drifted == {"feature_0", "feature_1", "feature_2"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("drift.scenario", "tilt", "drift.scenario must be one of none, brightness"),
        ("drift.strength", -1, "drift.strength must be >= 0 or null, got -1"),
        ("drift.alpha", 0, "drift.alpha must be > 0"),
        ("drift.min_batch", 5, "drift.min_batch must be >= 10"),
        ("drift.effect_floor", 1, "drift.effect_floor must be >= 0 and < 1, got 1"),
        ("drift.invert", "sometimes", "drift.invert must be one of auto, always, never"),
    ],
)
def test_bad_drift_params_name_the_key(write_params, key, value, message):
    with pytest.raises(ParamsError, match=message):
        load_params(DriftParams, write_params({key: value}))


@pytest.fixture(scope="module")
def stage_files(tmp_path_factory, tiny_params):
    """An untrained tiny model and 1,000 square images per split, as the stages read them."""
    from pipeline.data.preprocessing import save_arrays

    root = tmp_path_factory.mktemp("drift")
    (root / "prepared").mkdir()
    for split, seed in (("val", 1), ("test", 2)):
        save_arrays(root / "prepared" / f"{split}.npz", *square_images(1000, seed))
    build_model(load_params(TrainParams, tiny_params)).save(root / "model.keras")
    manifest = {"dataset": "fashion_mnist", "files": {"train_images": {"sha256": "0" * 64}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    drift_reference.main(
        [
            "--params",
            str(tiny_params),
            "--model",
            str(root / "model.keras"),
            "--prepared",
            str(root / "prepared"),
            "--out",
            str(root / "reference"),
        ]
    )
    return root


def run_drift(root, params, *currents, extra=(), reference="reference"):
    drift.main(
        [
            *extra,
            "--params",
            str(params),
            "--model",
            str(root / "model.keras"),
            "--reference",
            str(root / reference),
            "--current",
            *map(str, currents),
            "--checks",
            str(root / "checks"),
            "--page",
            str(root / "page.html"),
            "--manifest",
            str(root / "manifest.json"),
            "--dataset",
            "fashion_mnist",
            "--report",
            str(root / "report.html"),
            "--summary",
            str(root / "summary.json"),
            "--metrics",
            str(root / "metrics.json"),
        ]
    )
    return json.loads((root / "summary.json").read_text())


def test_stage_finds_no_drift_in_a_clean_batch_and_drift_in_an_inverted_one(stage_files, tiny_params, tmp_path):
    clean = run_drift(stage_files, tiny_params, stage_files / "prepared" / "test.npz")
    assert clean["verdict"] == "no drift" and not clean["dataset_drift"], clean["reason"]
    assert clean["batch"]["images"] == 1000 and clean["batch"]["scenario"] == "none"
    assert clean["batch"]["source"] == str(stage_files / "prepared" / "test.npz")
    assert clean["reference"]["sources"] == {"original": 1.0} and clean["reference"]["chosen"] == "named source"
    assert clean["smallest_p_value"] > clean["threshold"]
    report = (stage_files / "report.html").read_text()
    assert "<script" in report and 'src="http' not in report  # everything inlined: opens offline
    images, labels = square_images(1000, seed=2)
    inverted, _ = apply_shift(images, labels, "inversion", 1.0, seed=0)
    np.save(tmp_path / "inverted.npy", inverted)
    shifted = run_drift(stage_files, tiny_params, tmp_path / "inverted.npy")
    assert shifted["verdict"] == "drift" and shifted["dataset_drift"]
    assert {"mean_intensity", "ink_fraction"} <= set(shifted["rejected"])
    assert shifted["tests"]["mean_intensity"]["p_value"] <= shifted["threshold"]
    assert shifted["tests"]["mean_intensity"]["effect"] >= shifted["effect_floor"]
    assert json.loads((stage_files / "metrics.json").read_text()) == {
        "drift": 1,
        "smallest_p": shifted["smallest_p_value"],
        "batch_images": 1000,
    }


def new_kind_images(count: int, seed: int) -> np.ndarray:
    """The squares on a brighter, coarser background: a new kind of picture of the same ten classes."""
    images, _ = square_images(count, seed)
    return np.clip(images.astype(int) + np.random.default_rng(seed).integers(40, 90, images.shape), 0, 255).astype(
        np.uint8
    )


@pytest.fixture(scope="module")
def two_sources(stage_files, tiny_params):
    """References of a validation split that also holds 400 images of an accepted source and 5 of another, too few
    for a reference of its own (its pool.json says so)."""
    from pipeline.data.preprocessing import save_arrays

    prepared = stage_files / "prepared-two-sources"
    prepared.mkdir()
    images, labels = square_images(1000, seed=1)
    val = np.concatenate([images, new_kind_images(400, 3), 255 - images[:5]])
    save_arrays(prepared / "val.npz", val, np.r_[labels, labels[:400], labels[:5]])
    record = [
        {"batch": "week-1", "source": "new-kind", "train": 1600, "val": 400, "test": 0},
        {"batch": "week-2", "source": "tiny", "train": 20, "val": 5, "test": 0},
    ]
    (prepared / "pool.json").write_text(json.dumps({"batches": record}))
    arguments = ["--params", str(tiny_params), "--model", str(stage_files / "model.keras"), "--prepared", str(prepared)]
    drift_reference.main([*arguments, "--out", str(stage_files / "reference-two-sources")])
    return "reference-two-sources"


def test_a_batch_is_judged_against_its_own_source_or_the_sources_it_looks_like(
    stage_files, tiny_params, two_sources, tmp_path
):
    listed = json.loads((stage_files / two_sources / "sources.json").read_text())["sources"]
    assert listed == [{"source": "original", "images": 1000}, {"source": "new-kind", "images": 400}]
    np.save(tmp_path / "new.npy", new_kind_images(200, 4))
    unknown = run_drift(
        stage_files, tiny_params, tmp_path / "new.npy", reference=two_sources, extra=["--current-source", "unknown"]
    )
    assert unknown["verdict"] == "no drift", unknown["reason"]
    assert unknown["reference"]["sources"] == {"new-kind": 1.0}
    assert unknown["reference"]["chosen"] == "one source (estimated)"
    named = run_drift(stage_files, tiny_params, tmp_path / "new.npy", reference=two_sources)  # params: original
    assert named["verdict"] == "drift" and named["reference"]["sources"] == {"original": 1.0}
    page = (stage_files / "page.html").read_text()
    assert str(tmp_path / "new.npy") in page and named["batch"]["sha256"][:16] in page
    assert "the reference of original 100%: the source named for this check" in page
    assert "known sources: original, new-kind" in page
    assert f"Drift check of {tmp_path / 'new.npy'}" in (stage_files / "report.html").read_text()


def test_every_check_keeps_its_folder_and_a_line_of_history(stage_files, tiny_params, tmp_path):
    from pipeline.drift.history import read_history

    before = len(read_history(stage_files / "checks"))
    summary = run_drift(stage_files, tiny_params, stage_files / "prepared" / "test.npz", extra=["--check-id", "kept"])
    folder = stage_files / "checks" / "kept"
    assert sorted(path.name for path in folder.iterdir()) == [
        "metrics.json",
        "page.html",
        "report.html",
        "summary.json",
        "trend.png",
    ]
    assert json.loads((folder / "summary.json").read_text()) == summary
    history = read_history(stage_files / "checks")
    assert len(history) == before + 1 and history[-1]["id"] == "kept" and history[-1]["source"] == "stage"
    page = (folder / "page.html").read_text()
    assert "No dataset drift" in page and 'href="report.html"' in page
    with pytest.raises(SystemExit):  # an id is never reused: a check never replaces another
        run_drift(stage_files, tiny_params, stage_files / "prepared" / "test.npz", extra=["--check-id", "kept"])


def test_a_small_batch_of_the_monitor_is_inconclusive_and_kept_for_pooling(stage_files, tiny_params, tmp_path):
    images, labels = square_images(1000, seed=2)
    np.save(tmp_path / "few.npy", images[:12])
    extra = ["--source", "monitor", "--check-id", "few"]
    few = run_drift(stage_files, tiny_params, tmp_path / "few.npy", extra=extra)
    assert few["verdict"] == "inconclusive" and not few["dataset_drift"]
    assert "fewer than drift.min_batch" in few["reason"]
    assert (stage_files / "checks" / "few" / "batch.npz").is_file()
    # Pooled with another small batch, the images are enough for a verdict.
    np.save(tmp_path / "more.npy", images[12:30])
    extra = ["--source", "monitor", "--check-id", "pooled", "--pooled", "few"]
    pooled = run_drift(
        stage_files, tiny_params, stage_files / "checks" / "few" / "batch.npz", tmp_path / "more.npy", extra=extra
    )
    assert pooled["batch"]["images"] == 30 and pooled["verdict"] == "no drift"
    assert pooled["check"]["pooled"] == ["few"]


def test_a_bad_batch_fails_with_one_line_and_keeps_the_last_report(stage_files, tiny_params, tmp_path, capsys):
    run_drift(stage_files, tiny_params, stage_files / "prepared" / "test.npz")
    before = (stage_files / "summary.json").read_text()
    checks_before = sorted((stage_files / "checks").iterdir())
    np.save(tmp_path / "wrong.npy", np.zeros((5, 32, 32), dtype=np.uint8))
    with pytest.raises(SystemExit) as exited:
        run_drift(stage_files, tiny_params, tmp_path / "wrong.npy")
    assert exited.value.code == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("drift: error:") and "wrong.npy: images must have shape" in error
    assert len(error.splitlines()) == 1
    assert (stage_files / "summary.json").read_text() == before
    assert sorted((stage_files / "checks").iterdir()) == checks_before


def test_a_missing_reference_folder_is_one_line_naming_it(stage_files, tiny_params, capsys):
    with pytest.raises(SystemExit) as exited:
        run_drift(stage_files, tiny_params, stage_files / "prepared" / "test.npz", reference="no-such-reference")
    assert exited.value.code == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith(
        f"drift: error: {stage_files / 'no-such-reference'}: not a drift reference folder ("
    )
    assert error.endswith("run the drift_reference stage")


def test_a_pooled_checks_kept_images_are_not_inverted_twice(tmp_path):
    from pipeline.stages.drift import pooled_batch

    images, _ = square_images(10, seed=12)
    kept = tmp_path / "checks" / "20261130T000000-check" / "batch.npz"
    kept.parent.mkdir(parents=True)
    np.savez(kept, images=images)  # as the earlier check stored them: already converted
    np.save(tmp_path / "new.npy", images)
    batch = pooled_batch([kept, tmp_path / "new.npy"], tmp_path / "checks", invert="always", crop=True)
    np.testing.assert_array_equal(batch.images[:10], images)
    np.testing.assert_array_equal(batch.images[10:], 255 - images)  # a new batch is inverted as asked
