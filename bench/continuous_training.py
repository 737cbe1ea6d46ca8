"""The continuous-training loop, measured end to end in a scratch copy of the repository.

1. The pipeline trains the model in use (`python -m flows.training`) with a seeded slice of the training file
   reserved (`preprocess.reserve_images`): images the model never sees, never test images.
2. A new kind of picture is made from the reserved images (bench/new_kind.py: garments on a textured table in
   uneven light, faint, askew). The gap: the model's accuracy on them after the pipeline's conversion (find the
   item, crop) against its test accuracy.
3. The drift monitor checks two batches of the new kind: drift confirmed, no new data, so a labelling sheet.
4. N labelled pictures of the new kind arrive in data/incoming/ and `fashion-accept` accepts them.
5. The monitor checks a third batch: drift confirmed with unseen accepted data, so a gated retraining.
6. The drift monitor before and after that promotion (bench/monitor_after_promotion.py): how often clean batches
   of the original test images, of held-out pictures of the new kind and of half of each are called drifted, at
   n = 50 and 200; and how often each simulated shift of the original images is found.
7. A deliberately weak candidate (`--set train.learning_rate=1e-7 --promote`) is refused: the model, its reports
   and dvc.lock byte-identical. Then the weekly flow's run, with nothing new: nothing to decide.
It prints, in one run: the gap, accuracy on the new kind's test slice and on the original test set before and
after, the allowed drop, N, the gate's decisions, the monitor's rates and the wall time of each step.

    python bench/continuous_training.py [--epochs E] [--labelled N] [--check-images C] [--variant NAME]
                                        [--held-out H] [--clean-batches B] [--shift-batches S]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from monitor_after_promotion import measure, print_tables
from new_kind import DEFAULT_VARIANT, VARIANTS, converted, new_kind_pictures
from PIL import Image
from workspace import scratch_copy, use_this_environment

from pipeline.data.datasets import dataset_spec, load_raw_split
from pipeline.data.preprocessing import reserved_indices
from pipeline.model.network import load_model

SOURCE = "textured-photos"
# What must stay byte-identical when the gate refuses a candidate.
IN_USE = (
    "params.yaml",
    "dvc.lock",
    "models/model.keras",
    "reports/evaluate/metrics.json",
    "reports/evaluate/report.html",
    "reports/evaluate/model_card.html",
    "reports/index.html",
)


def prepared_workspace(epochs: int, reserve: int) -> Path:
    root = scratch_copy()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = epochs
    params["preprocess"]["reserve_images"] = reserve
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", *identity, "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", *identity, "commit", "-qm", "bench"], cwd=root, check=True)
    return root


def run(command: list[str], root: Path, label: str) -> tuple[str, float]:
    """A command in the scratch copy; its output, and its wall time printed."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{label} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    print(f"  {label}: {seconds:.0f} s")
    return result.stdout + result.stderr, seconds


def lines_with(output: str, text: str) -> list[str]:
    return [line[line.index(text) :].strip() for line in output.splitlines() if text in line]


def write_pictures(folder: Path, pictures: list[np.ndarray], labels: np.ndarray | None) -> None:
    folder.mkdir(parents=True)
    names = dataset_spec("fashion_mnist").class_names
    rows = []
    for index, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"{index:05d}.png")
        if labels is not None:
            rows.append([f"{index:05d}.png", names[labels[index]]])
    if labels is not None:
        with open(folder / "labels.csv", "w", newline="") as file:
            csv.writer(file).writerows([["file", "label"], *rows])


def latest_decision(root: Path) -> dict:
    records = sorted((root / "reports" / "runs").glob("*/promotion.json"), key=lambda path: path.stat().st_mtime)
    return json.loads(records[-1].read_text())


