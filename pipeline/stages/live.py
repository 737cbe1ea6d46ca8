"""live: the live-performance page and the verdict on the model in use, from the record of live labels.

Reads the record (live.labels_file, written by `fashion-live label`), the model in use (its version: the checksums
of its two files) and its test-set figures (the evaluate stage's). Writes reports/live/: index.html, summary.json
(the verdict, which the drift monitor and the reports index read), evidently.html (Evidently's classification
report of the live sample against the test set) and test_figures.json, the test figures of every version it has
seen in use, kept from run to run so that older versions are shown beside theirs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.files import atomic_path
from pipeline.lineage import git_revision
from pipeline.live.page import render_page, trend_png, version_section, wrong_answers
from pipeline.live.params import LiveParams
from pipeline.live.performance import daily_trend, in_window, version_figures, versions_newest_first
from pipeline.live.record import RANDOM, read_labels
from pipeline.live.statistics import judge
from pipeline.model.unfamiliarity import file_md5
from pipeline.model.version import version_of_files
from pipeline.params import load_params, read_section

TEST_FIGURES = "test_figures.json"
SUMMARY = "summary.json"


def model_part(version: str) -> str:
    """The model's part of a version: its test figures do not depend on the unfamiliarity scorer."""
    return version.split("+", 1)[0]


def test_figures(evaluate: Path, out: Path, version: str) -> dict[str, dict]:
    """Every known version's test figures (by model part), the model in use's from the evaluate stage."""
    path = out / TEST_FIGURES
    known = json.loads(path.read_text()) if path.is_file() else {}
    metrics = json.loads((evaluate / "metrics.json").read_text())
    per_class = json.loads((evaluate / "per_class.json").read_text())
    known[model_part(version)] = {
        "accuracy": metrics["accuracy"],
        "calibration_error": metrics.get("calibration_error"),
        "test_images": sum(scores["support"] for scores in per_class.values()),
        "per_class": {name: scores["recall"] for name, scores in per_class.items()},
    }
    return known


def evidently_report(rows: pd.DataFrame, predictions: Path, path: Path) -> str:
    """Evidently's classification report of the live sample (current) against the test set (reference)."""
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset

    reference = pd.read_csv(predictions)
    current = pd.DataFrame({"actual": rows["label"], "predicted": rows["predicted"]})
    columns = ["actual", "predicted"]
    definition = DataDefinition(
        classification=[MulticlassClassification(target="actual", prediction_labels="predicted")],
        categorical_columns=columns,
    )
    report = Report([ClassificationPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    with atomic_path(path) as staging:
        report.save_html(str(staging))
    return (
        f'<p><a href="{path.name}">Evidently\'s classification report</a> of the model in use: its random sample '
        "(current) against the test set (reference). It has no intervals, which a few hundred labels need, nor the "
        "calibration: this page gives both.</p>"
    )


def labels_line(path: Path, rows: pd.DataFrame) -> str:
    checksum = file_md5(path)[:12] if path.is_file() else "none yet"
    return f"{path} ({len(rows):,} labelled pictures, md5 {checksum})"


def version_sections(rows: pd.DataFrame, in_use: str, known: dict, class_names, sheets: Path) -> list[tuple[str, str]]:
    """One section per version that answered labelled pictures, the latest first."""
    sections = []
    for version in versions_newest_first(rows):
        figures = version_figures(rows, version, class_names)
        gallery = wrong_answers(rows[rows["model_version"] == version], sheets)
        title = f"{version}{' (in use)' if version == in_use else ''}"
        sections.append((title, version_section(figures, known.get(model_part(version)), class_names, gallery)))
    return sections


def write_page(arguments, rows: pd.DataFrame, in_use: str, known: dict, verdict, record: dict, class_names) -> None:
    out = arguments.out
    sections = version_sections(rows, in_use, known, class_names, arguments.sheets)
    trend = daily_trend(rows)
    sample = rows[(rows["model_version"] == in_use) & (rows["group"] == RANDOM)]
    with atomic_path(out / "index.html") as staging:
        evidently = None
        if len(sample):
            evidently = evidently_report(sample, arguments.evaluate / "predictions.csv", out / "evidently.html")
        picture = None
        if len(trend):
            picture = trend_png(
                trend, known[model_part(in_use)]["accuracy"], verdict.floor, staging.with_suffix(".png")
            )
        staging.write_text(render_page(verdict, in_use, sections, picture, record, evidently))
        if picture is not None:
            picture.unlink()


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--labels", required=True, type=Path, help="the record of live labels (.csv)")
        parser.add_argument("--model", required=True, type=Path, help="the model in use (.keras)")
        parser.add_argument("--scorer", required=True, type=Path, help="its unfamiliarity scorer (.npz)")
        parser.add_argument("--evaluate", required=True, type=Path, help="the evaluate stage's reports folder")
        parser.add_argument("--sheets", required=True, type=Path, help="the labelling sheets, for their pictures")
        parser.add_argument("--out", required=True, type=Path, help="output folder (reports/live)")

    def work(arguments):
        params = load_params(LiveParams, arguments.params)
        class_names = dataset_spec(read_section("ingest", arguments.params)["dataset"]).class_names
        rows = read_labels(arguments.labels)
        in_use = version_of_files(arguments.model, arguments.scorer)
        known = test_figures(arguments.evaluate, arguments.out, in_use)
        window = in_window(rows, in_use, params.window_days)
        correct = int((window["label"] == window["predicted"]).sum())
        verdict = judge(correct, len(window), known[model_part(in_use)]["accuracy"], params)
        record = {
            "git revision": git_revision(),
            "labels": labels_line(arguments.labels, rows),
            "params": {"live": read_section("live", arguments.params)},
        }
        arguments.out.mkdir(parents=True, exist_ok=True)
        write_page(arguments, rows, in_use, known, verdict, record, class_names)
        summary = {"version_in_use": in_use, **asdict(verdict), "still_needed": verdict.still_needed}
        summary.update(window_days=params.window_days, lineage=record)
        for name, content in ((TEST_FIGURES, known), (SUMMARY, summary)):
            with atomic_path(arguments.out / name) as staging:
                staging.write_text(json.dumps(content, indent=2) + "\n")
        print(f"live: {verdict.verdict}: {verdict.reason}")

    run_command("live", configure, work, argv)


if __name__ == "__main__":
    main()
