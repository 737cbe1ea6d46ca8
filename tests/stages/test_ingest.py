import hashlib
import http.server
import json
import socket
import threading
from functools import partial

import numpy as np
import pytest

from pipeline.data.datasets import FILE_NAMES, DatasetSpec, dataset_spec
from pipeline.data.idx import encode_idx
from pipeline.data.ingestion import MANIFEST_NAME, IngestParams, choose_source, ingest_dataset
from pipeline.errors import PipelineError
from tests.support.data import write_dataset

CUSTOM = dataset_spec("custom")


def spec_for(arrays) -> DatasetSpec:
    """A 'known' dataset whose published checksums are those of the tiny arrays."""
    sha256 = {name: hashlib.sha256(encode_idx(arrays[role])).hexdigest() for role, name in FILE_NAMES.items()}
    return DatasetSpec(name="tiny", class_names=CUSTOM.class_names, sha256=sha256)


def params(**overrides) -> IngestParams:
    values = dict(
        dataset="custom", source_dir=None, system_dirs={}, mirrors={}, download_timeout_seconds=2, download_attempts=1
    )
    values.update(overrides)
    return IngestParams(**values)


def run_ingest(spec, out_dir, **overrides):
    return ingest_dataset(choose_source(params(**overrides), spec), spec, out_dir)


def test_custom_dataset_is_accepted_unverified(tiny_dataset, tmp_path):
    out = tmp_path / "raw"
    manifest = run_ingest(CUSTOM, out, source_dir=str(tiny_dataset.directory))
    assert manifest["verified"] is False
    assert manifest["counts"] == {"train": 200, "test": 50}
    assert manifest["source"] == {"kind": "source_dir", "location": str(tiny_dataset.directory)}
    # Written decompressed, byte-exact, with the manifest beside them.
    for role, name in FILE_NAMES.items():
        assert (out / name).read_bytes() == encode_idx(tiny_dataset.arrays[role])
    assert json.loads((out / MANIFEST_NAME).read_text()) == manifest


def test_known_dataset_is_verified_by_checksum(tiny_dataset, tmp_path):
    manifest = run_ingest(spec_for(tiny_dataset.arrays), tmp_path / "raw", source_dir=str(tiny_dataset.directory))
    assert manifest["verified"] is True


def test_checksum_mismatch_is_rejected_and_keeps_the_last_good_output(tiny_dataset, tmp_path):
    out = tmp_path / "raw"
    run_ingest(CUSTOM, out, source_dir=str(tiny_dataset.directory))
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    with pytest.raises(PipelineError, match=r"train-images-idx3-ubyte: sha256 mismatch for fashion_mnist"):
        run_ingest(dataset_spec("fashion_mnist"), out, source_dir=str(tiny_dataset.directory))
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["raw", "source"]  # no staging left behind


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("count", r"train: 200 images but 199 labels"),
        ("label", r"train labels: 1 labels outside 0-9 \(max 10\)"),
        ("magic", r"t10k-images-idx3-ubyte: not an IDX file \(magic number 01000803\)"),
        ("gzip", r"t10k-labels-idx1-ubyte.gz: truncated or corrupt gzip"),
    ],
)
def test_broken_files_are_rejected(tiny_arrays, tmp_path, breakage, message):
    if breakage == "count":
        tiny_arrays["train_labels"] = tiny_arrays["train_labels"][:-1]
    if breakage == "label":
        tiny_arrays["train_labels"][3] = 10
    source = write_dataset(tmp_path / "source", tiny_arrays)
    if breakage == "magic":
        (source / "t10k-images-idx3-ubyte.gz").unlink()
        data = bytearray(encode_idx(tiny_arrays["test_images"]))
        data[0] = 0x01
        (source / "t10k-images-idx3-ubyte").write_bytes(bytes(data))
    if breakage == "gzip":
        path = source / "t10k-labels-idx1-ubyte.gz"
        path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PipelineError, match=message):
        run_ingest(CUSTOM, tmp_path / "raw", source_dir=str(source))
    assert not (tmp_path / "raw").exists()


def test_missing_source_directory(tmp_path):
    with pytest.raises(PipelineError, match=rf"ingest.source_dir: {tmp_path}/nowhere is not an existing directory"):
        run_ingest(CUSTOM, tmp_path / "raw", source_dir=str(tmp_path / "nowhere"))


def test_custom_dataset_needs_a_source_directory(tmp_path):
    with pytest.raises(PipelineError, match=r"ingest.source_dir must be set for dataset 'custom'"):
        run_ingest(CUSTOM, tmp_path / "raw")


def test_system_directory_comes_before_the_mirrors(tiny_dataset, tmp_path):
    spec = spec_for(tiny_dataset.arrays)
    source = choose_source(
        params(system_dirs={"tiny": str(tiny_dataset.directory)}, mirrors={"tiny": ["http://127.0.0.1:9/"]}), spec
    )
    assert source.kind == "system_dir"
    source = choose_source(
        params(system_dirs={"tiny": str(tmp_path / "absent")}, mirrors={"tiny": ["http://127.0.0.1:9/"]}), spec
    )
    assert source.kind == "download"


class TruncatingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, but promises more bytes than it sends for names listed in `truncate`."""

    truncate: set[str] = set()

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.truncate:
            return super().do_GET()
        body = (self.directory_path / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True


@pytest.fixture
def http_server(tiny_dataset):
    """A real HTTP server on loopback serving the tiny dataset's .gz files under /data/."""
    root = tiny_dataset.directory.parent
    handler = type("Handler", (TruncatingHandler,), {"truncate": set(), "directory_path": root / "source"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}/source/"
    server.handler = handler
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_download_from_the_first_mirror_that_serves(tiny_dataset, http_server, tmp_path):
    spec = spec_for(tiny_dataset.arrays)
    mirrors = {"tiny": [http_server.base_url.replace("/source/", "/missing/"), http_server.base_url]}
    manifest = run_ingest(spec, tmp_path / "raw", mirrors=mirrors)
    assert manifest["source"]["kind"] == "download" and manifest["verified"]
    np.testing.assert_array_equal(
        np.frombuffer((tmp_path / "raw" / "train-labels-idx1-ubyte").read_bytes()[8:], dtype=np.uint8),
        tiny_dataset.arrays["train_labels"],
    )


def test_unreachable_url_is_a_clear_error(tiny_dataset, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(PipelineError, match=rf"{url}train-images-idx3-ubyte.gz: download failed after 2 attempt\(s\)"):
        run_ingest(spec_for(tiny_dataset.arrays), tmp_path / "raw", mirrors={"tiny": [url]}, download_attempts=2)
    assert not (tmp_path / "raw").exists()


def test_partial_download_is_never_left_behind(tiny_dataset, http_server, tmp_path):
    http_server.handler.truncate.add("t10k-images-idx3-ubyte.gz")
    with pytest.raises(PipelineError, match=r"t10k-images-idx3-ubyte.gz: download failed .*IncompleteRead"):
        run_ingest(spec_for(tiny_dataset.arrays), tmp_path / "raw", mirrors={"tiny": [http_server.base_url]})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["source"]
