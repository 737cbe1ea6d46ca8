import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from pipeline.data.datasets import dataset_spec
from pipeline.data.preprocessing import load_prepared, save_arrays
from pipeline.errors import PipelineError
from pipeline.evaluation.model_card import confused_pairs
from pipeline.evaluation.scoring import compute_metrics, confident_mistakes
from pipeline.model.network import load_model
from tests.support.training import TINY_TRAIN, run_train, run_unfamiliarity
from tests.support.workspaces import REPO_ROOT

CLASS_NAMES = dataset_spec("fashion_mnist").class_names


def one_hot_probabilities(predictions, confidence):
    probabilities = np.full((len(predictions), 10), (1 - confidence) / 9)
    probabilities[np.arange(len(predictions)), predictions] = confidence
    return probabilities


def test_metrics_by_class_name():
    labels = np.array([0, 0, 1, 1, 6, 6])
    probabilities = one_hot_probabilities(np.array([0, 6, 1, 1, 6, 0]), 0.91)
    metrics = compute_metrics(labels, probabilities, CLASS_NAMES)
    assert metrics["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert metrics["per_class"]["Trouser"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert metrics["per_class"]["T-shirt/top"]["recall"] == 0.5
    assert metrics["per_class"]["Shirt"]["precision"] == 0.5
    expected_loss = -(4 * np.log(0.91) + 2 * np.log(0.01)) / 6
    assert metrics["loss"] == pytest.approx(expected_loss, abs=1e-6)


def test_confident_mistakes_come_first():
    labels = np.array([1, 2, 3, 4])
    probabilities = np.vstack(
        [
            one_hot_probabilities(np.array([1]), 0.99),  # right
            one_hot_probabilities(np.array([5]), 0.60),  # wrong, unsure
            one_hot_probabilities(np.array([5]), 0.95),  # wrong, sure
            one_hot_probabilities(np.array([5]), 0.80),
        ]
    )
    assert confident_mistakes(labels, probabilities, 2).tolist() == [2, 3]


def test_the_model_card_names_the_pairs_confused_most_either_way_round():
    index = {name: position for position, name in enumerate(CLASS_NAMES)}
    matrix = np.diag(np.full(10, 900))
    matrix[index["Shirt"], index["T-shirt/top"]] = 30
    matrix[index["T-shirt/top"], index["Shirt"]] = 20
    matrix[index["Pullover"], index["Coat"]] = 40
    matrix[index["Sneaker"], index["Sandal"]] = 5
    pairs = confused_pairs(matrix, CLASS_NAMES, 2)
    assert pairs == [
        ["T-shirt/top / Shirt", 50, "20 T-shirt/top taken for Shirt", "30 Shirt taken for T-shirt/top"],
        ["Pullover / Coat", 40, "40 Pullover taken for Coat", "0 Coat taken for Pullover"],
    ]


def test_missing_or_corrupt_model_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match=r"model.keras: model file not found"):
        load_model(tmp_path / "model.keras")
    (tmp_path / "model.keras").write_bytes(b"not a zip archive")
    with pytest.raises(PipelineError, match=r"model.keras: not a Keras model file \(not a .keras zip archive\)$"):
        load_model(tmp_path / "model.keras")
    # A zip archive that is not a saved model gets Keras' own reason, on one line.
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
        archive.writestr("notes.txt", "not a model")
    with pytest.raises(PipelineError, match=r"model.keras: not a readable Keras model \(.*config.json") as raised:
        load_model(tmp_path / "model.keras")
    assert "\n" not in str(raised.value)


