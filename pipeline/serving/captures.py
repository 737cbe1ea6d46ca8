"""What the service saw, kept for the drift monitor and for labellers, off the request path.

Layout, under serve.capture_folder (data/traffic/, ignored by git and DVC):

    <YYYY-MM-DD>/<HHMMSS>-<replica>-<sequence>-n<count>.npz      one chunk, written whole (atomic rename)
    checked.jsonl                                                  the chunks each finished drift check read

A chunk holds `count` pictures as the model saw them (`images`, uint8 28x28x1: the drift checks read a chunk as
any .npz batch), each one's `probabilities`, `unfamiliarity` score and `unfamiliar` flag, the uploaded file's name
(`files`), the answer's `times` (UTC) and `versions` (the model pair's), and a thumbnail of the whole picture, grey,
at most 128 pixels a side, as PNG bytes (`thumbnails`, cut at `thumbnail_offsets`). The original upload is never
kept. Chunks are never changed once written and their names never repeat across replicas (host and process in
<replica>), so the folders of several replicas merge by copying, and a closed day's folder can be synced or tracked
as it is: the monitor needs only a folder of chunks, on the serving machine or wherever they were brought.

Writing is bounded: at most serve.capture_per_day pictures a day (counted over every replica's chunks of that day
before each chunk is written, so replicas writing at the same moment may pass it by up to a chunk each) and
serve.capture_total in all, the oldest days removed first. The writer has a queue of its own; when the disk
cannot keep up, pictures are dropped and counted, and no answer waits.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pipeline.files import atomic_path

LOG = logging.getLogger("fashion-serve")
CHUNK_NAME = re.compile(r"^\d{6}-.+-\d{6}-n(\d+)\.npz$")
DAY_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A day's chunks the drift monitor has checked, one line per check (in the monitor's checks folder).
CHECKED_FILE = "traffic_checked.jsonl"
# The same, for the checks that finished, in the capture folder itself: a monitor on another machine that reads the
# folder (a shared mount) counts them too.
SHARED_CHECKED_FILE = "checked.jsonl"


@dataclass(frozen=True)
class Capture:
    image: np.ndarray  # uint8 (28, 28, 1)
    thumbnail: np.ndarray  # uint8 (H, W)
    file: str
    time: datetime
    probabilities: np.ndarray
    unfamiliarity: float
    unfamiliar: bool
    version: str


def replica_name() -> str:
    """This process's part of its chunks' names: its host and process, and a random tag, since containers often
    share both a host name and process id 1 (and a restarted service starts its sequence again)."""
    host = re.sub(r"[^A-Za-z0-9]+", "", socket.gethostname())[:32] or "host"
    return f"{host}{os.getpid()}{secrets.token_hex(3)}"


def chunk_count(path: Path) -> int:
    matched = CHUNK_NAME.match(path.name)
    return int(matched[1]) if matched else 0


def day_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_dir() and DAY_NAME.match(path.name))


def chunks_of(day: Path) -> list[Path]:
    return sorted(path for path in day.iterdir() if CHUNK_NAME.match(path.name))


def captured_chunks(folder: Path) -> list[Path]:
    """Every chunk under `folder`, oldest day first."""
    return [chunk for day in day_folders(folder) for chunk in chunks_of(day)]


def encode_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_chunk(path: Path, captures: list[Capture]) -> None:
    thumbnails = [np.frombuffer(encode_png(capture.thumbnail), np.uint8) for capture in captures]
    offsets = np.cumsum([0, *(len(thumbnail) for thumbnail in thumbnails)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as staging, open(staging, "wb") as file:
        np.savez(
            file,
            images=np.stack([capture.image for capture in captures]),
            probabilities=np.stack([capture.probabilities for capture in captures]).astype(np.float32),
            unfamiliarity=np.array([capture.unfamiliarity for capture in captures], np.float32),
            unfamiliar=np.array([capture.unfamiliar for capture in captures], bool),
            files=np.array([capture.file for capture in captures], dtype=str),
            times=np.array([capture.time.isoformat(timespec="milliseconds") for capture in captures], dtype=str),
            versions=np.array([capture.version for capture in captures], dtype=str),
            thumbnails=np.concatenate(thumbnails),
            thumbnail_offsets=offsets.astype(np.int64),
        )


def read_for_labellers(chunk: Path) -> list[tuple[bytes, str]]:
    """Each captured picture's thumbnail (PNG bytes) and the name it was uploaded under, in the chunk's order."""
    with np.load(chunk, allow_pickle=False) as arrays:
        return for_labellers(arrays)


def for_labellers(arrays) -> list[tuple[bytes, str]]:
    """read_for_labellers on a chunk already open (np.load's arrays)."""
    blob, offsets, names = arrays["thumbnails"], arrays["thumbnail_offsets"], arrays["files"]
    return [
        (blob[start:end].tobytes(), str(name))
        for start, end, name in zip(offsets[:-1], offsets[1:], names, strict=True)
    ]


class TrafficRecorder:
    """Takes captures from the request path without blocking, writes them in chunks from a thread of its own."""

    def __init__(
        self,
        folder: Path,
        per_day: int,
        total: int,
        chunk: int,
        flush_seconds: float,
        on_written: Callable[[int], None] = lambda count: None,
        on_dropped: Callable[[str, int], None] = lambda reason, count: None,
    ):
        self.folder, self.per_day, self.total, self.chunk, self.flush_seconds = (
            folder,
            per_day,
            total,
            chunk,
            flush_seconds,
        )
        self.on_written, self.on_dropped = on_written, on_dropped
        self.replica, self.sequence = replica_name(), 0
        self.queue: queue.Queue = queue.Queue(maxsize=4 * chunk)
        self.buffer: list[Capture] = []
        self.first_buffered = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="traffic-recorder", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def offer(self, capture: Capture) -> None:
        try:
            self.queue.put_nowait(capture)
        except queue.Full:
            self.on_dropped("writer behind", 1)

    def close(self) -> None:
        """Write what is buffered and stop."""
        self.stopped.set()
        self.thread.join(timeout=30)

    def run(self) -> None:
        while not (self.stopped.is_set() and self.queue.empty()):
            try:
                capture = self.queue.get(timeout=0.2)
            except queue.Empty:
                capture = None
            if capture is not None:
                if self.buffer and capture.time.date() != self.buffer[0].time.date():
                    self.flush()  # a chunk holds one day's pictures
                if not self.buffer:
                    self.first_buffered = time.monotonic()
                self.buffer.append(capture)
            due = time.monotonic() - self.first_buffered >= self.flush_seconds
            if self.buffer and (len(self.buffer) >= self.chunk or due):
                self.flush()
        if self.buffer:  # stopping, with the queue emptied: the last chunk
            self.flush()

    def flush(self) -> None:
        captures, self.buffer = self.buffer, []
        try:
            self.write(captures)
        except Exception as error:  # a full or failing disk costs the captures, never the service nor this thread
            LOG.warning("fashion-serve: %d captured picture(s) not kept: %s", len(captures), error)
            self.on_dropped("write failed", len(captures))

    def write(self, captures: list[Capture]) -> None:
        day = self.folder / f"{captures[0].time:%Y-%m-%d}"
        already = sum(chunk_count(chunk) for chunk in chunks_of(day)) if day.is_dir() else 0
        room = max(0, self.per_day - already)
        if room < len(captures):
            self.on_dropped("daily limit", len(captures) - room)
            captures = captures[:room]
        if not captures:
            return
        self.sequence += 1
        name = f"{captures[0].time:%H%M%S}-{self.replica}-{self.sequence:06d}-n{len(captures)}.npz"
        write_chunk(day / name, captures)
        self.on_written(len(captures))
        self.keep_within_total(day)

    def keep_within_total(self, today: Path) -> None:
        """The oldest days removed, whole, while the captures pass serve.capture_total (today's never)."""
        days = day_folders(self.folder)
        counts = {day: sum(chunk_count(chunk) for chunk in chunks_of(day)) for day in days}
        total = sum(counts.values())
        for day in days:
            if total <= self.total or day == today:
                break
            shutil.rmtree(day, ignore_errors=True)
            total -= counts[day]
            LOG.info("fashion-serve: removed the captures of %s: over serve.capture_total (%d)", day.name, self.total)


def checked_chunks(checks_dir: Path, folder: Path | None = None) -> set[str]:
    """The chunks (day/name) the drift monitor has checked: those of each line whose check was written. The monitor
    writes the line before it runs the check, so a run killed in between leaves its chunks to the next run, and a
    run killed after the check leaves them checked once. With the capture `folder`, also those every finished
    check recorded there, whichever machine ran it (`record_checked`)."""
    checked = set()
    for entry in ledger(checks_dir / CHECKED_FILE):
        if (checks_dir / entry["check"] / "summary.json").is_file():
            checked.update(entry["chunks"])
    for entry in ledger(folder / SHARED_CHECKED_FILE) if folder else []:
        checked.update(entry["chunks"])
    return checked


def ledger(path: Path) -> list[dict]:
    """The whole lines of a record of checks; a line cut short by a killed run is no line."""
    entries = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        with contextlib.suppress(ValueError, TypeError):
            entry = json.loads(line)
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("check"), str)
                and isinstance(entry.get("chunks"), list)
            ):
                entries.append(entry)
    return entries


