import json
import re
from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest

from pipeline.data.preprocessing import load_prepared, save_arrays
from pipeline.model.network import build_model
from pipeline.model.training import TrainParams, fit, prepare_checkpoint_dir, run_fingerprint
from pipeline.params import load_params
from tests.support.training import TINY_TRAIN, run_train


# Each precision the stage trains in on a CPU: same params, code and data give the same metrics in each.
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_stage_trains_saves_and_is_reproducible(tmp_path, write_params, prepared_dir, precision):
    params = write_params(TINY_TRAIN | {"train.precision": precision})
    first, out = run_train(tmp_path, params, prepared_dir, "first")
    assert first.returncode == 0, first.stderr
    assert "Epoch 3/3" in first.stdout  # progress, one line per epoch
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    model = keras.models.load_model(out / "model.keras")
    images, labels = load_prepared(prepared_dir / "val.npz")
    assert (model.predict(images, verbose=0).argmax(axis=1) == labels).mean() > 0.5
    assert not (tmp_path / "checkpoint").exists()  # a finished run leaves no checkpoint behind

    second, out_again = run_train(tmp_path, params, prepared_dir, "second")
    assert second.returncode == 0, second.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["epochs", "val_accuracy"] and metrics["epochs"] == 3  # headline figures only
    assert metrics == json.loads((out_again / "metrics.json").read_text())
    pd.testing.assert_frame_equal(history, pd.read_csv(out_again / "history.csv"))


def test_a_mixed_precision_model_is_saved_in_float32_and_predicts_as_it_trained(tmp_path, write_params, prepared_dir):
    params_path = write_params(TINY_TRAIN | {"train.precision": "mixed_bfloat16", "train.flip_averaging": False})
    result, out = run_train(tmp_path, params_path, prepared_dir)
    assert result.returncode == 0, result.stderr
    timing = json.loads((out / "timing.json").read_text())
    assert (timing["precision"], timing["device"]) == ("mixed_bfloat16", "CPU")
    saved = keras.models.load_model(out / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    # The model as it trained: the same weights, computing in bfloat16.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        as_trained = build_model(load_params(TrainParams, params_path))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    as_trained.set_weights(saved.get_weights())
    images, labels = load_prepared(prepared_dir / "val.npz")
    saved_probabilities = saved.predict(images, verbose=0)
    assert (saved_probabilities.argmax(axis=1) == labels).mean() > 0.5
    # The same model up to bfloat16's rounding (3 significant digits); other weights would be far off. (The 99.5%
    # agreement of classes is checked on the default model's 10,000 test images, in tests/e2e.)
    np.testing.assert_allclose(saved_probabilities, as_trained.predict(images, verbose=0), atol=0.03)


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_last_epoch(tmp_path, write_params, prepared_dir, monkeypatch):
    params = replace(load_params(TrainParams, write_params(TINY_TRAIN)), epochs=4)
    splits = load_prepared(prepared_dir / "train.npz"), load_prepared(prepared_dir / "val.npz")
    checkpoint = tmp_path / "checkpoint"
    fingerprint = run_fingerprint(params, [prepared_dir / "train.npz", prepared_dir / "val.npz"])
    assert prepare_checkpoint_dir(checkpoint, fingerprint) is False

    trained_epochs = []
    original = keras.callbacks.BackupAndRestore.on_epoch_end

    def backup_then_maybe_stop(self, epoch, logs=None):
        trained_epochs.append(epoch + 1)
        original(self, epoch, logs)
        if epoch + 1 == 2 and len(trained_epochs) == 2:
            raise Interrupted  # as if the machine went down right after epoch 2

    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", backup_then_maybe_stop)
    with pytest.raises(Interrupted):
        fit(params, *splits, checkpoint)
    assert prepare_checkpoint_dir(checkpoint, fingerprint) is True
    _, history = fit(params, *splits, checkpoint)
    assert trained_epochs == [1, 2, 3, 4]  # epochs 1 and 2 were not trained again
    assert history["epoch"].tolist() == [1, 2, 3, 4]


def test_a_label_smoothed_model_validates_and_reloads_with_stock_keras(tmp_path, write_params, prepared_dir):
    # Without flip averaging the saved model is the compiled one, loss included: it must need no custom code.
    params = load_params(
        TrainParams, write_params({**TINY_TRAIN, "train.label_smoothing": 0.2, "train.flip_averaging": False})
    )
    splits = [load_prepared(prepared_dir / f"{name}.npz") for name in ("train", "val")]
    prepare_checkpoint_dir(tmp_path / "checkpoint", "fingerprint")
    model, history = fit(params, *splits, tmp_path / "checkpoint")
    assert history["val_accuracy"].notna().all() and history["val_loss"].notna().all()
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert reloaded.loss.get_config()["label_smoothing"] == pytest.approx(0.2)
    images = splits[1][0]
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_checkpoint_of_other_params_is_not_resumed(tmp_path, write_params, prepared_dir):
    params = load_params(TrainParams, write_params(TINY_TRAIN))
    data = [prepared_dir / "train.npz", prepared_dir / "val.npz"]
    prepare_checkpoint_dir(tmp_path / "checkpoint", run_fingerprint(params, data))
    (tmp_path / "checkpoint" / "stale").write_text("x")
    other = run_fingerprint(replace(params, learning_rate=0.1), data)
    assert prepare_checkpoint_dir(tmp_path / "checkpoint", other) is False
    assert not (tmp_path / "checkpoint" / "stale").exists()


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((5, 28, 28), np.uint8), r"images must be uint8 of shape \(N, 28, 28, 1\), got uint8 \(5, 28, 28\)"),
        (np.zeros((5, 28, 28, 1), np.float32), r"images must be uint8 of shape \(N, 28, 28, 1\), got float32"),
    ],
)
def test_prepared_arrays_of_the_wrong_shape_or_dtype(tmp_path, write_params, prepared_dir, images, message):
    save_arrays(prepared_dir / "train.npz", images, np.zeros(5, np.uint8))
    result, out = run_train(tmp_path, write_params(TINY_TRAIN), prepared_dir)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"train: error: {prepared_dir / 'train.npz'}: ")
    assert re.search(message, line)
    assert not out.exists()


def test_bad_params_fail_before_training_and_keep_the_last_model(tmp_path, write_params, prepared_dir):
    good, out = run_train(tmp_path, write_params(TINY_TRAIN), prepared_dir)
    assert good.returncode == 0, good.stderr
    model_bytes = (out / "model.keras").read_bytes()
    bad, _ = run_train(tmp_path, write_params({**TINY_TRAIN, "train.dense_dropout": 1.5}), prepared_dir)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"train: error: {tmp_path / 'params.yaml'}: train.dense_dropout must be >= 0 and < 1, got 1.5"
    ]
    assert (out / "model.keras").read_bytes() == model_bytes
