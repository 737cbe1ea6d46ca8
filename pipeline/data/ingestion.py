"""Obtaining the four IDX files of a dataset, verified, for the ingest stage.

Sources, in order: `ingest.source_dir` when set, the system dataset folder (Debian's
dataset-fashion-mnist), then the download mirrors. Every file is checked (IDX header, counts,
labels, and the sha256 of its decompressed bytes for a known dataset) before it is accepted,
and the output folder is replaced only once all four files passed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipeline.data.datasets import FILE_NAMES, SPLITS, DatasetSpec, check_split
from pipeline.data.idx import decompress, parse_idx, read_bytes
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.params import param

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class IngestParams:
    SECTION: ClassVar[str] = "ingest"
    dataset: str = param("text", description="a dataset name")
    source_dir: str | None = param("text", description="a directory path or null", optional=True)
    system_dirs: dict[str, str] = param("string_map", item_kind=str, description="a directory path")
    mirrors: dict[str, list[str]] = param("string_map", item_kind=list, description="a list of base URLs")
    download_timeout_seconds: float = param("number", above=0)
    download_attempts: int = param("number", integer=True, minimum=1)


@dataclass(frozen=True)
class Source:
    kind: str  # "source_dir", "system_dir" or "download"
    location: str
    read: Callable[[str], bytes]  # file name -> decompressed bytes


def directory_reader(directory: Path) -> Callable[[str], bytes]:
    """Reads `name` or `name.gz` from a folder."""

    def read(name: str) -> bytes:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return read_bytes(candidate)
        raise PipelineError(f"{directory}: missing {name} (or {name}.gz)")

    return read


def download(url: str, timeout: float, attempts: int) -> bytes:
    """The body of `url`, retried on network errors; a short transfer is an error, never data."""
    last_error: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read()
                expected = response.headers.get("Content-Length")
            if expected is not None and len(body) != int(expected):
                raise http.client.IncompleteRead(body, int(expected) - len(body))
            return body
        except urllib.error.HTTPError as error:
            last_error = error
            if error.code < 500:  # a missing file does not appear on a retry
                break
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            last_error = error
        if attempt < attempts:
            time.sleep(min(2.0 ** (attempt - 1), 10.0))  # back off: 1 s, 2 s, 4 s, ...
    raise PipelineError(f"{url}: download failed after {attempt} attempt(s): {last_error}")


def mirror_reader(mirrors: list[str], timeout: float, attempts: int) -> Callable[[str], bytes]:
    """Fetches `name.gz` from the first mirror that serves it; the bytes stay in memory until verified."""

    def read(name: str) -> bytes:
        failures = []
        for base in mirrors:
            url = f"{base.rstrip('/')}/{name}.gz"
            try:
                return decompress(download(url, timeout, attempts), url)
            except PipelineError as error:
                failures.append(str(error))
        raise PipelineError("; ".join(failures))

    return read


def choose_source(params: IngestParams, spec: DatasetSpec) -> Source:
    """The first source that applies: the configured folder, the system folder, then the mirrors."""
    if params.source_dir is not None:
        directory = Path(params.source_dir)
        if not directory.is_dir():
            raise PipelineError(f"ingest.source_dir: {directory} is not an existing directory")
        return Source("source_dir", str(directory), directory_reader(directory))
    if not spec.verified:
        raise PipelineError(f"ingest.source_dir must be set for dataset {spec.name!r} (there is nothing to download)")
    system_dir = params.system_dirs.get(spec.name)
    if system_dir and Path(system_dir).is_dir():
        return Source("system_dir", system_dir, directory_reader(Path(system_dir)))
    mirrors = params.mirrors.get(spec.name) or []
    if not mirrors:
        raise PipelineError(f"ingest.mirrors.{spec.name}: no download mirrors and no local copy of the dataset")
    reader = mirror_reader(mirrors, params.download_timeout_seconds, params.download_attempts)
    return Source("download", ", ".join(mirrors), reader)


def verify_file(name: str, data: bytes, spec: DatasetSpec, origin: str) -> tuple[np.ndarray, str]:
    """Check one file's IDX structure and checksum; returns its values and sha256."""
    values = parse_idx(data, f"{origin}/{name}")
    digest = hashlib.sha256(data).hexdigest()
    if spec.verified and digest != spec.sha256[name]:
        raise PipelineError(
            f"{origin}/{name}: sha256 mismatch for {spec.name}: expected {spec.sha256[name]}, got {digest}"
        )
    return values, digest


def ingest_dataset(source: Source, spec: DatasetSpec, out_dir: Path) -> dict:
    """Verify all four files from `source` and write them (decompressed) with a manifest to `out_dir`."""
    with atomic_path(out_dir) as staging:
        staging.mkdir()
        files, arrays = {}, {}
        for role, name in FILE_NAMES.items():
            data = source.read(name)
            arrays[role], digest = verify_file(name, data, spec, source.location)
            files[name] = {"sha256": digest, "bytes": len(data)}
            (staging / name).write_bytes(data)
        for split in SPLITS:
            check_split(arrays[f"{split}_images"], arrays[f"{split}_labels"], f"{source.location} {split}")
        counts = {split: len(arrays[f"{split}_labels"]) for split in SPLITS}
        manifest = {
            "dataset": spec.name,
            "source": {"kind": source.kind, "location": source.location},
            "verified": spec.verified,
            "counts": counts,
            "files": files,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
