"""The reports index (reports/index.html): one page linking every report with its headline figure and lineage.

Links are relative, so the page and the reports open from disk, offline, wherever the folder is copied.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.data.pool import PoolBatch
from pipeline.drift.history import HISTORY_FILE, read_decision, read_history
from pipeline.reports.html import STYLE, image_tag, lineage_list
from pipeline.tuning.objectives import best_score

CHECKS = "drift/checks"  # every drift check's folder, and their history


@dataclass(frozen=True)
class ReportEntry:
    title: str
    link: str  # relative to the reports folder
    about: str
    lineage: str  # the JSON file (relative to the reports folder) holding the report's lineage record
    lineage_key: str | None = None  # the record's key inside that file, when it is part of a larger one
    absent: str = "Not produced yet."  # shown in place of the link until the report exists


ENTRIES = (
    ReportEntry(
        "Data samples",
        "preprocess/sample_grid.png",
        "a 5x5 grid of training images with their class names, and one image with its pixel scale "
        '(<a href="{folder}/sample_image.png">sample_image.png</a>)',
        "preprocess/lineage.json",
    ),
    ReportEntry(
        "Data validation",
        "validate/data_docs/index.html",
        "Great Expectations Data Docs: every expectation on the raw training and test images",
        "validate/lineage.json",
    ),
    ReportEntry(
        "Evaluation",
        "evaluate/report.html",
        "test-set metrics by class, confusion matrix, classification report, learning curve, confident mistakes",
        "evaluate/lineage.json",
    ),
    ReportEntry(
        "Model card",
        "evaluate/model_card.html",
        "what the model was trained on, how well it does, the classes it confuses, intended use and limits",
        "evaluate/lineage.json",
    ),
    ReportEntry(
        "Drift",
        "drift/page.html",
        "the drift stage's check of <code>drift.current_batch</code>: the verdict, the batch beside the reference "
        'images, the tests, and <a href="{folder}/report.html">Evidently\'s report</a>',
        "drift/summary.json",
        "lineage",
    ),
    ReportEntry(
        "Live accuracy",
        "live/index.html",
        "how right the model in use is on the traffic fashion-serve captured, from labelled samples: accuracy by "
        "class, calibration and confusions beside the test set's, by model version, with the trend",
        "live/summary.json",
        "lineage",
    ),
    ReportEntry(
        "Hyperparameter tuning",
        "tune/report.html",
        "the search's trials ranked, the objective against each hyperparameter, and the best configuration",
        "tune/lineage.json",
        absent="No search run yet: <code>dvc repro tuning/dvc.yaml</code> runs one.",
    ),
)


def headline(reports_dir: Path) -> dict[str, str]:
    """A figure per report title, from the reports' own summaries, where they exist."""
    figures = {}
    validation = reports_dir / "validate" / "summary.json"
    if validation.is_file():
        summary = json.loads(validation.read_text())
        figures["Data validation"] = f"{summary['passed']} of {summary['evaluated']} expectations passed"
    evaluation = reports_dir / "evaluate" / "metrics.json"
    if evaluation.is_file():
        metrics = json.loads(evaluation.read_text())
        figures["Evaluation"] = f"test accuracy {metrics['accuracy']:.2%}, macro F1 {metrics['macro_f1']:.4f}"
    drift = reports_dir / "drift" / "summary.json"
    if drift.is_file():
        summary = json.loads(drift.read_text())
        figures["Drift"] = f"{summary['verdict']} in {summary['batch']['images']} images: {summary['reason']}"
    live = reports_dir / "live" / "summary.json"
    if live.is_file():
        summary = json.loads(live.read_text())
        figures["Live accuracy"] = f"{summary['verdict']}: {summary['reason']}"
    tuning = reports_dir / "tune" / "trials.csv"
    if tuning.is_file():
        trials = pd.read_csv(tuning)
        objective = trials.columns[2]  # trial, status, then the objective
        best = best_score(trials[objective], objective)
        figures["Hyperparameter tuning"] = f"best {objective} {best:.4f} of {len(trials)} trials"
    return figures


def relative_link(target: Path, page_dir: Path) -> str:
    return html.escape(Path(os.path.relpath(target, page_dir)).as_posix())


