"""Params for models that train in seconds, and the unfamiliarity stage run on a model the tests trained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.workspaces import REPO_ROOT, run

# The network both training settings below build: two thin convolution blocks of one convolution, a small dense
# layer, no regularisers (no erasing, which could erase the toy task's square, and no label smoothing).
SMALL_NETWORK = {
    "train.conv_filters": [8, 16],
    "train.convs_per_block": 1,
    "train.augment_erasing": 0.0,
    "train.label_smoothing": 0.0,
    "train.dense_units": 32,
    "train.batch_norm": False,
    "train.conv_dropout": 0.0,
    "train.dense_dropout": 0.0,
    "train.augment_flip": False,
}

# A model that trains on the real data in seconds, for runs that test orchestration rather than accuracy.
FAST_REAL_TRAIN = SMALL_NETWORK | {
    "train.flip_averaging": False,
    "train.batch_size": 256,
    "train.epochs": 1,
    # And a quicker null for the drift verdict: its threshold from fewer clean resamples (seconds, not a minute).
    "drift.calibration_resamples": 100,
}

# A model that learns the toy square task (tests/support/data.py: square_images) in a few epochs.
TINY_TRAIN = SMALL_NETWORK | {
    "train.augment_max_shift": 0.0,
    "train.learning_rate": 0.003,
    "train.batch_size": 32,
    "train.epochs": 3,
}


def run_unfamiliarity(params: Path, model: Path, prepared: Path, out: Path) -> dict:
    """The unfamiliarity stage on a model and its prepared splits, writing into `out` (beside a model there, predict
    finds it); its summary."""
    command = [sys.executable, "-m", "pipeline.stages.unfamiliarity", "--params", params, "--model", model]
    command += ["--train", prepared / "train.npz", "--val", prepared / "val.npz"]
    command += ["--out", out / "unfamiliarity.npz", "--summary", out / "unfamiliarity.json"]
    run(list(map(str, command)), REPO_ROOT)
    return json.loads((out / "unfamiliarity.json").read_text())


def run_train(tmp_path, params_path, prepared_dir, out="out"):
    out_dir = tmp_path / out
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.train",
            "--params",
            str(params_path),
            "--train",
            str(prepared_dir / "train.npz"),
            "--val",
            str(prepared_dir / "val.npz"),
            "--model",
            str(out_dir / "model.keras"),
            "--history",
            str(out_dir / "history.csv"),
            "--curve",
            str(out_dir / "curve.png"),
            "--metrics",
            str(out_dir / "metrics.json"),
            "--timing",
            str(out_dir / "timing.json"),
            "--checkpoint-dir",
            str(tmp_path / "checkpoint"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    return result, out_dir


def train_square_model(root: Path, epochs: int = 5, seed: int = 42) -> Path:
    """A small model trained on the square task (tests/support/data.py: the class is where the square sits), with
    its unfamiliarity scorer beside it, in `root`/out; returns the model's path."""
    import yaml

    from pipeline.data.preprocessing import save_arrays
    from tests.support.data import set_keys, square_images

    prepared = root / "prepared"
    prepared.mkdir(exist_ok=True)
    for name, count, data_seed in (("train", 400, 1), ("val", 50, 2), ("test", 50, 3)):
        save_arrays(prepared / f"{name}.npz", *square_images(count, data_seed))
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    set_keys(params, {**TINY_TRAIN, "train.epochs": epochs, "train.seed": seed})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result, out = run_train(root, root / "params.yaml", prepared)
    assert result.returncode == 0, result.stderr
    # The unfamiliarity stage writes its scorer beside the model, where predict and the service look for it.
    run_unfamiliarity(root / "params.yaml", out / "model.keras", prepared, out)
    return out / "model.keras"
