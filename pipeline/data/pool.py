"""The accepted pool (data/pool/<batch>/, written by `fashion-accept`) made into training data.

Each new source keeps a fixed test slice of its own: every batch, in the order batches were accepted, gives up to
`source_test_share` of its images to its source's slice until the slice holds `source_test_images`. A batch's
share depends only on itself and the batches accepted before it, and the pool is append-only, so the slice a
model was measured on stays the same as more data arrives: models trained months apart compare on the same
images. The rest of each batch is split into training and validation by class, seeded by the batch's checksum,
so later batches never move an earlier image between them either.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.preprocessing import load_prepared, stratified_split
from pipeline.errors import PipelineError

POOL_RECORD = "pool.json"  # in the prepared folder: the batches a model's data holds
SLICES = "slices"  # in the prepared folder: one test slice per new source, <source>.npz
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a source names a file: data/prepared/slices/<source>.npz


@dataclass(frozen=True)
class PoolBatch:
    name: str
    source: str
    accepted_at: str
    sha256: str
    images: np.ndarray  # uint8 (N, 28, 28, 1)
    labels: np.ndarray  # int64 (N,)


@dataclass
class PoolSplit:
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    slices: dict[str, tuple[np.ndarray, np.ndarray]]  # by source
    record: list[dict]  # per batch: name, source, accepted_at, sha256 and how many images went where


def read_pool(pool_dir: Path) -> list[PoolBatch]:
    """The accepted batches in the order they were accepted; no pool folder is an empty pool."""
    if not pool_dir.is_dir():
        return []
    batches = [read_batch(folder) for folder in sorted(pool_dir.iterdir()) if (folder / "manifest.json").exists()]
    return sorted(batches, key=lambda batch: (batch.accepted_at, batch.name))


def read_batch(folder: Path) -> PoolBatch:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        with np.load(folder / "images.npz", allow_pickle=False) as arrays:
            images, labels = arrays["images"], arrays["labels"].astype(np.int64)
        batch = PoolBatch(
            manifest["batch"], manifest["source"], manifest["accepted_at"], manifest["sha256"], images, labels
        )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise PipelineError(f"{folder}: not an accepted batch ({' '.join(str(error).split())[:120]})") from None
    if not SOURCE_NAME.match(batch.source):
        raise PipelineError(
            f"{folder}/manifest.json: source must be letters, digits, '.', '_' or '-', got {batch.source!r}"
        )
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28, 1) or len(labels) != len(images):
        raise PipelineError(f"{folder}/images.npz: images must be uint8 (N, 28, 28, 1) with N labels")
    return batch


def split_pool(
    batches: list[PoolBatch], val_fraction: float, test_images: int, test_share: float, seed: int
) -> PoolSplit:
    """Each batch's images to its source's test slice, training or validation (see the module's docstring)."""
    parts = {"train": [], "val": []}
    slices: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    record = []
    for batch in batches:
        taken = sum(len(labels) for _, labels in slices.get(batch.source, []))
        rng = np.random.default_rng([seed, int(batch.sha256[:12], 16)])
        order = rng.permutation(len(batch.labels))
        to_test = min(max(test_images - taken, 0), int(len(order) * test_share))
        test_index, rest = np.sort(order[:to_test]), np.sort(order[to_test:])
        slices.setdefault(batch.source, []).append((batch.images[test_index], batch.labels[test_index]))
        train_index, val_index = stratified_split(batch.labels[rest], val_fraction, int(rng.integers(2**31)))
        parts["train"].append((batch.images[rest[train_index]], batch.labels[rest[train_index]]))
        parts["val"].append((batch.images[rest[val_index]], batch.labels[rest[val_index]]))
        record.append(
            {
                "batch": batch.name,
                "source": batch.source,
                "accepted_at": batch.accepted_at,
                "sha256": batch.sha256,
                "test": int(to_test),
                "train": len(train_index),
                "val": len(val_index),
            }
        )
    return PoolSplit(
        train=joined(parts["train"]),
        val=joined(parts["val"]),
        # A source whose batches so far gave its slice nothing (a batch of one image) has no slice yet.
        slices={source: joined(pieces) for source, pieces in slices.items() if sum(len(p[1]) for p in pieces)},
        record=record,
    )


def joined(pieces: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not pieces:
        return np.zeros((0, 28, 28, 1), np.uint8), np.zeros(0, np.int64)
    return np.concatenate([images for images, _ in pieces]), np.concatenate([labels for _, labels in pieces])


def read_slices(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The new sources' test slices (a prepared folder's slices/), by source; none before any batch was accepted."""
    return {path.stem: load_prepared(path) for path in sorted(folder.glob("*.npz"))} if folder.is_dir() else {}


def read_pool_record(path: Path) -> list[dict]:
    """The accepted batches a prepared folder holds (its pool.json; none for one made before the pool existed)."""
    return json.loads(path.read_text())["batches"] if path.exists() else []


def batches_line(record: list[dict]) -> str:
    """The accepted batches as the lineage header shows them."""
    if not record:
        return "none (the original training images only)"
    return ", ".join(f"{entry['batch']} ({entry['source']}, sha256:{entry['sha256'][:12]})" for entry in record)


def unseen_batches(pool_dir: Path, prepared_record: Path) -> list[str]:
    """Accepted batches that the prepared data (and so the model trained on it) does not hold yet."""
    seen = {entry["batch"] for entry in read_pool_record(prepared_record)}
    return [batch.name for batch in read_pool(pool_dir) if batch.name not in seen]
