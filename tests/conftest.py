"""Shared fixtures: tiny IDX datasets written with the project's own writer, and params files."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from flows.dvc_stages import committed_outputs
from pipeline.data.datasets import FILE_NAMES
from pipeline.data.idx import write_idx

REPO_ROOT = Path(__file__).resolve().parents[1]
# Prefect's home (database, logs) for the tests is their own, not the project's .prefect/; set before
# anything imports prefect, which reads its settings once.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"


@dataclass
class TinyDataset:
    directory: Path
    arrays: dict[str, np.ndarray]  # keyed like FILE_NAMES: train_images, train_labels, ...


def make_split(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced, non-blank, all-distinct 28x28 uint8 images with labels 0-9."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
    return images, labels


def write_dataset(directory: Path, arrays: dict[str, np.ndarray], compress: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for role, name in FILE_NAMES.items():
        write_idx(directory / (f"{name}.gz" if compress else name), arrays[role], compress=compress)
    return directory


def write_manifest(raw_dir: Path) -> None:
    """The manifest the ingest stage writes beside the files it accepted (the part that lineage reads)."""
    files = {path.name: {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()} for path in raw_dir.iterdir()}
    (raw_dir / "manifest.json").write_text(json.dumps({"dataset": "custom", "files": files}))


def set_keys(params: dict, values: dict) -> None:
    """Set `section.key` entries of a loaded params document."""
    for dotted, value in values.items():
        *parents, key = dotted.split(".")
        node = params
        for parent in parents:
            node = node[parent]
        node[key] = value


@pytest.fixture
def tiny_arrays() -> dict[str, np.ndarray]:
    train_images, train_labels = make_split(per_class=20, seed=1)
    test_images, test_labels = make_split(per_class=5, seed=2)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


@pytest.fixture
def tiny_dataset(tmp_path, tiny_arrays) -> TinyDataset:
    return TinyDataset(write_dataset(tmp_path / "source", tiny_arrays), tiny_arrays)


@pytest.fixture
def repo_params() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


@pytest.fixture
def write_params(tmp_path, repo_params):
    """Write the repository's params.yaml with `section.key` overrides; returns the file's path."""

    def write(overrides: dict | None = None, name: str = "params.yaml") -> Path:
        params = copy.deepcopy(repo_params)
        set_keys(params, overrides or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(params))
        return path

    return write


@pytest.fixture(scope="session")
def real_raw_dir(tmp_path_factory) -> Path:
    """The real Fashion-MNIST, ingested and verified from the system copy (Debian's dataset-fashion-mnist)."""
    from pipeline.data.datasets import dataset_spec
    from pipeline.data.ingestion import IngestParams, choose_source, ingest_dataset
    from pipeline.params import load_params

    params = load_params(IngestParams, REPO_ROOT / "params.yaml")
    spec = dataset_spec("fashion_mnist")
    source = choose_source(params, spec)
    assert source.kind == "system_dir", "install the real data first: apt-get install dataset-fashion-mnist"
    out = tmp_path_factory.mktemp("real") / "fashion_mnist"
    ingest_dataset(source, spec, out)
    return out


def square_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten classes told apart by where a bright square sits on a dark noisy background."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(10, dtype=np.uint8), count // 10)
    images = rng.integers(0, 40, (len(labels), 28, 28, 1)).astype(np.uint8)
    for index, label in enumerate(labels):
        row, column = divmod(int(label), 5)
        images[index, 2 + row * 12 : 10 + row * 12, 1 + column * 5 : 5 + column * 5] = 255
    return images, labels


# A model that trains on the real data in seconds, for runs that test orchestration rather than accuracy.
FAST_REAL_TRAIN = {
    "train.conv_filters": [8, 16],
    "train.dense_units": 32,
    "train.batch_norm": False,
    "train.conv_dropout": 0.0,
    "train.dense_dropout": 0.0,
    "train.augment_flip": False,
    "train.flip_averaging": False,
    "train.batch_size": 256,
    "train.epochs": 1,
    # And a quicker null for the drift verdict: its threshold from fewer clean resamples (seconds, not a minute).
    "drift.calibration_resamples": 100,
}

TINY_TRAIN = {
    "train.conv_filters": [8, 16],
    "train.dense_units": 32,
    "train.batch_norm": False,
    "train.conv_dropout": 0.0,
    "train.dense_dropout": 0.0,
    "train.augment_flip": False,
    "train.augment_max_shift": 0.0,
    "train.learning_rate": 0.003,
    "train.batch_size": 32,
    "train.epochs": 3,
}


@pytest.fixture
def prepared_dir(tmp_path) -> Path:
    """train/val/test .npz of the square task, in the layout the preprocess stage writes."""
    from pipeline.data.preprocessing import save_arrays

    directory = tmp_path / "prepared"
    directory.mkdir()
    for name, count, seed in (("train", 200, 1), ("val", 50, 2), ("test", 50, 3)):
        save_arrays(directory / f"{name}.npz", *square_images(count, seed))
    return directory


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command as a user would, with the `python` and `dvc` of the environment running the tests."""
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false"}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def prefect_backend():
    """One temporary Prefect server (SQLite) for every flow run of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def default_pipeline(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`dvc repro` with the default params on the real data, in a fresh copy of the repository (minutes: it trains
    the default model); its workspace and output are shared by the end-to-end, predict and browser tests."""
    root = scratch_workspace(tmp_path_factory.mktemp("workspace"))
    return root, run(["dvc", "repro"], root)


def scratch_workspace(root: Path, params: dict | None = None) -> Path:
    """A git clone-alike of the working tree (tracked and new files) in `root`, with no outputs and no dvc.lock.

    `params` (`section.key` -> value) are written into its params.yaml before the one commit.
    """
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO_ROOT).stdout.split()
    for name in files:
        if (REPO_ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    for output in committed_outputs(REPO_ROOT):  # main's record of its own run, not this workspace's
        (root / output).unlink(missing_ok=True)
    # Installed packages are not part of a clone; the validate stage reads the Data Docs' web assets from here.
    (root / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    if params:
        document = yaml.safe_load((root / "params.yaml").read_text())
        set_keys(document, params)
        (root / "params.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    run(["git", "init", "-q"], root)
    run(["git", *identity, "add", "-A"], root)
    run(["git", *identity, "commit", "-qm", "snapshot"], root)
    return root


def write_png(path, width, height, bit_depth, colour_type, rows):
    """A PNG written chunk by chunk, for what Pillow will not write (16-bit colour) or would need memory for."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    compressed = b"".join(compressor.compress(b"\x00" + row) for row in rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", compressed) + chunk(b"IEND", b""))


