"""The real `dvc repro` on the real data with the default params, in a fresh copy of the repository.

The first run trains the default model (several minutes); the checks after it share that run (conftest's
`default_pipeline`, which the predict and browser tests read too).
"""

import dataclasses
import json

import numpy as np
import pytest
import yaml

from pipeline.data.datasets import dataset_spec
from pipeline.data.preprocessing import load_arrays
from pipeline.drift.check import check_drift
from pipeline.drift.history import read_history
from pipeline.drift.params import DriftParams
from pipeline.drift.references import load_references
from pipeline.drift.shifts import SCENARIOS
from pipeline.keras_runtime import load_keras
from pipeline.model.network import build_model, classifier_of, load_model, with_flip_averaging
from pipeline.model.training import TrainParams
from pipeline.params import load_params
from pipeline.pictures.batches import Batch, load_batch
from tests.support.workspaces import run

CLASS_NAMES = dataset_spec("fashion_mnist").class_names

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(default_pipeline):
    return default_pipeline


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_first_run_runs_every_stage_on_the_real_data(workspace):
    root, first = workspace
    assert ran_stages(first.stdout) == [
        "ingest",
        "validate",
        "preprocess",
        "train",
        "unfamiliarity",
        "evaluate",
        "drift_reference",
        "drift",
        "live",
        "report_index",
    ]
    counts = {
        name: len(load_arrays(root / "data" / "prepared" / f"{name}.npz")[1]) for name in ("train", "val", "test")
    }
    assert counts == {"train": 48000, "val": 12000, "test": 10000}
    assert (root / "reports" / "validate" / "data_docs" / "index.html").is_file()
    assert (root / "reports" / "preprocess" / "sample_grid.png").is_file()


def test_default_model_reaches_its_accuracy_target(workspace):
    root, _ = workspace
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], root).stdout)
    [workspace_metrics] = shown.values()  # one revision: the workspace
    metrics = workspace_metrics["data"]["reports/evaluate/metrics.json"]["data"]
    assert metrics["accuracy"] >= 0.94
    # The unfamiliarity threshold, set to flag 5% of the validation images, flags as many test images.
    assert 0.04 <= metrics["unfamiliar"] <= 0.06
    # Shirt is the hardest class (it looks like T-shirts, pullovers and coats); none may collapse.
    per_class = json.loads((root / "reports" / "evaluate" / "per_class.json").read_text())
    recalls = {name: values["recall"] for name, values in per_class.items()}
    assert min(recalls.values()) >= 0.75, recalls
    assert all(recalls[name] >= 0.95 for name in ("Trouser", "Bag", "Sandal", "Ankle boot", "Sneaker")), recalls


