"""The prediction service's captures: chunks written whole off the request path, the bounds per day and in total,
what the monitor has not checked yet, and what the labelling sheet reads back."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image

from pipeline.serving.captures import (
    Capture,
    TrafficRecorder,
    captured_chunks,
    chunk_count,
    mark_checked,
    read_for_labellers,
    readable,
    record_checked,
    unchecked_chunks,
)

DAY = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def capture(index: int, when: datetime = DAY) -> Capture:
    image = np.full((28, 28, 1), index % 256, np.uint8)
    thumbnail = np.full((100 + index % 20, 128), index % 256, np.uint8)
    probabilities = np.eye(10, dtype=np.float32)[index % 10]
    return Capture(image, thumbnail, f"photo-{index}.jpg", when, probabilities, float(index), index % 2 == 0, "v1")


def recorder(folder, **bounds) -> tuple[TrafficRecorder, dict]:
    counts = {"written": 0, "dropped": {}}

    def written(count):
        counts["written"] += count

    def dropped(reason, count):
        counts["dropped"][reason] = counts["dropped"].get(reason, 0) + count

    settings = {"per_day": 100, "total": 1000, "chunk": 4, "flush_seconds": 60.0} | bounds
    return TrafficRecorder(folder, on_written=written, on_dropped=dropped, **settings), counts


def recorded(folder, captures: list[Capture], **bounds) -> dict:
    """`captures` through a recorder started for them and closed after: what it counted."""
    writer, counts = recorder(folder, **bounds)
    writer.start()
    for one in captures:
        writer.offer(one)
    writer.close()
    return counts


def test_captures_are_written_in_whole_chunks_a_day_each_and_read_back(tmp_path):
    counts = recorded(tmp_path, [*(capture(index) for index in range(6)), capture(6, DAY + timedelta(days=1))])
    chunks = captured_chunks(tmp_path)
    assert [chunk.parent.name for chunk in chunks] == ["2026-12-01", "2026-12-01", "2026-12-02"]
    assert [chunk_count(chunk) for chunk in chunks] == [4, 2, 1] and counts["written"] == 7
    with np.load(chunks[0], allow_pickle=False) as arrays:
        assert arrays["images"].shape == (4, 28, 28, 1) and arrays["images"].dtype == np.uint8
        assert list(arrays["unfamiliar"]) == [True, False, True, False]
        assert arrays["probabilities"][3].argmax() == 3 and list(arrays["versions"]) == ["v1"] * 4
        assert arrays["times"][0].startswith("2026-12-01T09:30:00")
    thumbnails = [Image.open(io.BytesIO(data)) for data, _ in read_for_labellers(chunks[0])]
    assert [picture.size for picture in thumbnails] == [(128, 100), (128, 101), (128, 102), (128, 103)]
    assert [uploaded for _, uploaded in read_for_labellers(chunks[1])] == ["photo-4.jpg", "photo-5.jpg"]
    # Nothing else is left in the folder: no staging file of a chunk.
    assert sorted(path.name for path in (tmp_path / "2026-12-01").iterdir()) == sorted(c.name for c in chunks[:2])


def test_a_chunk_is_closed_after_its_flush_time_even_when_not_full(tmp_path):
    writer, _ = recorder(tmp_path, chunk=100, flush_seconds=0.3)
    writer.start()
    writer.offer(capture(0))
    deadline = time.monotonic() + 5
    while not captured_chunks(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [chunk_count(chunk) for chunk in captured_chunks(tmp_path)] == [1]
    writer.close()


def test_the_daily_bound_counts_every_replicas_chunks_and_drops_the_rest(tmp_path):
    recorded(tmp_path, [capture(index) for index in range(3)], per_day=5)
    counts = recorded(tmp_path, [capture(index) for index in range(4)], per_day=5)  # another replica, same folder
    assert sum(chunk_count(chunk) for chunk in captured_chunks(tmp_path)) == 5
    assert counts["dropped"] == {"daily limit": 2}


def test_the_total_bound_removes_the_oldest_days_first(tmp_path):
    days = [capture(index, DAY + timedelta(days=day)) for day in range(3) for index in range(3)]
    recorded(tmp_path, days, per_day=4, total=6)
    assert sorted({chunk.parent.name for chunk in captured_chunks(tmp_path)}) == ["2026-12-02", "2026-12-03"]


def test_a_full_queue_drops_captures_rather_than_wait(tmp_path):
    writer, counts = recorder(tmp_path, chunk=2)  # not started: nothing empties its queue of 4 * chunk
    started = time.perf_counter()
    for index in range(10):
        writer.offer(capture(index))
    assert time.perf_counter() - started < 0.5
    assert counts["dropped"] == {"writer behind": 2}


def test_the_monitor_reads_only_the_chunks_no_check_has_read(tmp_path):
    traffic, checks = tmp_path / "traffic", tmp_path / "checks"
    recorded(traffic, [capture(index) for index in range(4)], chunk=2)
    first = unchecked_chunks(traffic, checks)
    assert len(first) == 2
    mark_checked(checks, "check-1", first[:1])
    # Marked before the check runs: its chunks count as checked once the check's folder is written.
    assert unchecked_chunks(traffic, checks) == first
    (checks / "check-1").mkdir()
    (checks / "check-1" / "summary.json").write_text("{}")
    assert unchecked_chunks(traffic, checks) == first[1:]
    mark_checked(checks, "check-2", first[1:])  # a run killed during its check: no folder, the chunk stays new
    with open(checks / "traffic_checked.jsonl", "a") as ledger:
        ledger.write('{"check": "killed", "chun')  # a line cut short by a killed run marks nothing
    assert unchecked_chunks(traffic, checks) == first[1:]
    # A monitor on another machine, with checks of its own, reads the same folder: it skips what a finished check
    # recorded there.
    elsewhere = tmp_path / "other-machine-checks"
    assert unchecked_chunks(traffic, elsewhere) == first
    record_checked(traffic, "check-1", first[:1])
    assert unchecked_chunks(traffic, elsewhere) == first[1:]


def test_a_damaged_chunk_is_not_readable(tmp_path):
    recorded(tmp_path, [capture(index) for index in range(2)], chunk=2)
    [chunk] = captured_chunks(tmp_path)
    assert readable(chunk)
    chunk.write_bytes(chunk.read_bytes()[:200])  # copied in half
    assert not readable(chunk)
