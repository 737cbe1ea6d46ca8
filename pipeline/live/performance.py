"""Each model version's live figures, on its labelled random sample: accuracy by class, calibration, confusions, trend.

Hard cases (unfamiliar, least confident) are counted apart: they were chosen for being hard, so their accuracy says
what the model gets wrong, not how often.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from pipeline.evaluation.calibration import calibration_error
from pipeline.live.record import GROUPS, RANDOM
from pipeline.live.statistics import bootstrap_interval, wilson_interval


@dataclass(frozen=True)
class ClassFigures:
    name: str
    labels: int
    correct: int
    interval: tuple[float, float]


@dataclass(frozen=True)
class VersionFigures:
    version: str
    labels: int  # of the random sample
    correct: int
    interval: tuple[float, float]
    calibration_error: float
    calibration_interval: tuple[float, float]
    per_class: list[ClassFigures]  # by the label (a person's), so accuracy per class is each class's recall
    confusion: np.ndarray  # rows: label, columns: answer
    hard_cases: dict[str, tuple[int, int]]  # group: (labels, correct)
    first_answer: str
    last_answer: str

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labels if self.labels else None


def as_arrays(rows: pd.DataFrame, class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = {name: position for position, name in enumerate(class_names)}
    labels = rows["label"].map(index).to_numpy(dtype=int)
    answers = rows["predicted"].map(index).to_numpy(dtype=int)
    return labels, answers, rows["confidence"].astype(float).to_numpy()


def version_figures(rows: pd.DataFrame, version: str, class_names: tuple[str, ...]) -> VersionFigures:
    """The figures of `version` from the record of labels (every version's rows)."""
    mine = rows[rows["model_version"] == version]
    sample = mine[mine["group"] == RANDOM]
    labels, answers, confidence = as_arrays(sample, class_names)
    right = labels == answers
    per_class = [
        ClassFigures(
            name,
            int(np.sum(labels == k)),
            int(np.sum(right[labels == k])),
            wilson_interval(int(np.sum(right[labels == k])), int(np.sum(labels == k))),
        )
        for k, name in enumerate(class_names)
    ]
    confusion = np.zeros((len(class_names), len(class_names)), dtype=int)
    np.add.at(confusion, (labels, answers), 1)
    hard = {}
    for group in GROUPS[1:]:
        group_labels, group_answers, _ = as_arrays(mine[mine["group"] == group], class_names)
        hard[group] = (len(group_labels), int(np.sum(group_labels == group_answers)))
    return VersionFigures(
        version=version,
        labels=len(labels),
        correct=int(right.sum()),
        interval=wilson_interval(int(right.sum()), len(labels)),
        calibration_error=calibration_error(confidence, right.astype(float)),
        calibration_interval=bootstrap_interval(calibration_error, (confidence, right.astype(float))),
        per_class=per_class,
        confusion=confusion,
        hard_cases=hard,
        first_answer=str(mine["answered_at"].min()) if len(mine) else "",
        last_answer=str(mine["answered_at"].max()) if len(mine) else "",
    )


def versions_newest_first(rows: pd.DataFrame) -> list[str]:
    """Every version that answered a labelled picture, the one with the latest answer first."""
    latest = rows.groupby("model_version")["answered_at"].max().sort_values(ascending=False)
    return list(latest.index)


def in_window(rows: pd.DataFrame, version: str, days: int) -> pd.DataFrame:
    """`version`'s random-sample rows answered in the `days` days up to its latest labelled answer. Counting back
    from the record's own latest answer, not from today, keeps the verdict a function of the record alone."""
    sample = rows[(rows["model_version"] == version) & (rows["group"] == RANDOM)]
    if sample.empty:
        return sample
    times = pd.to_datetime(sample["answered_at"], utc=True, format="ISO8601")
    return sample[times > times.max() - timedelta(days=days)]


def daily_trend(rows: pd.DataFrame) -> pd.DataFrame:
    """Per version and day answered: random-sample labels, accuracy and its 95% interval."""
    sample = rows[rows["group"] == RANDOM].copy()
    sample["day"] = sample["answered_at"].str[:10]
    sample["right"] = sample["label"] == sample["predicted"]
    trend = []
    for (version, day), part in sample.groupby(["model_version", "day"]):
        low, high = wilson_interval(int(part["right"].sum()), len(part))
        trend.append(
            {
                "model_version": version,
                "day": day,
                "labels": len(part),
                "accuracy": part["right"].mean(),
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(trend, columns=["model_version", "day", "labels", "accuracy", "low", "high"])
