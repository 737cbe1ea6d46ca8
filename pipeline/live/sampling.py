"""What of the captured traffic goes to labelling: a random sample, kept apart, and hard cases.

Only the random sample estimates live accuracy without bias: each captured picture is drawn when a seeded hash of its
name falls under live.sample_rate, and a day past live.sample_per_day keeps the drawn pictures of lowest hash, so the
sample is a uniform draw of the day's pictures either way. That needs the whole day: a day is sampled once it has
closed (UTC, as the capture folders are named), unless asked for sooner, when pictures captured after the day's
bound was filled are not drawn. Where the bound binds, each day counts alike in the window's accuracy, whatever its
traffic. The hard cases, shown apart because they are chosen for being hard, are every picture flagged unfamiliar
(the most unfamiliar first, at most live.unfamiliar_per_day a day) and the live.least_confident_per_day least
confident others. A picture is in one group only.

Which chunks have been sampled is a ledger beside the sheets (sampled.jsonl): a line per sheet before it is written,
and a second once it is. A sheet counts when its second line is there, or its folder is (a run killed between the
rename and the second line): a run killed before samples those chunks again, with the same draw, and a sheet
removed or moved once written is never drawn again.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.live.record import LEAST_CONFIDENT, RANDOM, UNFAMILIAR
from pipeline.serving.captures import captured_chunks, for_labellers, readable

LEDGER = "sampled.jsonl"
SHEET_FILE = "labels.csv"


@dataclass(frozen=True)
class Answered:
    """A day's captured pictures, as the service answered them, in chunk order."""

    pictures: list[str]  # "<day>/<chunk>[<index>]"
    images: np.ndarray
    probabilities: np.ndarray
    unfamiliarity: np.ndarray
    unfamiliar: np.ndarray
    versions: np.ndarray
    times: np.ndarray
    thumbnails: list[bytes]
    uploaded_as: list[str]


def picture_name(chunk: Path, index: int) -> str:
    return f"{chunk.parent.name}/{chunk.name}[{index}]"


def draw_key(seed: int, picture: str) -> float:
    """A picture's place in the random draw, in [0, 1): the same for the same seed and picture on any machine."""
    digest = hashlib.sha256(f"{seed}:{picture}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def read_answered(chunks: list[Path]) -> Answered:
    parts = {name: [] for name in ("images", "probabilities", "unfamiliarity", "unfamiliar", "versions", "times")}
    pictures, kept = [], []
    for chunk in chunks:
        with np.load(chunk, allow_pickle=False) as arrays:
            for name, values in parts.items():
                values.append(arrays[name])
            pictures += [picture_name(chunk, index) for index in range(len(arrays["images"]))]
            kept += for_labellers(arrays)
    stacked = {name: np.concatenate(values) for name, values in parts.items()}
    return Answered(pictures, **stacked, thumbnails=[k[0] for k in kept], uploaded_as=[k[1] for k in kept])


def pick(day: Answered, params, already: Counter) -> dict[int, str]:
    """One day's pictures to label, by index, with their group; `already`: the day's pictures per group sent before."""
    chosen: dict[int, str] = {}
    free = np.ones(len(day.pictures), bool)

    def take(candidates: np.ndarray, group: str, bound: int) -> None:
        """The first free `candidates`, in their order, up to what is left of the day's bound for `group`."""
        room = max(0, bound - already[group])
        for index in candidates[free[candidates]][:room]:
            chosen[int(index)], free[index] = group, False

    keys = np.array([draw_key(params.seed, picture) for picture in day.pictures])
    drawn = np.flatnonzero(keys < params.sample_rate)
    take(drawn[np.argsort(keys[drawn], kind="stable")], RANDOM, params.sample_per_day)
    flagged = np.flatnonzero(day.unfamiliar)
    take(flagged[np.argsort(-day.unfamiliarity[flagged], kind="stable")], UNFAMILIAR, params.unfamiliar_per_day)
    confidence = day.probabilities.max(axis=1)
    take(np.argsort(confidence, kind="stable"), LEAST_CONFIDENT, params.least_confident_per_day)
    return chosen


def ledger_lines(sheets: Path) -> list[dict]:
    path = sheets / LEDGER
    lines = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a killed run
    return lines


def ledger_entries(sheets: Path) -> list[dict]:
    """The ledger's draws whose sheet was written."""
    lines = ledger_lines(sheets)
    written = {line.get("written") for line in lines}
    return [
        line
        for line in lines
        if "chunks" in line
        # A draw that picked nothing has no sheet to wait for.
        and (line["sheet"] is None or line["sheet"] in written or (sheets / line["sheet"] / SHEET_FILE).is_file())
    ]


def unsampled_chunks(traffic: Path, sheets: Path, before_day: str | None) -> tuple[list[Path], list[Path]]:
    """Chunks of the days before `before_day` (YYYY-MM-DD; None: every day) no written sheet has sampled, oldest
    first; and those of them that do not open (damaged, or copied in half), left out."""
    done = {chunk for entry in ledger_entries(sheets) for chunk in entry["chunks"]}
    waiting = [
        chunk
        for chunk in captured_chunks(traffic)
        if f"{chunk.parent.name}/{chunk.name}" not in done and (before_day is None or chunk.parent.name < before_day)
    ]
    unreadable = [chunk for chunk in waiting if not readable(chunk)]
    return [chunk for chunk in waiting if chunk not in unreadable], unreadable


def sent_before(sheets: Path) -> dict[str, Counter]:
    """Pictures sent to labelling per day and group, by the written sheets."""
    counts: dict[str, Counter] = {}
    for entry in ledger_entries(sheets):
        for day, groups in entry["picked"].items():
            counts.setdefault(day, Counter()).update(groups)
    return counts


def record_written(sheets: Path, sheet: str) -> None:
    """The ledger's second line of a sheet: written, so its chunks are sampled for good."""
    with open(sheets / LEDGER, "a") as file:
        file.write(json.dumps({"written": sheet}) + "\n")


def record_sampled(sheets: Path, sheet: str | None, chunks: list[Path], picked: dict[str, Counter]) -> None:
    """The ledger line of a draw, written before its sheet: it counts once the sheet is written."""
    sheets.mkdir(parents=True, exist_ok=True)
    line = {
        "sheet": sheet,
        "chunks": [f"{chunk.parent.name}/{chunk.name}" for chunk in chunks],
        "picked": {day: dict(groups) for day, groups in picked.items()},
    }
    with open(sheets / LEDGER, "a") as file:
        file.write(json.dumps(line) + "\n")
