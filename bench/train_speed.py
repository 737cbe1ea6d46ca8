"""Training speed of the train stage against a hand-written Keras script, in the same run.

Both train the default model (params.yaml) on the prepared data for the same number of epochs,
each in a fresh process, alternating so that machine load hits both alike. Prints images/second
of each, their ratio (stage / bare; target >= 1.0), and optionally the wall time of a whole
`dvc repro --force` on the defaults in a scratch copy of the repository.

With --breakdown it shows where an epoch's time goes instead: the stage's model trained under one setting
at a time (input pipeline against compute, thread settings, oneDNN, op determinism, batch size,
float32 against mixed_bfloat16, XLA, and the model's channels and layers), each in a fresh process,
beside bare Keras. For each: seconds of the last epoch (the first also traces the step), its ratio to
bare Keras, the test accuracy after the bench's epochs, and the share of test images predicted as the
stage's own model predicts them (agreement; same seed and epochs).

    python bench/train_speed.py [--epochs 2] [--rounds 2] [--full-repro]
    python bench/train_speed.py --breakdown [--epochs 2] [--rounds 2] [--only WORD ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from workspace import REPO_ROOT, scratch_copy, timed, use_this_environment


def stage_images_per_second(epochs: int, scratch: Path) -> tuple[float, str]:
    """The train stage's images per second, and the precision its train.precision resolved to."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["train"]["epochs"] = epochs
    (scratch / "params.yaml").write_text(yaml.safe_dump(params))
    names = ("model.keras", "history.csv", "curve.png", "metrics.json", "timing.json")
    outputs = {name: scratch / name for name in names}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.train",
            "--params",
            str(scratch / "params.yaml"),
            "--train",
            "data/prepared/train.npz",
            "--val",
            "data/prepared/val.npz",
            "--model",
            str(outputs["model.keras"]),
            "--history",
            str(outputs["history.csv"]),
            "--curve",
            str(outputs["curve.png"]),
            "--metrics",
            str(outputs["metrics.json"]),
            "--timing",
            str(outputs["timing.json"]),
            "--checkpoint-dir",
            str(scratch / "checkpoint"),
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    timing = json.loads(outputs["timing.json"].read_text())
    return timing["images_per_second"], timing["precision"]


# Each setting differs from the stage's (params.yaml's train section and its precision, TensorFlow's default
# threads, oneDNN on, deterministic ops, tf.data batches of uint8 images) in what its name says.
BREAKDOWN = {
    "stage (params.yaml)": {},
    "float32": {"precision": "float32"},
    "mixed_bfloat16": {"precision": "mixed_bfloat16"},
    "input pipeline only": {"input": "only"},
    "compute only (cached batches)": {"input": "cached"},
    "threads: intra 2, inter 1": {"intra_threads": 2, "inter_threads": 1},
    "threads: intra 1, inter 1": {"intra_threads": 1, "inter_threads": 1},
    "oneDNN off": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "batch 64": {"train": {"batch_size": 64}},
    "batch 256": {"train": {"batch_size": 256}},
    "batch 512": {"train": {"batch_size": 512}},
    "non-deterministic ops": {"deterministic": False},
    # Keras turns XLA off while op determinism is on, so this one is to be read against the row above it.
    "XLA (jit_compile), non-deterministic ops": {"jit_compile": True, "deterministic": False},
    "channels halved [16, 32, 64]": {"train": {"conv_filters": [16, 32, 64]}},
    "channels x1.5 [48, 96, 192]": {"train": {"conv_filters": [48, 96, 192]}},
    "two blocks [32, 64]": {"train": {"conv_filters": [32, 64]}},
    "one conv per block": {"train": {"convs_per_block": 1}},
    "no random erasing": {"train": {"augment_erasing": 0.0}},
    "no batch normalisation": {"train": {"batch_norm": False}},
    "no spatial dropout": {"train": {"conv_dropout": 0.0}},
    "no flips": {"train": {"augment_flip": False}},
}


