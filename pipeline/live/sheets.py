"""A live labelling sheet: the picked pictures as a blind labelling sheet, and beside it what the service answered.

    <live.sheets_folder>/live-<time>/labels.csv       file, label (to fill in), source, thumbnail, uploaded_as
                                    /answers.csv      per file: picture, group, model_version, answered_at,
                                                      predicted, confidence (what fashion-live label records)
                                    /<rank>_<name>.png, thumbnails/

labels.csv is the labelling sheet the drift monitor writes (pipeline/accept/labelling.py), blind and shuffled, so
neither the model's answer nor the group leans on the labeller; fashion-accept reads the folder as a batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.accept.labelling import Captured, write_labelling_sheet
from pipeline.files import atomic_path
from pipeline.live.record import ANSWER_COLUMNS
from pipeline.live.sampling import (
    SHEET_FILE,
    Answered,
    draw_key,
    pick,
    read_answered,
    record_sampled,
    record_written,
    sent_before,
    unsampled_chunks,
)

ANSWERS_FILE = "answers.csv"


@dataclass(frozen=True)
class Picked:
    """A picture picked for labelling: its name, its place among its day's pictures, its group."""

    picture: str
    index: int
    group: str
    day: Answered


@dataclass(frozen=True)
class WrittenSheet:
    folder: Path | None  # None when nothing was picked
    groups: Counter  # pictures per group

    def described(self) -> str:
        groups = ", ".join(f"{count} {group}" for group, count in self.groups.items())
        return f"{sum(self.groups.values())} pictures to label ({groups}) in {self.folder / SHEET_FILE}"


@dataclass(frozen=True)
class NewTraffic:
    chunks: list[Path]  # the chunks sampled (none: no new traffic)
    unreadable: list[Path]  # left out: damaged, or copied in half
    sheet: WrittenSheet | None  # None without chunks


def sheet_of_new_traffic(
    traffic: Path, sheets: Path, params, class_names: tuple[str, ...], include_today: bool
) -> NewTraffic:
    """A sheet of the chunks no sheet has sampled: of the closed days (UTC), and today's so far if `include_today`."""
    today = None if include_today else f"{datetime.now(UTC):%Y-%m-%d}"
    chunks, unreadable = unsampled_chunks(traffic, sheets, before_day=today)
    sheet = write_live_sheet(chunks, params, class_names, sheets) if chunks else None
    return NewTraffic(chunks, unreadable, sheet)


def by_day(chunks: list[Path]) -> dict[str, list[Path]]:
    days: dict[str, list[Path]] = {}
    for chunk in chunks:
        days.setdefault(chunk.parent.name, []).append(chunk)
    return days


def write_live_sheet(chunks: list[Path], params, class_names: tuple[str, ...], sheets: Path) -> WrittenSheet:
    """A sheet of the pictures picked from `chunks` (params: LiveParams), recorded in the sheets' ledger."""
    already = sent_before(sheets)
    picked: dict[str, Counter] = {}
    parts: list[Picked] = []
    for day, day_chunks in by_day(chunks).items():
        answered = read_answered(day_chunks)
        chosen = pick(answered, params, already.get(day, Counter()))
        picked[day] = Counter(chosen.values())
        parts += [Picked(answered.pictures[index], index, group, answered) for index, group in chosen.items()]
    if not parts:
        record_sampled(sheets, None, chunks, picked)
        return WrittenSheet(None, Counter())
    # Shuffled, so a labeller meets the groups mixed and the hardest pictures are not all together.
    parts.sort(key=lambda part: draw_key(params.seed + 1, part.picture))
    name = f"live-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    while (sheets / name).exists():  # two sheets in one second: never in place of the other
        name += "-next"
    record_sampled(sheets, name, chunks, picked)  # counted once the sheet below is there
    with atomic_path(sheets / name) as folder:
        folder.mkdir(parents=True)
        write_parts(parts, class_names, folder)
    record_written(sheets, name)
    return WrittenSheet(sheets / name, sum(picked.values(), Counter()))


def write_parts(parts: list[Picked], class_names: tuple[str, ...], folder: Path) -> None:
    names = [part.picture for part in parts]
    images = np.stack([part.day.images[part.index] for part in parts])
    probabilities = np.stack([part.day.probabilities[part.index] for part in parts])
    captured = {
        part.picture: Captured(part.day.thumbnails[part.index], part.day.uploaded_as[part.index]) for part in parts
    }
    sheet = write_labelling_sheet(images, names, probabilities, class_names, folder, captured, blind=True)
    answers = pd.DataFrame(
        {
            "file": sheet["file"],
            "picture": names,
            "group": [part.group for part in parts],
            "model_version": [str(part.day.versions[part.index]) for part in parts],
            "answered_at": [str(part.day.times[part.index]) for part in parts],
            "predicted": [class_names[int(row.argmax())] for row in probabilities],
            "confidence": np.round(probabilities.max(axis=1).astype(float), 4),
        },
        columns=ANSWER_COLUMNS,
    )
    answers.to_csv(folder / ANSWERS_FILE, index=False)