def unchecked_chunks(folder: Path, checks_dir: Path) -> list[Path]:
    """The chunks captured since the monitor's last checks: every one no check has read yet, oldest first."""
    checked = checked_chunks(checks_dir, folder)
    return [chunk for chunk in captured_chunks(folder) if f"{chunk.parent.name}/{chunk.name}" not in checked]


def readable(chunk: Path) -> bool:
    """Whether a chunk opens as a batch (a file copied in half, or damaged, does not)."""
    try:
        with np.load(chunk, allow_pickle=False) as arrays:
            return "images" in arrays.files
    except Exception:  # any unreadable file: not a batch
        return False


def mark_checked(checks_dir: Path, check_id: str, chunks: list[Path]) -> None:
    """Record that check `check_id` reads `chunks` (counted once the check's folder is written)."""
    append_entry(checks_dir / CHECKED_FILE, check_id, chunks)


def record_checked(folder: Path, check_id: str, chunks: list[Path]) -> None:
    """Record in the capture folder that check `check_id`, now written, read `chunks`."""
    append_entry(folder / SHARED_CHECKED_FILE, check_id, chunks)


def append_entry(path: Path, check_id: str, chunks: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"check": check_id, "chunks": [f"{chunk.parent.name}/{chunk.name}" for chunk in chunks]})
    with open(path, "a") as file:
        file.write(line + "\n")


def now() -> datetime:
    return datetime.now(UTC)