def test_a_truncated_model_file_is_not_a_keras_model(tmp_path):
    from pipeline.keras_runtime import load_keras

    keras = load_keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(tmp_path / "model.keras")
    assert load_model(tmp_path / "model.keras").output_shape == (None, 2)
    whole = (tmp_path / "model.keras").read_bytes()
    (tmp_path / "model.keras").write_bytes(whole[: len(whole) // 2])  # as a copy cut short leaves it
    with pytest.raises(PipelineError, match=r"model.keras: not a Keras model file \(not a .keras zip archive\)$"):
        load_model(tmp_path / "model.keras")


def write_manifest(path):
    files = {name: {"sha256": f"{index}" * 64, "bytes": 1} for index, name in enumerate("abcd")}
    source = {"kind": "source_dir", "location": "/data/fashion"}
    counts = {"train": 250, "test": 50}
    manifest = {"dataset": "fashion_mnist", "source": source, "verified": False, "counts": counts, "files": files}
    path.write_text(json.dumps(manifest))
    return path


def run_evaluate(tmp_path, params_path, model_path, test_path, curve, scorer_dir=None):
    """The evaluate stage, with the unfamiliarity threshold in `scorer_dir` (by default the unfamiliarity stage
    writes it beside the model first)."""
    if scorer_dir is None:
        scorer_dir = model_path.parent
        run_unfamiliarity(params_path, model_path, test_path.parent, scorer_dir)
    out = tmp_path / "evaluate"
    names = ["metrics.json", "per_class.json", "predictions.csv", "confusion.png", "report.txt", "misclassified.png"]
    names += ["report.html", "model_card.html", "lineage.json"]
    flags = ["--metrics", "--per-class", "--predictions", "--confusion", "--classification-report", "--misclassified"]
    flags += ["--report", "--model-card", "--lineage"]
    outputs = [item for flag, name in zip(flags, names, strict=True) for item in (flag, str(out / name))]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.evaluate",
            "--params",
            str(params_path),
            "--model",
            str(model_path),
            "--test",
            str(test_path),
            "--slices",
            str(test_path.parent / "slices"),
            "--pool-record",
            str(test_path.parent / "pool.json"),
            "--manifest",
            str(write_manifest(tmp_path / "manifest.json")),
            "--curve",
            str(curve),
            "--dataset",
            "fashion_mnist",
            "--unfamiliarity",
            str(scorer_dir / "unfamiliarity.npz"),
            "--unfamiliarity-summary",
            str(scorer_dir / "unfamiliarity.json"),
            *outputs,
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    return result, out


def test_stage_writes_metrics_plots_and_a_self_contained_report(tmp_path, write_params, prepared_dir):
    params = write_params(TINY_TRAIN)
    trained, train_out = run_train(tmp_path, params, prepared_dir)
    assert trained.returncode == 0, trained.stderr
    # A new source's test slice (the first 30 test images, bright) and the batch the model saw.
    test_images, test_labels = load_prepared(prepared_dir / "test.npz")
    (prepared_dir / "slices").mkdir()
    save_arrays(prepared_dir / "slices" / "studio.npz", test_images[:30], test_labels[:30])
    accepted = {"batch": "week-48", "source": "studio", "accepted_at": "2026-11-30T09:00:00+00:00"}
    accepted |= {"sha256": "ab" * 32, "train": 70, "val": 20, "test": 30}
    (prepared_dir / "pool.json").write_text(json.dumps({"batches": [accepted]}))
    result, out = run_evaluate(
        tmp_path, params, train_out / "model.keras", prepared_dir / "test.npz", train_out / "curve.png"
    )
    assert result.returncode == 0, result.stderr
    # The metrics file DVC shows holds the headline figures only; the per-class scores are a file of their own.
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["accuracy", "macro_f1", "loss", "calibration_error", "unfamiliar", "sources"]
    studio = metrics.pop("sources")["studio"]
    model = load_model(train_out / "model.keras")
    expected = (model.predict(test_images[:30], verbose=0).argmax(axis=1) == test_labels[:30]).mean()
    assert studio == {"accuracy": pytest.approx(expected, abs=1e-6), "images": 30}
    assert all(type(value) is float for value in metrics.values())
    assert metrics["accuracy"] > 0.5
    per_class = json.loads((out / "per_class.json").read_text())
    assert list(per_class) == list(CLASS_NAMES)
    assert all(set(scores) == {"precision", "recall", "f1", "support"} for scores in per_class.values())
    assert sum(scores["support"] for scores in per_class.values()) == 50
    predictions = (out / "predictions.csv").read_text().splitlines()
    assert predictions[0] == "actual,predicted" and len(predictions) == 51
    assert "Ankle boot" in (out / "report.txt").read_text()
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3  # confusion matrix, learning curve, gallery
    assert "http://" not in report and "https://" not in report
    for text in (
        "Classification report",
        "Ankle boot",
        "T-shirt/top",
        "git revision",
        "fashion_mnist sha256:",
        "conv_filters",
    ):
        assert text in report
    card = (out / "model_card.html").read_text()
    for text in ("Classes it confuses most", "Intended use", "Limits", "250, of which 20% held out", "conv_filters"):
        assert text in card
    for page in (card, report):
        assert f"<td>studio</td><td>{studio['accuracy']:.4f}</td>" in page  # accuracy by source
    assert "accepted batch week-48" in card and "70 training, 20 validation, 30 test images" in card
    unfamiliarity = json.loads((train_out / "unfamiliarity.json").read_text())
    assert f"<td>{unfamiliarity['threshold']:.3f}</td>" in card and "Unfamiliar images" in card
    assert f"<td>{metrics['unfamiliar']:.1%}</td>" in card  # the share of test images flagged
    assert f"{metrics['accuracy']:.4f}" in card
    assert "http://" not in card and "https://" not in card
    record = json.loads((out / "lineage.json").read_text())
    assert record["params"]["train"]["epochs"] == TINY_TRAIN["train.epochs"]
    assert record["accepted batches"] == "week-48 (studio, sha256:abababababab)"


def test_wrong_test_arrays_and_bad_model_keep_the_last_report(tmp_path, write_params, prepared_dir):
    params = write_params(TINY_TRAIN)
    _, train_out = run_train(tmp_path, params, prepared_dir)
    good, out = run_evaluate(
        tmp_path, params, train_out / "model.keras", prepared_dir / "test.npz", train_out / "curve.png"
    )
    assert good.returncode == 0, good.stderr
    kept = {name: (out / name).read_bytes() for name in ("report.html", "metrics.json", "per_class.json")}
    (tmp_path / "broken.keras").write_bytes(b"garbage")
    bad_model, _ = run_evaluate(
        tmp_path, params, tmp_path / "broken.keras", prepared_dir / "test.npz", train_out / "curve.png", train_out
    )
    assert bad_model.returncode == 1
    assert (
        bad_model.stderr.strip()
        == f"evaluate: error: {tmp_path / 'broken.keras'}: not a Keras model file (not a .keras zip archive)"
    )
    np.savez(tmp_path / "wrong.npz", images=np.zeros((3, 28, 28), np.uint8), labels=np.zeros(3, np.uint8))
    bad_data, _ = run_evaluate(
        tmp_path, params, train_out / "model.keras", tmp_path / "wrong.npz", train_out / "curve.png", train_out
    )
    assert bad_data.returncode == 1
    assert len(bad_data.stderr.strip().splitlines()) == 1
    assert "wrong.npz: images must be uint8 of shape (N, 28, 28, 1)" in bad_data.stderr
    assert {name: (out / name).read_bytes() for name in kept} == kept
