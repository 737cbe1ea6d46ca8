"""One setting of bench/train_speed.py's breakdown, in its own process (thread and oneDNN settings only take
effect before TensorFlow starts): trains the train stage's model for a few epochs and prints, as json, the
seconds of the last epoch, the test accuracy and the test predictions' file.

    python bench/epoch_time.py '{"name": ..., "epochs": 2, "train": {...overrides}, "precision": ..., ...}' OUT.npy

Keys of the setting (all optional): train (overrides of params.yaml's train section), precision (a Keras dtype
policy, or auto; params.yaml's when left out), jit_compile, intra_threads, inter_threads, deterministic
(TensorFlow's op determinism, on in the stage), input ("stage": the stage's tf.data batches of uint8 images;
"cached": the same batches held in memory, so an epoch is compute only; "only": iterate the stage's batches without
a model, so an epoch is the input pipeline only).
The caller sets TF_ENABLE_ONEDNN_OPTS in the environment.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipeline.data.preprocessing import load_prepared  # noqa: E402
from pipeline.keras_runtime import load_keras  # noqa: E402
from pipeline.model.network import compile_model  # noqa: E402
from pipeline.model.training import TrainParams, resolve_precision, training_datasets  # noqa: E402
from pipeline.params import load_params  # noqa: E402


def main() -> None:
    setting, predictions_file = json.loads(sys.argv[1]), Path(sys.argv[2])
    keras = load_keras()
    import tensorflow as tf

    if "intra_threads" in setting:
        tf.config.threading.set_intra_op_parallelism_threads(setting["intra_threads"])
    if "inter_threads" in setting:
        tf.config.threading.set_inter_op_parallelism_threads(setting["inter_threads"])
    params = load_params(TrainParams, REPO_ROOT / "params.yaml")
    overrides = {
        key: tuple(value) if isinstance(value, list) else value for key, value in setting.get("train", {}).items()
    }
    params = dataclasses.replace(params, epochs=setting.get("epochs", 2), **overrides)
    keras.utils.set_random_seed(params.seed)
    if setting.get("deterministic", True):
        tf.config.experimental.enable_op_determinism()
    policy = resolve_precision(setting.get("precision", params.precision))
    keras.mixed_precision.set_global_policy(policy)

    train_split = load_prepared(REPO_ROOT / "data/prepared/train.npz")
    val_split = load_prepared(REPO_ROOT / "data/prepared/val.npz")
    test_images, test_labels = load_prepared(REPO_ROOT / "data/prepared/test.npz")
    training_batches, validation_batches = training_datasets(params, train_split, val_split)
    mode = setting.get("input", "stage")
    if mode == "only":
        epoch_seconds = []
        for _ in range(params.epochs):
            start = time.perf_counter()
            for _batch in training_batches:
                pass
            epoch_seconds.append(time.perf_counter() - start)
        print(json.dumps({"epoch_seconds": epoch_seconds[-1], "precision": policy}))
        return
    if mode == "cached":
        # Materialised once before timing: each epoch then reads tensors already in memory. The order is the
        # first epoch's for every epoch, which changes what is learnt a little, not the cost.
        training_batches = training_batches.cache()
        for _batch in training_batches:
            pass
    steps = int(np.ceil(len(train_split[1]) / params.batch_size))
    model = compile_model(params, steps)
    if setting.get("jit_compile"):
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=True)

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    times = EpochTimes()
    model.fit(training_batches, validation_data=validation_batches, epochs=params.epochs, callbacks=[times], verbose=0)
    probabilities = np.asarray(model.predict(test_images, batch_size=1024, verbose=0), dtype=np.float32)
    predicted = probabilities.argmax(axis=1)
    np.save(predictions_file, predicted)
    print(
        json.dumps(
            {
                # The first epoch also traces (and with XLA compiles) the step; the last is the steady cost.
                "epoch_seconds": times.seconds[-1],
                "first_epoch_seconds": times.seconds[0],
                "fit_seconds": sum(times.seconds),
                "test_accuracy": float((predicted == test_labels).mean()),
                "precision": policy,
            }
        )
    )


if __name__ == "__main__":
    main()
