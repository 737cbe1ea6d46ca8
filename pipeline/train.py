"""train: fit the CNN on the prepared train split, validating on val, and save it in Keras format.

Resumable: each finished epoch is backed up under --checkpoint-dir, and a rerun with the same
params and data continues from the last finished epoch instead of starting over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cli import run_stage
from pipeline.datasets import NUM_CLASSES
from pipeline.files import atomic_path
from pipeline.keras_runtime import load_keras
from pipeline.model import compile_model, one_hot_targets, with_flip_averaging
from pipeline.params import TrainParams
from pipeline.plots import save_learning_curve
from pipeline.preprocess import load_prepared

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
VALIDATION_BATCH = 1024  # prediction batch only: speed, not results


def make_dataset(
    images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int | None = None, one_hot: bool = False
):
    """Batches of (uint8 images, labels); shuffled anew each epoch, in the same order for the same seed.

    Labels are class indices, or one-hot rows when `one_hot` (what a model with label smoothing trains on).
    """
    load_keras()
    import tensorflow as tf

    if one_hot:
        labels = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if seed is not None:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def training_datasets(params: TrainParams, train_split, val_split):
    """The (training, validation) batches a model built from `params` fits on: the train stage's and every trial's."""
    one_hot = one_hot_targets(params)
    return (
        make_dataset(*train_split, params.batch_size, seed=params.seed, one_hot=one_hot),
        make_dataset(*val_split, VALIDATION_BATCH, one_hot=one_hot),
    )


def seed_everything(seed: int) -> None:
    """Same params, code and data, same weights: seeded RNGs and deterministic TensorFlow ops."""
    keras = load_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def run_fingerprint(settings, data_files: list[Path]) -> str:
    """Identifies a run (training, or a search) by its settings (params, or any JSON-able value) and data: an
    interrupted run's state is resumed only by a run with the same fingerprint."""
    settings = asdict(settings) if is_dataclass(settings) else settings
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in data_files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def prepare_checkpoint_dir(checkpoint_dir: Path, fingerprint: str) -> bool:
    """Keep the checkpoint of an interrupted identical run, drop any other; True when resuming."""
    marker = checkpoint_dir / "fingerprint"
    resuming = marker.is_file() and marker.read_text() == fingerprint
    if not resuming:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        checkpoint_dir.mkdir(parents=True)
        marker.write_text(fingerprint)
    return resuming


def completed_epochs(checkpoint_dir: Path) -> int:
    """Epochs an interrupted run already finished (0 for a fresh start)."""
    history_file = checkpoint_dir / "history.csv"
    return pd.read_csv(history_file)["epoch"].nunique() if history_file.is_file() else 0


def fit(params: TrainParams, train_split, val_split, checkpoint_dir: Path):
    """Train the model; returns it with the full per-epoch history (resumed epochs included)."""
    keras = load_keras()

    seed_everything(params.seed)
    steps_per_epoch = int(np.ceil(len(train_split[1]) / params.batch_size))
    model = compile_model(params, steps_per_epoch)
    history_file = checkpoint_dir / "history.csv"
    callbacks = [
        keras.callbacks.CSVLogger(str(history_file), append=True),
        keras.callbacks.BackupAndRestore(str(checkpoint_dir / "backup")),
    ]
    if params.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=params.early_stopping_patience, restore_best_weights=True
            )
        )
    training_batches, validation_batches = training_datasets(params, train_split, val_split)
    model.fit(
        training_batches,
        validation_data=validation_batches,
        epochs=params.epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=2,  # one line per epoch
    )
    history = pd.read_csv(history_file)
    # An interruption between the log line and the backup repeats an epoch; the last one counts.
    history = history.drop_duplicates("epoch", keep="last").sort_values("epoch")
    history["epoch"] += 1
    return model, history[HISTORY_COLUMNS].reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--train", required=True, type=Path, help="prepared training split (.npz)")
        parser.add_argument("--val", required=True, type=Path, help="prepared validation split (.npz)")
        parser.add_argument("--model", required=True, type=Path, help="output model file (.keras)")
        parser.add_argument("--history", required=True, type=Path, help="output per-epoch history (.csv)")
        parser.add_argument("--curve", required=True, type=Path, help="output learning-curve plot (.png)")
        parser.add_argument("--metrics", required=True, type=Path, help="output final validation metrics (.json)")
        parser.add_argument("--timing", required=True, type=Path, help="output training time and speed (.json)")
        parser.add_argument("--checkpoint-dir", required=True, type=Path, help="where an interrupted run resumes from")

    def work(arguments):
        params = TrainParams.load(Path(arguments.params))
        train_split, val_split = load_prepared(arguments.train), load_prepared(arguments.val)
        resuming = prepare_checkpoint_dir(
            arguments.checkpoint_dir, run_fingerprint(params, [arguments.train, arguments.val])
        )
        if resuming:
            print(f"train: resuming the interrupted run from {arguments.checkpoint_dir}")
        epochs_done_before = completed_epochs(arguments.checkpoint_dir)
        started = time.perf_counter()
        model, history = fit(params, train_split, val_split, arguments.checkpoint_dir)
        seconds = time.perf_counter() - started
        # Early stopping restores the weights of the epoch with the best val_loss: report that one.
        kept = history.loc[history["val_loss"].idxmin()] if params.early_stopping_patience else history.iloc[-1]
        # Metrics are what DVC compares between runs, so they hold results only; time goes apart.
        metrics = {
            "epochs": len(history),
            "val_accuracy": round(float(kept["val_accuracy"]), 6),
            "val_loss": round(float(kept["val_loss"]), 6),
        }
        trained_images = len(train_split[1]) * (len(history) - epochs_done_before)
        timing = {
            "train_seconds": round(seconds, 1),
            "images_per_second": round(trained_images / seconds, 1),
            "resumed": resuming,
        }
        if params.flip_averaging:
            model = with_flip_averaging(model)
        with contextlib.ExitStack() as stack:
            model_file, history_file, curve_file, metrics_file, timing_file = (
                stack.enter_context(atomic_path(path))
                for path in (arguments.model, arguments.history, arguments.curve, arguments.metrics, arguments.timing)
            )
            model.save(model_file)
            history.to_csv(history_file, index=False, float_format="%.6f")
            save_learning_curve(history, curve_file)
            metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
            timing_file.write_text(json.dumps(timing, indent=2) + "\n")
        shutil.rmtree(arguments.checkpoint_dir, ignore_errors=True)
        print(f"train: {metrics['epochs']} epochs in {seconds:.0f} s, val accuracy {metrics['val_accuracy']:.4f}")

    run_stage("train", configure, work, argv)


if __name__ == "__main__":
    main()