def run_unfamiliarity(params: Path, model: Path, prepared: Path, out: Path) -> dict:
    """The unfamiliarity stage on a model and its prepared splits, writing into `out` (beside a model there, predict
    finds it); its summary."""
    command = [sys.executable, "-m", "pipeline.stages.unfamiliarity", "--params", params, "--model", model]
    command += ["--train", prepared / "train.npz", "--val", prepared / "val.npz"]
    command += ["--out", out / "unfamiliarity.npz", "--summary", out / "unfamiliarity.json"]
    run(list(map(str, command)), REPO_ROOT)
    return json.loads((out / "unfamiliarity.json").read_text())


def write_pool_batch(pool: Path, name: str, source: str, count: int, seed: int, accepted_at: str) -> Path:
    """An accepted batch in the pool's layout (what fashion-accept writes), of `count` distinct random images."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(count, dtype=np.int64) % 10
    folder = pool / name
    folder.mkdir(parents=True)
    np.savez_compressed(
        folder / "images.npz", images=images, labels=labels, files=np.array([f"{i}.png" for i in range(count)])
    )
    manifest = {
        "batch": name,
        "source": source,
        "accepted_at": accepted_at,
        "from": f"data/incoming/{name}",
        "images": count,
        "classes": {},
        "sha256": hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