def run_setting(setting: dict, epochs: int, predictions: Path) -> dict:
    setting = {**setting, "epochs": epochs}
    env = {**os.environ, **setting.pop("env", {})}
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("epoch_time.py")), json.dumps(setting), str(predictions)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def bare_keras(epochs: int, predictions: Path, policy: str) -> dict:
    command = [sys.executable, str(Path(__file__).with_name("bare_keras.py")), str(epochs), str(predictions), policy]
    result = subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def breakdown(epochs: int, rounds: int, only: list[str] | None) -> None:
    """Each setting `rounds` times, the rounds one after another so that a slow spell of the machine hits every
    setting alike; an epoch's time is the fastest round's, accuracy and agreement the first round's."""
    names = [name for name in BREAKDOWN if not only or name == "stage (params.yaml)" or any(w in name for w in only)]
    scratch = Path(tempfile.mkdtemp(prefix="bench-epoch-"))
    seconds: dict[str, list[float]] = {name: [] for name in ["bare Keras", *names]}
    first: dict[str, dict] = {}
    try:
        for round_number in range(rounds):
            for index, name in enumerate(names):
                predictions = scratch / f"{round_number}-{index}.npy"
                figures = run_setting(BREAKDOWN[name], epochs, predictions)
                seconds[name].append(figures["epoch_seconds"])
                first.setdefault(name, {**figures, "predictions": predictions})
                print(f"round {round_number + 1}: {name}: {figures['epoch_seconds']:.1f} s/epoch", file=sys.stderr)
                if name == "stage (params.yaml)":  # bare Keras beside it, in the precision the stage resolved to
                    bare = bare_keras(epochs, scratch / "bare.npy", figures["precision"])
                    seconds["bare Keras"].append(bare["epoch_seconds"])
                    first.setdefault("bare Keras", {**bare, "precision": figures["precision"]})
        reference = np.load(first["stage (params.yaml)"]["predictions"])
        bare_seconds = min(seconds["bare Keras"])
        print(f"{epochs} epochs a run, {rounds} round(s); s/epoch: the fastest round's last epoch")
        print(f"{'setting':42} {'s/epoch':>8} {'/ bare':>7} {'test acc':>9} {'agreement':>10}")
        bare_name = f"bare Keras ({first['bare Keras']['precision']}, float arrays)"
        print(f"{bare_name:42} {bare_seconds:8.1f} {1:7.2f} {first['bare Keras']['test_accuracy']:9.4f}")
        for name in names:
            figures, fastest = first[name], min(seconds[name])
            row = f"{name:42} {fastest:8.1f} {fastest / bare_seconds:7.2f}"
            if "test_accuracy" in figures:
                agreement = float((np.load(figures["predictions"]) == reference).mean())
                row += f" {figures['test_accuracy']:9.4f} {agreement:10.4f}"
            print(row)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--full-repro", action="store_true", help="also time `dvc repro --force` on the defaults")
    parser.add_argument("--breakdown", action="store_true", help="where an epoch's time goes, setting by setting")
    parser.add_argument("--only", nargs="*", help="with --breakdown: the settings whose names contain these words")
    arguments = parser.parse_args()
    use_this_environment()
    if not (REPO_ROOT / "data" / "prepared" / "train.npz").is_file():
        sys.exit("bench: run `dvc repro preprocess` first (needs data/prepared/)")
    if arguments.breakdown:
        breakdown(arguments.epochs, arguments.rounds, arguments.only)
        return
    scratch = Path(tempfile.mkdtemp(prefix="bench-train-"))
    stage, bare = [], []
    try:
        for _ in range(arguments.rounds):
            images_per_second, precision = stage_images_per_second(arguments.epochs, scratch)
            stage.append(images_per_second)
            bare.append(bare_keras(arguments.epochs, scratch / "bare.npy", precision)["images_per_second"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    best_stage, best_bare = max(stage), max(bare)
    print(f"train stage      {best_stage:8.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in stage)})")
    print(f"bare Keras       {best_bare:8.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in bare)})")
    print(f"stage / bare     {best_stage / best_bare:8.2f}  (target >= 1.0)")
    if arguments.full_repro:
        root = scratch_copy()
        try:
            seconds = timed(["dvc", "repro", "--force"], root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(f"dvc repro --force on the defaults: {seconds:.0f} s")


if __name__ == "__main__":
    main()
