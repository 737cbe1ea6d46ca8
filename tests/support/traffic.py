"""Live traffic without a service: chunks as fashion-serve captures them (pipeline/serving/captures.py), for the live
sampling and the drift monitor, and records of live labels as fashion-live writes them."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.live.record import LABEL_COLUMNS
from pipeline.serving.captures import Capture, write_chunk


def write_traffic(
    folder: Path,
    images: np.ndarray,
    probabilities: np.ndarray,
    start: datetime,
    version: str = "model-aaaaaaaaaaaa+scorer-bbbbbbbbbbbb",
    unfamiliar: np.ndarray | None = None,
    chunk: int = 100,
    tag: str = "test",
) -> list[Path]:
    """The pictures as chunks of `chunk`, one picture a second from `start` (a chunk holds one day's pictures)."""
    unfamiliar = np.zeros(len(images), bool) if unfamiliar is None else unfamiliar
    captures = [
        Capture(
            image=images[index],
            thumbnail=np.repeat(np.repeat(images[index][..., 0], 2, axis=0), 2, axis=1),
            file=f"upload-{index:05d}.png",
            time=start + timedelta(seconds=index),
            probabilities=probabilities[index],
            unfamiliarity=float(unfamiliar[index]) + float(index % 7) / 10,
            unfamiliar=bool(unfamiliar[index]),
            version=version,
        )
        for index in range(len(images))
    ]
    paths = []
    for first in range(0, len(captures), chunk):
        part = [item for item in captures[first : first + chunk] if item.time.date() == captures[first].time.date()]
        rest = captures[first + len(part) : first + chunk]
        for piece in (part, rest):
            if piece:
                name = f"{piece[0].time:%H%M%S}-{tag}-{len(paths):06d}-n{len(piece)}.npz"
                path = folder / f"{piece[0].time:%Y-%m-%d}" / name
                write_chunk(path, piece)
                paths.append(path)
    return paths


def labelled_record(
    answers: pd.DataFrame,
    version: str,
    start: datetime,
    days: int,
    per_day: int,
    mislabelled: float = 0.0,
    group: str = "random",
    seed: int = 0,
) -> pd.DataFrame:
    """A record of live labels (pipeline/live/record.py) as `fashion-live label` writes it: `per_day` pictures a day
    for `days` days, drawn from `answers` (the evaluate stage's predictions.csv: actual, predicted), each labelled
    with its actual class, except a `mislabelled` share given another class: the model's answers unchanged, its
    accuracy lower by about that share."""
    rng = np.random.default_rng(seed)
    total = days * per_day
    drawn = answers.iloc[rng.integers(0, len(answers), total)].reset_index(drop=True)
    classes = sorted(set(answers["actual"]))
    labels = [
        rng.choice([name for name in classes if name != actual]) if rng.random() < mislabelled else actual
        for actual in drawn["actual"]
    ]
    times = [start + timedelta(days=index // per_day, seconds=index % per_day) for index in range(total)]
    return pd.DataFrame(
        {
            "picture": [f"{time:%Y-%m-%d}/{version[6:12]}-{index}.npz[0]" for index, time in enumerate(times)],
            "group": group,
            "model_version": version,
            "answered_at": [time.isoformat() for time in times],
            "predicted": drawn["predicted"],
            "confidence": np.round(rng.uniform(0.5, 1.0, total), 4),
            "label": labels,
            "labelled_at": (start + timedelta(days=days)).isoformat(),
            "sheet": "live-simulated",
            "file": [f"{index:05d}.png" for index in range(total)],
        },
        columns=LABEL_COLUMNS,
    )
