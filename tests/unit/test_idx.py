import gzip
import struct

import numpy as np
import pytest

from pipeline.data.idx import encode_idx, parse_idx, read_idx, write_idx
from pipeline.errors import PipelineError


def test_encode_is_byte_exact_with_the_format():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = encode_idx(images)
    assert data[:4] == bytes([0, 0, 0x08, 3])
    assert struct.unpack(">3I", data[4:16]) == (2, 3, 4)
    assert data[16:] == images.tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, compress):
    labels = np.array([0, 9, 3, 7], dtype=np.uint8)
    path = tmp_path / "labels"
    write_idx(path, labels, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    np.testing.assert_array_equal(read_idx(path), labels)


def test_wider_dtypes_are_big_endian():
    values = np.array([1, 256], dtype=np.int32)
    data = encode_idx(values)
    assert data[2] == 0x0C and data[8:] == b"\x00\x00\x00\x01\x00\x00\x01\x00"
    np.testing.assert_array_equal(parse_idx(data, "values"), values)


def test_wrong_magic_is_rejected():
    data = bytearray(encode_idx(np.zeros((2, 28, 28), dtype=np.uint8)))
    data[2] = 0x42
    with pytest.raises(PipelineError, match="images: not an IDX file"):
        parse_idx(bytes(data), "images")


def test_truncated_body_is_rejected():
    data = encode_idx(np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(PipelineError, match="size mismatch"):
        parse_idx(data[:-1], "images")


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(encode_idx(np.ones((5, 28, 28), dtype=np.uint8)))[:-20])
    with pytest.raises(PipelineError, match=r"train-images-idx3-ubyte.gz: truncated or corrupt gzip"):
        read_idx(path)