def accepted_batches(pool: list[PoolBatch], reports_dir: Path, page_dir: Path) -> str:
    """The accepted pool, batch by batch, each linking its Data Docs (fashion-accept's checks of it)."""
    if not pool:
        return "<section><h2>Accepted batches</h2><p>None yet: <code>fashion-accept</code> adds them.</p></section>"
    items = []
    for batch in pool:
        docs = reports_dir / "accept" / batch.name / "data_docs" / "index.html"
        name = html.escape(batch.name)
        title = f'<a href="{relative_link(docs, page_dir)}">{name}</a>' if docs.is_file() else name
        items.append(
            f"<li>{title}: {len(batch.labels):,} images from source {html.escape(batch.source)}, accepted "
            f"{html.escape(batch.accepted_at[:10])}</li>"
        )
    return f"<section><h2>Accepted batches (data/pool)</h2><ul>{''.join(items)}</ul></section>"


def render_index(reports_dir: Path, page_dir: Path, pool: list[PoolBatch] | None = None) -> str:
    """The page, with its links relative to `page_dir`, the folder it is written to."""
    figures = headline(reports_dir)
    sections = []
    for entry in ENTRIES:
        target = reports_dir / entry.link
        if not target.is_file():
            sections.append(f"<section><h2>{html.escape(entry.title)}</h2><p>{entry.absent}</p></section>")
            continue
        record = json.loads((reports_dir / entry.lineage).read_text())
        record = record[entry.lineage_key] if entry.lineage_key else record
        figure = f"<p class=figure>{html.escape(figures[entry.title])}</p>" if entry.title in figures else ""
        sections.append(
            f'<section><h2><a href="{relative_link(target, page_dir)}">{html.escape(entry.title)}</a></h2>'
            f"<p>{entry.about.format(folder=relative_link(target.parent, page_dir))}</p>"
            f"{figure}{lineage_list(record)}</section>"
        )
    sections.append(latest_check(reports_dir / CHECKS, page_dir))
    sections.append(accepted_batches(pool or [], reports_dir, page_dir))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Fashion-MNIST pipeline reports</title>'
        f"<style>{STYLE}{INDEX_STYLE}</style></head><body><h1>Fashion-MNIST pipeline reports</h1>"
        f"{''.join(sections)}</body></html>\n"
    )


def checked_batch(folder: Path, page_dir: Path) -> str:
    """The batch a check read (its files, checksum and size) and what the monitor did next, from its folder."""
    summary_file = folder / "summary.json"
    if not summary_file.is_file():
        return ""
    batch = json.loads(summary_file.read_text())["batch"]
    words = (
        f"<p>Checked <code>{html.escape(str(batch['source']))}</code>"
        + (
            f" ({batch['bytes']:,} bytes, sha256 of its images <code>{batch['sha256'][:16]}</code>)"
            if "sha256" in batch
            else ""
        )
        + ".</p>"
    )
    decision = read_decision(folder)
    if decision["decision"]:
        sheet = decision["labelling_sheet"]
        link = f' <a href="{relative_link(Path(sheet), page_dir)}">The labelling sheet</a>.' if sheet else ""
        words += f"<p>Then the drift monitor: {html.escape(decision['decision'])}.{link}</p>"
    return words


def latest_check(checks_dir: Path, page_dir: Path) -> str:
    """The last drift check of any kind (the stage's or the monitor's), and the trend of every check."""
    history = read_history(checks_dir)
    if not history:
        return "<section><h2>Drift checks</h2><p>No drift check yet.</p></section>"
    last = history[-1]
    folder = checks_dir / last["id"]
    trend = image_tag(folder / "trend.png", "trend of drift checks") if (folder / "trend.png").is_file() else ""
    return (
        f'<section><h2><a href="{relative_link(folder / "page.html", page_dir)}">Latest drift check</a></h2>'
        f"<p class=figure>{html.escape(last['verdict'])} in {last['images']} images, smallest p-value "
        f"{last['smallest_p_value']:.3g} (threshold {last['threshold']:.3g}); {html.escape(last['time'])}, by the "
        f"{'drift monitor' if last['source'] == 'monitor' else 'drift stage'}.</p>"
        f"{checked_batch(folder, page_dir)}"
        f"<p>{len(history)} checks so far, each in its own folder of {html.escape(CHECKS)}, each a line of "
        f'<a href="{relative_link(checks_dir / HISTORY_FILE, page_dir)}">{HISTORY_FILE}</a>:</p>{trend}</section>'
    )


INDEX_STYLE = """
section { border: 1px solid #dde; border-radius: 6px; padding: 0.3rem 1.2rem 0.8rem; margin-bottom: 1rem; }
.figure { font-weight: 600; }
dl { background: #f3f5f8; padding: 0.5rem 1rem; font-size: 0.9em; }
dt { font-weight: 600; float: left; clear: left; width: 11rem; }
dd { margin-left: 11rem; font-family: monospace; white-space: pre-wrap; overflow-wrap: anywhere; }
"""
