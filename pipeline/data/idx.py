"""Reading and writing the IDX format of (Fashion-)MNIST, byte-exact, optionally gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError

# IDX dtype codes; values wider than one byte are big-endian.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}


def decompress(raw: bytes, source: str) -> bytes:
    """`raw` decompressed if it is gzip (recognised by its magic, not by a file name), else as is."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise PipelineError(f"{source}: truncated or corrupt gzip ({error})") from None


def read_bytes(path: Path) -> bytes:
    return decompress(Path(path).read_bytes(), str(path))


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Decode IDX bytes into an array, checking the magic number and that the size is exact."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_DTYPES:
        raise PipelineError(f"{source}: not an IDX file (magic number {data[:4].hex() or 'missing'})")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_size:
        raise PipelineError(f"{source}: IDX header is truncated or has no dimensions")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise PipelineError(
            f"{source}: IDX size mismatch: header says {shape} ({expected} bytes), file has {len(data)}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes for an array of one of the IDX dtypes."""
    native = array.dtype.newbyteorder("=")
    if native not in IDX_CODES:
        raise ValueError(f"IDX has no code for dtype {array.dtype}")
    header = bytes([0, 0, IDX_CODES[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[IDX_CODES[native]]).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    data = encode_idx(array)
    Path(path).write_bytes(gzip.compress(data, mtime=0) if compress else data)
