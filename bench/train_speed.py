"""Training speed of the train stage against a hand-written Keras script, in the same run.

Both train the default model (params.yaml) on the prepared data for the same number of epochs,
each in a fresh process, alternating so that machine load hits both alike. Prints images/second
of each, their ratio (stage / bare; target >= 1.0), and optionally the wall time of a whole
`dvc repro --force` on the defaults in a scratch copy of the repository.

    python bench/train_speed.py [--epochs 2] [--rounds 2] [--full-repro]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from workspace import REPO_ROOT, scratch_copy, timed, use_this_environment


def stage_images_per_second(epochs: int, scratch: Path) -> float:
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
    return json.loads(outputs["timing.json"].read_text())["images_per_second"]


def bare_images_per_second(epochs: int) -> float:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("bare_keras.py")), str(epochs)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--full-repro", action="store_true", help="also time `dvc repro --force` on the defaults")
    arguments = parser.parse_args()
    use_this_environment()
    if not (REPO_ROOT / "data" / "prepared" / "train.npz").is_file():
        sys.exit("bench: run `dvc repro preprocess` first (needs data/prepared/)")
    scratch = Path(tempfile.mkdtemp(prefix="bench-train-"))
    stage, bare = [], []
    try:
        for _ in range(arguments.rounds):
            stage.append(stage_images_per_second(arguments.epochs, scratch))
            bare.append(bare_images_per_second(arguments.epochs))
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
