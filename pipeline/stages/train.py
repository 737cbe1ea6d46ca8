"""train: fit the CNN on the prepared train split, validating on val, and save it in Keras format.

Resumable: each finished epoch is backed up under --checkpoint-dir, and a rerun with the same
params and data continues from the last finished epoch instead of starting over.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.preprocessing import load_prepared
from pipeline.files import atomic_path
from pipeline.model.network import in_float32, with_flip_averaging
from pipeline.model.training import (
    TrainParams,
    completed_epochs,
    fit,
    prepare_checkpoint_dir,
    run_fingerprint,
    save_learning_curve,
    training_device,
)
from pipeline.params import load_params
from pipeline.process_guard import held_state_folder


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
        with held_state_folder(arguments.checkpoint_dir):  # two trainings must never share one checkpoint
            train(arguments)

    def train(arguments):
        params = load_params(TrainParams, arguments.params)
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
        policy = model.dtype_policy.name
        # Early stopping restores the weights of the epoch with the best val_loss: report that one.
        kept = history.loc[history["val_loss"].idxmin()] if params.early_stopping_patience else history.iloc[-1]
        # Metrics are what DVC compares between runs, so they hold headline results only: time goes apart, and
        # the validation loss of every epoch is in the history.
        metrics = {"epochs": len(history), "val_accuracy": round(float(kept["val_accuracy"]), 6)}
        trained_images = len(train_split[1]) * (len(history) - epochs_done_before)
        timing = {
            "train_seconds": round(seconds, 1),
            "images_per_second": round(trained_images / seconds, 1),
            "resumed": resuming,
            # What train.precision resolved to on this machine, and where the model trained: the evaluate stage
            # shows both in its lineage.
            "precision": policy,
            "device": training_device(),
        }
        model = in_float32(model, params)
        if params.flip_averaging:
            model = with_flip_averaging(model)
        outputs = (arguments.model, arguments.history, arguments.curve, arguments.metrics, arguments.timing)
        with contextlib.ExitStack() as stack:
            model_file, history_file, curve_file, metrics_file, timing_file = (
                stack.enter_context(atomic_path(path)) for path in outputs
            )
            model.save(model_file)
            history.to_csv(history_file, index=False, float_format="%.6f")
            save_learning_curve(history, curve_file)
            metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
            timing_file.write_text(json.dumps(timing, indent=2) + "\n")
        shutil.rmtree(arguments.checkpoint_dir, ignore_errors=True)
        print(
            f"train: {metrics['epochs']} epochs in {seconds:.0f} s ({policy} on {timing['device']}), "
            f"val accuracy {metrics['val_accuracy']:.4f}"
        )

    run_command("train", configure, work, argv)


if __name__ == "__main__":
    main()