def fingerprints(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in IN_USE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="train.epochs of both models (default: %(default)s)")
    parser.add_argument("--labelled", type=int, default=3000, help="labelled pictures accepted (default: %(default)s)")
    parser.add_argument("--check-images", type=int, default=300, help="pictures per drift check (default: %(default)s)")
    parser.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS))
    parser.add_argument("--held-out", type=int, default=1000, help="new-kind pictures kept for the monitor's rates")
    parser.add_argument("--clean-batches", type=int, default=1000, help="per set and size (default: %(default)s)")
    parser.add_argument("--shift-batches", type=int, default=200, help="per shift and size (default: %(default)s)")
    arguments = parser.parse_args()
    use_this_environment()
    checks, labelled = arguments.check_images, arguments.labelled
    reserve = 3 * checks + labelled + arguments.held_out
    root = prepared_workspace(arguments.epochs, reserve)
    os.environ["PREFECT_HOME"] = str(root / ".prefect")
    python = sys.executable
    print(f"scratch copy {root}; train.epochs {arguments.epochs}; {reserve} training-file images reserved")

    print("1. the model in use")
    run([python, "-m", "flows.training"], root, "first training run")
    before = json.loads((root / "reports" / "evaluate" / "metrics.json").read_text())
    kept = root / ".bench-before"  # the first model and its drift references, for step 6
    kept.mkdir()
    shutil.copy2(root / "models" / "model.keras", kept / "model.keras")
    shutil.copytree(root / "data" / "drift_reference", kept / "drift_reference")

    print("2. the new kind, from the reserved images")
    images, labels = load_raw_split(root / "data" / "raw" / "fashion_mnist", "train")
    reserved = reserved_indices(len(labels), reserve, 42)
    rng = np.random.default_rng(0)
    order = rng.permutation(reserved)
    start = time.perf_counter()
    pictures = new_kind_pictures(images[order], seed=1, variant=arguments.variant)
    print(f"  {len(pictures)} pictures rendered: {time.perf_counter() - start:.0f} s")
    kept_labels = labels[order]
    labelled_part = slice(3 * checks, 3 * checks + labelled)
    sample = slice(3 * checks, 3 * checks + min(labelled, 1000))
    converted_images, found = converted(pictures[sample])
    model = load_model(root / "models" / "model.keras")
    predicted = model.predict(converted_images, verbose=0).argmax(axis=1)
    new_kind_accuracy = float(((predicted == kept_labels[sample]) & found).mean())
    print(
        f"  gap: test accuracy {before['accuracy']:.4f}, new kind after conversion {new_kind_accuracy:.4f} "
        f"({100 * (before['accuracy'] - new_kind_accuracy):.1f} points less; {found.mean():.1%} with an item found)"
    )

    print("3. the drift monitor on two batches of the new kind")
    for number in (1, 2):
        folder = root / "arriving" / f"batch-{number}"
        write_pictures(folder, pictures[(number - 1) * checks : number * checks], None)
        output, _ = run([python, "-m", "flows.monitoring", "--batch", str(folder)], root, f"drift check {number}")
    for line in lines_with(output, "drift confirmed"):
        print(f"  {line}")

    print(f"4. {labelled} labelled pictures accepted")
    incoming = root / "data" / "incoming" / "new-kind-1"
    write_pictures(incoming, pictures[labelled_part], kept_labels[labelled_part])
    output, _ = run(
        [python, "-m", "pipeline.commands.accept", "data/incoming/new-kind-1", "--source", SOURCE],
        root,
        "fashion-accept",
    )
    print(f"  {output.strip().splitlines()[-1]}")

    print("5. a third batch: drift confirmed with unseen data, a gated retraining")
    folder = root / "arriving" / "batch-3"
    write_pictures(folder, pictures[2 * checks : 3 * checks], None)
    output, _ = run([python, "-m", "flows.monitoring", "--batch", str(folder)], root, "drift check 3 and retraining")
    decision = latest_decision(root)
    test_row, source_row = decision["rows"][0], decision["rows"][1]
    print(f"  {lines_with(output, 'promotion gate:')[-1]}")
    print(
        f"  new kind ({source_row['images']} test images): {source_row['in use']:.4f} -> {source_row['candidate']:.4f} "
        f"({100 * source_row['change']:+.1f} points)"
    )
    print(
        f"  original test set: {test_row['in use']:.4f} -> {test_row['candidate']:.4f} "
        f"({100 * test_row['change']:+.2f} points; the gate allows a drop of {100 * test_row['allowed drop']:.2f})"
    )

    print("6. the drift monitor before and after the promotion")
    held_out, found = converted(pictures[3 * checks + labelled :])
    held_out = held_out[found]
    seed, counts = 0, (arguments.clean_batches, arguments.shift_batches)
    print("  before:")
    was = measure(root, kept / "model.keras", kept / "drift_reference", held_out, *counts, seed)
    print("  after:")
    now = measure(root, root / "models" / "model.keras", root / "data" / "drift_reference", held_out, *counts, seed)
    print_tables(was, now, yaml.safe_load((root / "params.yaml").read_text())["drift"]["alpha"], len(held_out))

    print("7. a deliberately weak candidate, then the weekly run with nothing new")
    in_use = fingerprints(root)
    weak = [python, "-m", "flows.training", "--set", "train.learning_rate=1e-7", "--set", "train.epochs=1", "--promote"]
    output, _ = run(weak, root, "weak candidate")
    print(f"  {lines_with(output, 'promotion gate:')[-1]}")
    print(f"  model, reports and dvc.lock byte-identical: {fingerprints(root) == in_use}")
    output, _ = run([python, "-m", "flows.training"], root, "weekly run")
    print(f"  {lines_with(output, 'promotion gate:')[-1]}")


if __name__ == "__main__":
    main()
