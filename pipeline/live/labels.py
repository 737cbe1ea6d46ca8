"""Labels coming back: a filled live labelling sheet checked whole, each label joined to what the service answered.

A sheet is taken whole or not at all: every problem is found before anything is recorded (pipeline/live/record.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipeline.accept.incoming import class_index, labels_records
from pipeline.errors import PipelineError
from pipeline.live.record import ANSWER_COLUMNS, LABEL_COLUMNS
from pipeline.live.sampling import SHEET_FILE
from pipeline.live.sheets import ANSWERS_FILE

MOST_PROBLEMS_SHOWN = 3


@dataclass(frozen=True)
class LabelledSheet:
    rows: pd.DataFrame  # LABEL_COLUMNS, one per labelled picture
    unlabelled: int  # pictures of the sheet still without a label


def read_answers(folder: Path) -> pd.DataFrame:
    path = folder / ANSWERS_FILE
    if not path.is_file():
        raise PipelineError(
            f"{folder}: not a live labelling sheet (no {ANSWERS_FILE}); `fashion-live sample` writes them, "
            "fashion-accept takes other labelled folders"
        )
    answers = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in ANSWER_COLUMNS if column not in answers.columns]
    if missing:
        raise PipelineError(f"{path}: needs the columns {', '.join(ANSWER_COLUMNS)}; missing {', '.join(missing)}")
    return answers.set_index("file")


def read_labelled_sheet(folder: Path, class_names: tuple[str, ...]) -> LabelledSheet:
    """The sheet's labelled rows; a PipelineError naming every problem (up to a few) when any row has one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PipelineError(f"{folder}: no such folder")
    answers, sheet = read_answers(folder), folder / SHEET_FILE
    if not sheet.is_file():
        raise PipelineError(f"{sheet}: not found")
    problems, rows, seen, unlabelled = [], [], {}, 0
    for line, record in labels_records(sheet):
        file, text = ((record.get(column) or "").strip() for column in ("file", "label"))
        where = f"line {line}" + (f" ({file})" if file else "")
        if not file:
            problems.append(f"{where}: no file name")
        elif file in seen:
            problems.append(f"{where}: labelled twice, on lines {seen[file]} and {line}")
        elif file not in answers.index:
            problems.append(f"{where}: not a picture of this sheet ({ANSWERS_FILE} does not list it)")
        elif not (folder / file).is_file():
            problems.append(f"{where}: the picture is missing from the sheet's folder")
        elif text and class_index(text, class_names) is None:
            problems.append(f"{where}: unknown class {text!r} (a class name, such as {class_names[0]!r}, or 0-9)")
        seen.setdefault(file, line)
        if not text:
            unlabelled += 1
        elif not problems:
            rows.append(
                {**answers.loc[file].to_dict(), "label": class_names[class_index(text, class_names)], "file": file}
            )
    if problems:
        more = f" (and {len(problems) - MOST_PROBLEMS_SHOWN} more)" if len(problems) > MOST_PROBLEMS_SHOWN else ""
        raise PipelineError(f"{sheet}: " + "; ".join(problems[:MOST_PROBLEMS_SHOWN]) + more + "; nothing recorded")
    labelled_at = datetime.now(UTC).isoformat(timespec="seconds")
    table = pd.DataFrame(rows, columns=[column for column in LABEL_COLUMNS if column not in ("labelled_at", "sheet")])
    table["labelled_at"], table["sheet"] = labelled_at, folder.resolve().name
    return LabelledSheet(table[list(LABEL_COLUMNS)], unlabelled)
