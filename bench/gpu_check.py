"""Does training use a GPU here? Trains the default model (params.yaml's train section, its precision resolved as
the train stage resolves it) for one epoch on the prepared data, and prints the device its weights live on, the
epoch's time and the test accuracy after it. Without a GPU it says so in one line and exits 0.

    python bench/gpu_check.py        # after `make gpu` (docs/gpu.md) and `dvc repro preprocess`
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipeline.data.preprocessing import load_prepared  # noqa: E402
from pipeline.keras_runtime import load_keras  # noqa: E402
from pipeline.model.network import compile_model  # noqa: E402
from pipeline.model.training import TrainParams, training_datasets, training_precision  # noqa: E402
from pipeline.params import load_params  # noqa: E402


def main() -> None:
    load_keras()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        build = "a CUDA build" if tf.test.is_built_with_cuda() else "a CPU-only build (make gpu installs the GPU one)"
        print(f"gpu check: no GPU visible to TensorFlow {tf.__version__}, {build}; training runs on the CPU")
        return
    details = tf.config.experimental.get_device_details(gpus[0])
    capability = ".".join(str(part) for part in details.get("compute_capability", ()))
    print(f"gpu check: {len(gpus)} GPU(s); using {details.get('device_name', gpus[0].name)} (compute {capability})")
    prepared = REPO_ROOT / "data" / "prepared"
    if not (prepared / "train.npz").is_file():
        sys.exit("gpu check: run `dvc repro preprocess` first (needs data/prepared/)")
    params = dataclasses.replace(load_params(TrainParams, REPO_ROOT / "params.yaml"), epochs=1)
    train_split, val_split = load_prepared(prepared / "train.npz"), load_prepared(prepared / "val.npz")
    test_images, test_labels = load_prepared(prepared / "test.npz")
    training_batches, validation_batches = training_datasets(params, train_split, val_split)
    with training_precision(params) as policy:
        model = compile_model(params, int(np.ceil(len(train_split[1]) / params.batch_size)))
    started = time.perf_counter()
    model.fit(training_batches, validation_data=validation_batches, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    accuracy = float((model.predict(test_images, batch_size=1024, verbose=0).argmax(axis=1) == test_labels).mean())
    device = model.weights[0].value.device
    print(f"gpu check: weights on {device}, precision {policy}")
    print(f"gpu check: one epoch of {len(train_split[1])} images in {seconds:.1f} s (tracing included)")
    print(f"gpu check: test accuracy after one epoch {accuracy:.4f}")


if __name__ == "__main__":
    main()
