"""The record of live labels (live.labels_file): one CSV row per labelled picture, which git can carry.

Each row: the picture ("<day>/<chunk>[<index>]" of the captured traffic), the group it was sent to labelling in, the
model version that answered it and when, its answer and confidence, the label a person gave, and when and from which
sheet the label came. Recording a sheet again adds nothing; a picture already labelled otherwise is refused, never
overwritten; the record is replaced in one rename.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.files import atomic_path

# The groups a picture is sent to labelling in: only the random sample estimates accuracy.
RANDOM, UNFAMILIAR, LEAST_CONFIDENT = "random", "unfamiliar", "least confident"
GROUPS = (RANDOM, UNFAMILIAR, LEAST_CONFIDENT)
# What the service answered, per picture of a sheet (its answers.csv), then what labelling adds.
ANSWER_COLUMNS = ("file", "picture", "group", "model_version", "answered_at", "predicted", "confidence")
LABEL_COLUMNS = (*ANSWER_COLUMNS[1:], "label", "labelled_at", "sheet", "file")


def check_record(path: Path, record: pd.DataFrame, class_names: tuple[str, ...]) -> None:
    """Every row's classes, group, confidence and time readable, or a PipelineError naming the first row that is not
    (a record edited by hand, or merged by git with a conflict left in)."""
    for line, row in enumerate(record.itertuples(index=False), start=2):
        problem = None
        if row.group not in GROUPS:
            problem = f"group {row.group!r} is not one of {', '.join(GROUPS)}"
        elif row.label not in class_names or row.predicted not in class_names:
            problem = f"label {row.label!r} or answer {row.predicted!r} is not a class name"
        else:
            try:
                float(row.confidence), datetime.fromisoformat(row.answered_at)
            except ValueError:
                problem = f"confidence {row.confidence!r} or time {row.answered_at!r} does not read"
        if problem:
            raise PipelineError(f"{path}: line {line} ({row.picture}): {problem}")


def read_labels(path: Path) -> pd.DataFrame:
    """The record of labels (empty when there is none yet)."""
    if not Path(path).is_file():
        return pd.DataFrame(columns=LABEL_COLUMNS)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in LABEL_COLUMNS if column not in table.columns]
    if missing:
        raise PipelineError(f"{path}: not a record of live labels (missing the columns {', '.join(missing)})")
    return table[list(LABEL_COLUMNS)]


def record_labels(path: Path, labelled: pd.DataFrame) -> pd.DataFrame:
    """Labelled rows (LABEL_COLUMNS) added to the record at `path`; returns those that were new. A picture the record
    labels otherwise is a PipelineError, and the record is left as it was."""
    record = read_labels(path)
    known = dict(zip(record["picture"], zip(record["label"], record["sheet"], strict=True), strict=True))
    new = []
    for row in labelled.itertuples(index=False):
        if row.picture not in known:
            new.append(row)
            continue
        label, from_sheet = known[row.picture]
        if label != row.label:
            raise PipelineError(
                f"{path}: {row.picture} ({row.file} of {row.sheet}) is already labelled {label!r} from {from_sheet}, "
                f"now {row.label!r}; nothing recorded"
            )
    added = pd.DataFrame(new, columns=LABEL_COLUMNS)
    if new:
        updated = pd.concat([record, added], ignore_index=True)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as staging:
            updated.to_csv(staging, index=False)
    return added
