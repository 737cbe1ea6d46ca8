"""Data the tests write: tiny IDX datasets in the project's own format, images of a toy task, PNGs written chunk by
chunk, accepted batches in the pool's layout, and params documents with `section.key` overrides."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.datasets import FILE_NAMES
from pipeline.data.idx import write_idx


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


def square_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten classes told apart by where a bright square sits on a dark noisy background."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(10, dtype=np.uint8), count // 10)
    images = rng.integers(0, 40, (len(labels), 28, 28, 1)).astype(np.uint8)
    for index, label in enumerate(labels):
        row, column = divmod(int(label), 5)
        images[index, 2 + row * 12 : 10 + row * 12, 1 + column * 5 : 5 + column * 5] = 255
    return images, labels


def write_png(path, width, height, bit_depth, colour_type, rows):
    """A PNG written chunk by chunk, for what Pillow will not write (16-bit colour) or would need memory for."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    compressed = b"".join(compressor.compress(b"\x00" + row) for row in rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", compressed) + chunk(b"IEND", b""))


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
