"""The acceptance gate: a labelled batch (pipeline/accept/incoming.py) as a table of one row per labelled image, judged
by the gate's Great Expectations suite (pipeline/accept/suite.py); the pool gains the batch
(pipeline/accept/pool_append.py) only when every expectation holds. Each batch gets its Data Docs and a summary,
accepted or not."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.accept.incoming import LABELS_FILE, IncomingBatch, read_incoming
from pipeline.accept.near_duplicates import Reference, nearest_matches, reference
from pipeline.accept.pool_append import add_to_pool, check_new_batch, checksum, pool_images
from pipeline.accept.suite import build_checks, rejection_line, run_checks
from pipeline.data.pool import SOURCE_NAME
from pipeline.data.sources import ORIGINAL_SOURCE
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.lineage import git_revision
from pipeline.params import param
from pipeline.pictures.batches import arrays_as_pictures
from pipeline.pictures.options import INVERT_CHOICES
from pipeline.reports.offline_docs import make_offline


@dataclass(frozen=True)
class AcceptParams:
    SECTION: ClassVar[str] = "accept"
    invert: str = param("choice", options=INVERT_CHOICES)
    crop: bool = param("flag")
    near_duplicate_similarity: float = param("number", above=0, below=1)
    near_duplicate_ratio: float = param("number", minimum=0, below=1)
    max_test_duplicate_share: float = param("number", minimum=0, below=1)
    max_duplicate_share: float = param("number", minimum=0, below=1)
    wait_minutes: float = param("number", minimum=0)


@dataclass
class Gate:
    """What every batch of one run is judged against and where its results go."""

    params: AcceptParams
    class_names: tuple[str, ...]
    test_images: np.ndarray  # uint8 (N, 28, 28, 1): the images a batch must not repeat
    pool_dir: Path
    docs_root: Path  # each batch's Data Docs and summary go to <docs_root>/<batch>/
    web_assets: Path  # the npm packages the offline Data Docs copy their scripts from
    source: str | None = None  # the batches' source; None: each batch its own
    echo: Callable[[str], None] = print  # what the run tells the user while it works (a wait, say)
    _test_references: dict[bool, Reference] = field(default_factory=dict, repr=False)

    def test_reference(self, from_pictures: bool) -> Reference:
        """The test images; for pictures also the test images converted as pictures, which a re-encoded copy of one
        matches best (made once per run: about 15 s for 10,000 images)."""
        if from_pictures not in self._test_references:
            renderings = [self.test_images]
            if from_pictures:
                renderings.append(arrays_as_pictures(self.test_images, self.params.invert, self.params.crop))
            self._test_references[from_pictures] = reference(*renderings)
        return self._test_references[from_pictures]


def batch_table(batch: IncomingBatch, gate: Gate) -> pd.DataFrame:
    """One row per labelled image: what the expectations look at. Only rows with an image are compared; the others
    have nulls there, which the expectations skip (their problem is reported once, where it is)."""
    rows = batch.rows
    table = pd.DataFrame(
        {
            "file": [row.file for row in rows],
            "label": [row.label_text for row in rows],
            "class_name": [None if row.label is None else gate.class_names[row.label] for row in rows],
            "names_file": [row.names_file for row in rows],
            "file_exists": [row.exists for row in rows],
            "converts": [row.converts for row in rows],
            "label_known": [(row.label is not None) if row.label_text else None for row in rows],
        }
    )
    usable = batch.has_image
    compared = comparisons(batch.images[usable], table["file"][usable].tolist(), batch.from_pictures, gate)
    table = table.join(compared.set_axis(np.flatnonzero(usable))).astype(object)
    table = table.where(table.notna(), None)  # one kind of null, whatever the column's type
    notes = [[*row.problems, note] if note else row.problems for row, note in zip(rows, table.pop("note"), strict=True)]
    return table.assign(problem=["; ".join(problems) for problems in notes])


def comparisons(images: np.ndarray, files: list[str], from_pictures: bool, gate: Gate) -> pd.DataFrame:
    """Per image: its nearest test image, and whether it nearly repeats a test image, an earlier image of its batch
    or an accepted image; with a note saying which."""
    threshold = gate.params.near_duplicate_similarity
    to_test = nearest_matches(images, gate.test_reference(from_pictures))
    in_batch = nearest_matches(images, reference(images), earlier_only=True)
    in_pool = nearest_matches(images, reference(pool_images(gate.pool_dir))).best >= threshold
    # A copy matches its original far better than any other test image, even where all of them look alike.
    ratio = (1 - to_test.best) / np.maximum(1 - to_test.runner_up, 1e-9)
    leaked = (to_test.best >= threshold) | ((ratio <= gate.params.near_duplicate_ratio) & (to_test.runner_up > -1))
    repeats = in_batch.best >= threshold
    notes = [
        note(leak, nearest, best, files[earlier] if repeat else None, pooled)
        for leak, nearest, best, repeat, earlier, pooled in zip(
            leaked, to_test.nearest, to_test.best, repeats, in_batch.nearest, in_pool, strict=True
        )
    ]
    return pd.DataFrame(
        {
            "test_similarity": np.round(to_test.best.astype(float), 4),
            "nearest_test": to_test.nearest,
            "near_duplicate_of_test": leaked,
            "duplicate_in_batch": repeats,
            "duplicate_in_pool": in_pool,
            "repeated": repeats | in_pool,
            "note": notes,
        }
    )


def note(leaked: bool, nearest_test: int, similarity: float, repeated_file: str | None, pooled: bool) -> str:
    """What an image nearly repeats, for the rejection message and the Data Docs; '' when nothing."""
    if leaked:
        return f"like test image {nearest_test} (similarity {similarity:.4f})"
    if repeated_file is not None:
        return f"repeats {repeated_file}"
    return "repeats an accepted image" if pooled else ""


def class_counts(labels: np.ndarray, class_names: tuple[str, ...]) -> dict[str, int]:
    """Images per class name, in class order, for the classes present."""
    counts = np.bincount(labels, minlength=len(class_names))
    return {class_names[index]: int(count) for index, count in enumerate(counts) if count}


def accept_batch(folder: Path, gate: Gate) -> list[str]:
    """Judge the batch in `folder` and add it to the pool if it passes; the lines to tell the user. A rejected batch
    raises a PipelineError with its one-line reason and adds nothing."""
    name = Path(folder).resolve().name
    check_new_batch(gate.pool_dir, name)
    source = gate.source or name
    if not SOURCE_NAME.match(source) or source == ORIGINAL_SOURCE:
        raise PipelineError(
            f"a source must be letters, digits, '.', '_' or '-', and not {ORIGINAL_SOURCE!r} (the dataset's own "
            f"images), got {source!r}"
        )
    batch = read_incoming(folder, gate.class_names, gate.params.invert, gate.params.crop)
    summary, table = judge(batch, gate, {"source": source, "from": str(folder)})
    if not summary["success"]:
        raise PipelineError(rejection_line(summary))
    images, labels, files, left_out = pool_part(batch, table, gate.class_names)
    manifest = {
        "batch": name,
        "source": source,
        "accepted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "from": str(folder),
        "images": len(labels),
        "classes": class_counts(labels, gate.class_names),
        "sha256": checksum(images, labels),
    }
    dvc_file = add_to_pool(gate.pool_dir, images, labels, files, manifest, gate.params.wait_minutes, gate.echo)
    counts = ", ".join(f"{class_name} {count}" for class_name, count in manifest["classes"].items())
    return (
        left_out_notes(batch)
        + left_out
        + [
            f"{name}: accepted {len(labels)} images ({counts}) from source '{source}'; "
            f"commit {dvc_file} and {dvc_file.parent / '.gitignore'} to record it"
        ]
    )


def pool_part(batch: IncomingBatch, table: pd.DataFrame, class_names: tuple[str, ...]) -> tuple:
    """What of an accepted batch joins the pool: images, labels and files, without the few look-alikes of test
    images (under accept.max_test_duplicate_share) and repeats (under accept.max_duplicate_share) it may hold, so
    that what the model learns never repeats what it is tested on, and a repeat cannot land in training and in its
    source's test slice at once; with a line naming what was left out."""
    # Columns of objects (True, False, None): compared with True, not taken as truth values.
    leaked = (table["near_duplicate_of_test"] == True).to_numpy()  # noqa: E712
    repeated = (table["repeated"] == True).to_numpy() & ~leaked  # noqa: E712
    kept = ~(leaked | repeated)
    labels = np.array([row.label for row in batch.rows], dtype=np.int64)[kept]
    files = [row.file for row, keep in zip(batch.rows, kept, strict=True) if keep]
    notes = []
    for mask, what in ((leaked, "like test images"), (repeated, "repeating another image")):
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            example = f"{table['file'][first]} ({table['problem'][first]})"
            notes.append(f"{batch.name}: left out {int(mask.sum())} image(s) {what} (e.g. {example})")
    return batch.images[kept], labels, files, notes