def test_the_saved_model_computes_in_float32_and_predicts_as_the_trained_one(workspace):
    """Whatever precision training resolved to, the saved model computes in float32, and it agrees with its own
    weights computing in that precision (the model as it trained) on at least 99.5% of the test images."""
    root, _ = workspace
    trained_in = json.loads((root / "reports" / "train" / "timing.json").read_text())["precision"]
    saved = load_model(root / "models" / "model.keras")
    classifier = classifier_of(saved)
    assert {layer.dtype_policy.name for layer in classifier.layers} == {"float32"}
    keras = load_keras()
    keras.mixed_precision.set_global_policy(trained_in)
    try:
        as_trained = build_model(load_params(TrainParams, root / "params.yaml"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    as_trained.set_weights(classifier.get_weights())
    as_trained = with_flip_averaging(as_trained)
    images, _ = load_arrays(root / "data" / "prepared" / "test.npz")
    saved_classes = saved.predict(images, batch_size=1024, verbose=0).argmax(axis=1)
    trained_classes = as_trained.predict(images, batch_size=1024, verbose=0).argmax(axis=1)
    assert (saved_classes == trained_classes).mean() >= 0.995


# What `dvc metrics show` prints, by metrics file of dvc.yaml: headline numbers only, so that its one table (a column
# per distinct key, a row per file) stays readable in a terminal. The full records are plain outputs beside them.
HEADLINE_METRICS = {
    "reports/validate/metrics.json": {"expectations_passed"},
    "reports/train/metrics.json": {"epochs", "val_accuracy"},
    "reports/evaluate/metrics.json": {"accuracy", "macro_f1", "loss", "calibration_error", "unfamiliar"},
    "reports/drift/metrics.json": {"drift", "smallest_p", "batch_images"},
}
MAX_METRIC_COLUMNS = 11
MAX_LINE_CHARACTERS = 200


def flat_metrics(values: dict, prefix: str = "") -> dict:
    """A metrics file's values by the column names DVC gives them: nested keys joined with dots."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        flat.update(flat_metrics(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def test_metrics_show_is_a_short_table_of_numbers(workspace):
    root, _ = workspace
    shown = run(["dvc", "metrics", "show", "--json"], root)
    assert "failed to load" not in shown.stderr, shown.stderr
    [workspace_metrics] = json.loads(shown.stdout).values()  # one revision: the workspace
    files = workspace_metrics["data"]
    assert all("error" not in entry for entry in files.values()), files
    columns = {path: flat_metrics(entry["data"]) for path, entry in files.items()}
    assert {path: set(values) for path, values in columns.items()} == HEADLINE_METRICS
    names = {name for values in columns.values() for name in values}
    assert len(names) <= MAX_METRIC_COLUMNS, sorted(names)
    for path, values in columns.items():
        # Numbers only: no strings, lists or nulls, and no booleans (DVC cannot diff a verdict of True).
        wrong = {name: value for name, value in values.items() if type(value) not in (int, float)}
        assert not wrong, f"{path}: not numbers: {wrong}"
    table = run(["dvc", "metrics", "show"], root).stdout.splitlines()
    assert len(table) == 1 + len(HEADLINE_METRICS), table  # the column names, then a row per file
    header = table[0].split()
    assert header[0] == "Path" and sorted(header[1:]) == sorted(names), header
    too_long = [line for line in table if len(line) > MAX_LINE_CHARACTERS]
    assert not too_long, f"lines over {MAX_LINE_CHARACTERS} characters: {too_long}"


@pytest.fixture(scope="module")
def real_model(workspace):
    from pipeline.keras_runtime import load_keras

    root, _ = workspace
    return load_keras().models.load_model(root / "models" / "model.keras")


@pytest.mark.parametrize("class_name", ["Trouser", "Sneaker", "Bag", "T-shirt/top"])
def test_a_horizontally_flipped_item_keeps_its_class(workspace, real_model, class_name):
    root, _ = workspace
    images, labels = load_arrays(root / "data" / "prepared" / "test.npz")
    label = CLASS_NAMES.index(class_name)
    chosen = images[labels == label]
    original = real_model.predict(chosen, verbose=0).argmax(axis=1)
    flipped = real_model.predict(chosen[:, :, ::-1, :], verbose=0).argmax(axis=1)
    assert (flipped == label).mean() >= (original == label).mean() - 0.03
    assert (flipped == label).mean() >= 0.85


def test_model_takes_the_raw_images_the_pipeline_ingested(workspace, real_model):
    root, _ = workspace
    images, labels = load_arrays(root / "data" / "prepared" / "test.npz")
    assert images.dtype == np.uint8  # no scaling step for a caller to forget
    accuracy = (real_model.predict(images[:2000], verbose=0).argmax(axis=1) == labels[:2000]).mean()
    assert accuracy >= 0.9


def test_evaluation_report_names_classes(workspace):
    root, _ = workspace
    report = (root / "reports" / "evaluate" / "report.html").read_text()
    assert all(name in report for name in CLASS_NAMES)
    assert "Confusion matrix" in report and "Classification report" in report


def test_clean_test_set_shows_no_drift(workspace):
    root, _ = workspace
    summary = json.loads((root / "reports" / "drift" / "summary.json").read_text())
    assert summary["verdict"] == "no drift" and not summary["dataset_drift"], summary["reason"]
    assert summary["smallest_p_value"] > summary["threshold"] or summary["rejected"] == []
    assert summary["batch"]["images"] == 10000 and summary["reference"]["images"] == 12000
    # The DVC stage's check is kept in a folder of its own too, with its line in the history.
    [entry] = read_history(root / "reports" / "drift" / "checks")
    assert entry["source"] == "stage" and entry["verdict"] == "no drift"
    assert (root / "reports" / "drift" / "checks" / entry["id"] / "page.html").is_file()


@pytest.fixture(scope="module")
def drift_inputs(workspace, real_model):
    root, _ = workspace
    params = load_params(DriftParams, root / "params.yaml")
    loaded = load_references(
        root / "data" / "drift_reference", CLASS_NAMES, params.embedding_components, params.calibration_resamples, 0
    )
    batch = load_batch(root / "data" / "prepared" / "test.npz")
    rng = np.random.default_rng(15)
    sample = rng.choice(len(batch.images), 1000, replace=False)  # the monitor's everyday batch size
    batch = Batch(batch.images[sample], batch.labels[sample], [batch.names[index] for index in sample])
    return real_model, loaded, batch, params


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_simulated_shift_at_its_default_strength_is_drift_in_1000_images(drift_inputs, scenario):
    model, loaded, batch, params = drift_inputs
    shifted = dataclasses.replace(params, scenario=scenario)
    check = check_drift(model, loaded, batch, shifted, CLASS_NAMES, None, f"{scenario} test")
    assert check.verdict.status == "drift", check.summary["tests"]


def test_second_run_does_nothing(workspace):
    root, _ = workspace
    again = run(["dvc", "repro"], root)
    assert ran_stages(again.stdout) == []
    assert "Data and pipelines are up to date" in again.stdout


def test_a_change_to_library_code_makes_exactly_its_importers_out_of_date(workspace):
    """pipeline/data/preprocessing.py (load_prepared) is imported by preprocess, train, unfamiliarity, evaluate,
    drift_reference and (through pipeline/data/pool.py) report_index."""
    root, _ = workspace
    module = root / "pipeline" / "data" / "preprocessing.py"
    original = module.read_text()
    module.write_text(original + "# edited\n")
    try:
        # The main pipeline only: the search of tuning/dvc.yaml has not run in this workspace.
        stale = json.loads(run(["dvc", "status", "dvc.yaml", "--json"], root).stdout)
    finally:
        module.write_text(original)
    assert sorted(stale) == ["drift_reference", "evaluate", "preprocess", "report_index", "train", "unfamiliarity"]
    assert {"changed deps": {"pipeline/data/preprocessing.py": "modified"}} in stale["train"]
    assert "Data and pipelines are up to date" in run(["dvc", "status", "dvc.yaml"], root).stdout


def test_changing_val_fraction_reruns_only_preprocess(workspace):
    root, _ = workspace
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["val_fraction"] = 0.1
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert "preprocess.val_fraction" in run(["dvc", "params", "diff"], root).stdout
    # Up to preprocess: what follows it would retrain, which the runs above already cover.
    rerun = run(["dvc", "repro", "preprocess"], root)
    assert ran_stages(rerun.stdout) == ["preprocess"]
    assert "train" in run(["dvc", "status"], root).stdout  # and train is now out of date
    _, val_labels = load_arrays(root / "data" / "prepared" / "val.npz")
    np.testing.assert_array_equal(np.bincount(val_labels), np.full(10, 600))


def test_failed_stage_keeps_the_last_good_outputs(workspace):
    root, _ = workspace
    before = (root / "data" / "prepared" / "train.npz").read_bytes()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["val_fraction"] = 1.5
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    failed = run(["dvc", "repro", "preprocess"], root, check=False)
    assert failed.returncode != 0
    assert "preprocess.val_fraction must be > 0 and < 1, got 1.5" in failed.stderr + failed.stdout
    assert (root / "data" / "prepared" / "train.npz").read_bytes() == before
