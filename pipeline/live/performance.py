"""Each model's live figures, on its labelled random sample: accuracy by class, calibration, confusions, trend.

A model is the model part of a version (pipeline/model/version.py): a new unfamiliarity scorer alone changes no
answer, so it starts no new count. Hard cases (unfamiliar, least confident) are counted apart: they were chosen for
being hard, so their accuracy says what the model gets wrong, not how often.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from pipeline.evaluation.calibration import calibration_error
from pipeline.live.record import GROUPS, RANDOM
from pipeline.live.statistics import bootstrap_interval, wilson_interval
from pipeline.model.version import model_of

CHANCE_DRAWS = 200  # simulated perfectly calibrated samples, for the calibration error of chance alone


@dataclass(frozen=True)
class ClassFigures:
    name: str
    labels: int
    correct: int
    interval: tuple[float, float]


@dataclass(frozen=True)
class ModelFigures:
    model: str
    labels: int  # of the random sample
    correct: int
    interval: tuple[float, float]
    calibration_error: float
    calibration_interval: tuple[float, float]
    calibration_by_chance: float  # what a perfectly calibrated model shows on as many labels: the error's floor
    per_class: list[ClassFigures]  # by the label (a person's), so accuracy per class is each class's recall
    confusion: np.ndarray  # rows: label, columns: answer
    hard_cases: dict[str, tuple[int, int]]  # group: (labels, correct)
    first_answer: str
    last_answer: str

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labels if self.labels else None


def of_model(rows: pd.DataFrame, model: str) -> pd.DataFrame:
    return rows[rows["model_version"].map(model_of) == model]


def random_sample(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the random sample: the only ones that measure accuracy."""
    return rows[rows["group"] == RANDOM]


def as_arrays(rows: pd.DataFrame, class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = {name: position for position, name in enumerate(class_names)}
    labels = rows["label"].map(index).to_numpy(dtype=int)
    answers = rows["predicted"].map(index).to_numpy(dtype=int)
    return labels, answers, rows["confidence"].astype(float).to_numpy()


def calibration_by_chance(confidence: np.ndarray, seed: int = 0) -> float:
    """The mean calibration error of a perfectly calibrated model with these confidences (each answer right with
    probability its confidence): on a few hundred labels, binning alone shows a few points."""
    if len(confidence) == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.random((CHANCE_DRAWS, len(confidence))) < confidence
    return float(np.mean([calibration_error(confidence, draw.astype(float)) for draw in draws]))


def model_figures(rows: pd.DataFrame, model: str, class_names: tuple[str, ...]) -> ModelFigures:
    """The figures of `model` from the record of labels (every model's rows)."""
    mine = of_model(rows, model)
    labels, answers, confidence = as_arrays(random_sample(mine), class_names)
    right = labels == answers
    per_class = []
    for index, name in enumerate(class_names):
        of_class = labels == index
        correct = int(np.sum(right[of_class]))
        per_class.append(
            ClassFigures(name, int(of_class.sum()), correct, wilson_interval(correct, int(of_class.sum())))
        )
    confusion = np.zeros((len(class_names), len(class_names)), dtype=int)
    np.add.at(confusion, (labels, answers), 1)
    hard = {}
    for group in GROUPS[1:]:
        group_labels, group_answers, _ = as_arrays(mine[mine["group"] == group], class_names)
        hard[group] = (len(group_labels), int(np.sum(group_labels == group_answers)))
    return ModelFigures(
        model=model,
        labels=len(labels),
        correct=int(right.sum()),
        interval=wilson_interval(int(right.sum()), len(labels)),
        calibration_error=calibration_error(confidence, right.astype(float)),
        calibration_interval=bootstrap_interval(calibration_error, (confidence, right.astype(float))),
        calibration_by_chance=calibration_by_chance(confidence),
        per_class=per_class,
        confusion=confusion,
        hard_cases=hard,
        first_answer=str(mine["answered_at"].min()) if len(mine) else "",
        last_answer=str(mine["answered_at"].max()) if len(mine) else "",
    )


def models_newest_first(rows: pd.DataFrame) -> list[str]:
    """Every model that answered a labelled picture, the one with the latest answer first."""
    latest = rows.groupby(rows["model_version"].map(model_of))["answered_at"].max().sort_values(ascending=False)
    return list(latest.index)


def in_window(rows: pd.DataFrame, model: str, days: int) -> pd.DataFrame:
    """`model`'s random-sample rows answered in the `days` days up to its latest labelled answer. Counting back
    from the record's own latest answer, not from today, keeps the verdict a function of the record alone."""
    sample = random_sample(of_model(rows, model))
    if sample.empty:
        return sample
    times = pd.to_datetime(sample["answered_at"], utc=True, format="ISO8601")
    return sample[times > times.max() - timedelta(days=days)]


def daily_trend(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model and day answered: random-sample labels, accuracy and its 95% interval."""
    sample = random_sample(rows).copy()
    sample["model"] = sample["model_version"].map(model_of)
    sample["day"] = sample["answered_at"].str[:10]
    sample["right"] = sample["label"] == sample["predicted"]
    trend = []
    for (model, day), part in sample.groupby(["model", "day"]):
        low, high = wilson_interval(int(part["right"].sum()), len(part))
        trend.append(
            {
                "model": model,
                "day": day,
                "labels": len(part),
                "accuracy": part["right"].mean(),
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(trend, columns=["model", "day", "labels", "accuracy", "low", "high"])