def left_out_notes(batch: IncomingBatch) -> list[str]:
    """A line for each kind of picture the batch's folder holds that was not judged: named, not silently dropped."""
    kinds = (
        (batch.unlisted, f"that {LABELS_FILE} does not list"),
        (batch.unlabelled, f"with no label in {LABELS_FILE}"),
    )
    return [
        f"{batch.name}: left out {len(files)} picture(s) {reason} (e.g. {files[0]})" for files, reason in kinds if files
    ]


def judge(batch: IncomingBatch, gate: Gate, details: dict) -> tuple[dict, pd.DataFrame]:
    """The batch's suite run and summary (with `details`), and its table; its Data Docs and summary.json replace
    <docs_root>/<batch>/, so the folder shows the latest judgement of the batch, accepted or rejected."""
    table = batch_table(batch, gate)
    known = np.array([row.label for row in batch.rows if row.label is not None], dtype=np.int64)
    checks = build_checks(gate.params.max_test_duplicate_share, gate.params.max_duplicate_share)
    with atomic_path(gate.docs_root / batch.name) as report_dir:
        summary = run_checks(batch.name, table, checks, report_dir / "data_docs")
        make_offline(report_dir / "data_docs", gate.web_assets)
        summary |= {"batch": batch.name, **details, "classes": class_counts(known, gate.class_names)}
        summary |= {"unlisted_files": batch.unlisted, "unlabelled_files": batch.unlabelled}
        summary |= {"git revision": git_revision(), "params": asdict(gate.params)}
        (report_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, table
