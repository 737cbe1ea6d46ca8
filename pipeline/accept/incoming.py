"""Labelled batches dropped in data/incoming/<batch>/, read into one row per labelled image for the acceptance gate.

A batch folder holds one of:
- pictures (pipeline/pictures/batches.py's PICTURE_SUFFIXES) and `labels.csv`, whose header names at least the
  columns `file` and `label` (others, such as a labelling sheet's `predicted` and `confidence`, are ignored); a
  label is a class name in any case (`ankle boot`) or a class index (`9`);
- one .npz with an `images` and a `labels` array;
- one IDX images file (`*-images-idx3-ubyte`) with its labels file (`*-labels-idx1-ubyte`).
Rows of labels.csv with a file but no label yet (a labelling sheet labelled from the top) are left out, and so are
pictures it does not list. Pictures are converted as predict and drift convert them. A row's problems (a missing
file, a picture that does not convert, an unknown label) are kept on the row, not raised, so that the suite judges
and reports them all; what makes the batch unreadable as a whole (no labels.csv columns, an unreadable array) is a
PipelineError.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.pictures.batches import PICTURE_SUFFIXES, SIDE, load_batch, read_picture

LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("file", "label")


@dataclass
class IncomingRow:
    file: str  # as labels.csv names it, `<array file>[i]` for arrays, or `labels.csv line N` when it names none
    label_text: str  # the label as written
    label: int | None  # the class index; None when the label names no class
    names_file: bool = True  # False for a labels.csv row with a label but no file name
    exists: bool | None = True  # None when the row names no file
    converts: bool | None = True  # None when there is nothing to convert
    problems: list[str] = field(default_factory=list)  # what is wrong with the row, for the rejection message


@dataclass
class IncomingBatch:
    name: str
    folder: Path
    rows: list[IncomingRow]
    images: np.ndarray  # uint8 (N, 28, 28, 1), one per row; blank where the row has no image
    from_pictures: bool  # pictures are compared with the test images converted as pictures too
    unlisted: list[str]  # pictures in the folder that labels.csv does not name: left out
    unlabelled: list[str]  # pictures labels.csv names without a label (a sheet labelled from the top): left out

    @property
    def has_image(self) -> np.ndarray:
        return np.array([bool(row.converts) for row in self.rows], dtype=bool)


def read_incoming(folder: Path, class_names: tuple[str, ...], invert: str, crop: bool) -> IncomingBatch:
    """The batch in `folder`, one row per labelled image; a PipelineError when no labelled images can be found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PipelineError(f"{folder}: no such folder")
    name = folder.resolve().name
    if (folder / LABELS_FILE).is_file():
        return read_pictures(folder, name, class_names, invert, crop)
    data_files = sorted(path for path in folder.iterdir() if path.suffix == ".npz" or "idx3" in path.name)
    if len(data_files) == 1:
        return read_arrays(data_files[0], name, class_names, invert)
    if data_files:
        found = ", ".join(path.name for path in data_files)
        raise PipelineError(f"{folder}: several batch files ({found}); one .npz or IDX pair per batch folder")
    if any(path.suffix.lower() in PICTURE_SUFFIXES for path in folder.iterdir()):
        raise PipelineError(f"{folder}: pictures but no {LABELS_FILE} (with the columns file and label)")
    raise PipelineError(f"{folder}: empty batch (no {LABELS_FILE} with pictures, .npz or IDX images file)")


def read_pictures(folder: Path, name: str, class_names: tuple[str, ...], invert: str, crop: bool) -> IncomingBatch:
    rows, images, unlabelled = [], [], []
    for line, record in labels_records(folder / LABELS_FILE):
        file, label_text = ((record.get(column) or "").strip() for column in REQUIRED_COLUMNS)
        if not label_text:  # not labelled yet; a row without a file either says nothing
            unlabelled += [file] if file else []
            continue
        row, image = picture_row(folder, line, file, class_index(label_text, class_names), label_text, invert, crop)
        rows.append(row)
        images.append(image)
    listed = {row.file for row in rows} | set(unlabelled)
    unlisted = sorted(
        path.name for path in folder.iterdir() if path.suffix.lower() in PICTURE_SUFFIXES and path.name not in listed
    )
    stacked = np.stack(images) if images else np.zeros((0, SIDE, SIDE, 1), dtype=np.uint8)
    return IncomingBatch(name, folder, rows, stacked, from_pictures=True, unlisted=unlisted, unlabelled=unlabelled)


def labels_records(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) for each data row of labels.csv, with the column names lower-cased."""
    try:
        # utf-8-sig: a spreadsheet's CSV export often starts with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [column.strip().lower() for column in reader.fieldnames or []]
            reader.fieldnames = columns
            # Blank lines are skipped by the reader; a row of empty cells (a spreadsheet's empty rows) here.
            records = [(reader.line_num, record) for record in reader if any(_cells(record))]
    except (UnicodeDecodeError, csv.Error) as error:
        raise PipelineError(f"{path}: not a UTF-8 CSV file ({error})") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise PipelineError(f"{path}: needs the columns {' and '.join(REQUIRED_COLUMNS)}, found {columns or 'none'}")
    return records


def _cells(record: dict) -> list[str]:
    return [value.strip() for value in record.values() if isinstance(value, str) and value.strip()]


def picture_row(
    folder: Path, line: int, file: str, label: int | None, label_text: str, invert: str, crop: bool
) -> tuple[IncomingRow, np.ndarray]:
    """A labelled row of labels.csv and its picture converted (blank when there is none)."""
    row = IncomingRow(file or f"{LABELS_FILE} line {line}", label_text, label)
    if row.label is None:
        row.problems.append(f"unknown class {label_text!r}")
    blank = np.zeros((SIDE, SIDE, 1), dtype=np.uint8)
    if not file:
        row.names_file, row.exists, row.converts = False, None, None
        row.problems.insert(0, "no file name")
        return row, blank
    path = folder / file
    # A name reaching outside the batch folder is treated as missing: the batch is what the folder holds.
    if Path(file).is_absolute() or ".." in Path(file).parts or not path.is_file():
        row.exists, row.converts = False, None
        row.problems.append("no such file in the batch folder")
        return row, blank
    try:
        return row, read_picture(path, invert, crop)
    except PipelineError as error:
        row.converts = False
        row.problems.append(str(error).removeprefix(f"{path}: "))
        return row, blank


def class_index(text: str, class_names: tuple[str, ...]) -> int | None:
    """The class a label names: a class name in any case, or a class index; None for anything else."""
    by_name = {name.lower(): index for index, name in enumerate(class_names)}
    if text.lower() in by_name:
        return by_name[text.lower()]
    if text.isascii() and text.isdigit() and int(text) < len(class_names):
        return int(text)
    return None


def read_arrays(path: Path, name: str, class_names: tuple[str, ...], invert: str) -> IncomingBatch:
    batch = load_batch(path, invert)
    if batch.labels is None:
        raise PipelineError(
            f"{path}: no labels (an .npz needs a 'labels' array, an IDX images file its -labels-idx1- file)"
        )
    labels = np.asarray(batch.labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise PipelineError(f"{path}: labels must be integers, got {labels.dtype} {labels.shape}")
    rows = [
        IncomingRow(file, str(label), int(label) if 0 <= label < len(class_names) else None)
        for file, label in zip(batch.names, labels.tolist(), strict=True)
    ]
    for row in rows:
        if row.label is None:
            row.problems.append(f"unknown class {row.label_text!r}")
    return IncomingBatch(name, path.parent, rows, batch.images, from_pictures=False, unlisted=[], unlabelled=[])
