"""live: the live-performance page and the verdict on the model in use, from the record of live labels.

Reads the record (live.labels_file, written by `fashion-live label`), the model in use (its version: the checksums
of its two files) and its test-set figures (the evaluate stage's). Writes reports/live/: index.html, summary.json
(the verdict, which the drift monitor and the reports index read), evidently.html (Evidently's classification
report of the live sample against the test set) and test_figures.json, the test figures of every model it has seen
in use, kept from run to run so that older models are shown beside theirs.
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
from pipeline.live.page import model_section, render_page, trend_png, wrong_answers
from pipeline.live.params import LiveParams
from pipeline.live.performance import (
    daily_trend,
    in_window,
    model_figures,
    models_newest_first,
    of_model,
    random_sample,
)
from pipeline.live.record import check_record, read_labels
from pipeline.live.statistics import judge
from pipeline.model.unfamiliarity import file_md5
from pipeline.model.version import model_of, version_of_files
from pipeline.params import load_params, read_section

TEST_FIGURES = "test_figures.json"
SUMMARY = "summary.json"
# The keys dvc.yaml lists for this stage: what its outputs depend on (the others say what is sent to labelling).
STAGE_KEYS = ("margin", "alpha", "detect_drop", "power", "window_days")
# Evidently's classification report needs a few labels of a few classes (two alone read as a binary task).
EVIDENTLY_LEAST_LABELS, EVIDENTLY_LEAST_CLASSES = 30, 3


def test_figures(metrics_file: Path, per_class_file: Path, out: Path, model: str) -> dict[str, dict]:
    """Every known model's test figures, the model in use's from the evaluate stage."""
    path = out / TEST_FIGURES
    known = json.loads(path.read_text()) if path.is_file() else {}
    metrics = json.loads(metrics_file.read_text())
    per_class = json.loads(per_class_file.read_text())
    known[model] = {
        "accuracy": metrics["accuracy"],
        "calibration_error": metrics.get("calibration_error"),
        "test_images": sum(scores["support"] for scores in per_class.values()),
        "per_class": {name: scores["recall"] for name, scores in per_class.items()},
    }
    return known


def evidently_report(sample: pd.DataFrame, predictions: Path, path: Path) -> str:
    """Evidently's classification report of the live sample (current) against the test set (reference), or why
    there is none yet."""
    if len(sample) < EVIDENTLY_LEAST_LABELS or sample["label"].nunique() < EVIDENTLY_LEAST_CLASSES:
        return (
            f"<p>Evidently's classification report follows from {EVIDENTLY_LEAST_LABELS} random-sample labels of "
            f"{EVIDENTLY_LEAST_CLASSES} classes or more.</p>"
        )
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset

    reference = pd.read_csv(predictions)
    current = pd.DataFrame({"actual": sample["label"], "predicted": sample["predicted"]})
    definition = DataDefinition(
        classification=[MulticlassClassification(target="actual", prediction_labels="predicted")],
        categorical_columns=["actual", "predicted"],
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


def model_sections(rows: pd.DataFrame, in_use: str, known: dict, class_names, sheets: Path) -> list[tuple[str, str]]:
    """One section per model that answered labelled pictures, the latest first."""
    sections = []
    for model in models_newest_first(rows):
        figures = model_figures(rows, model, class_names)
        gallery = wrong_answers(of_model(rows, model), sheets)
        title = f"{model}{' (in use)' if model == in_use else ''}"
        sections.append((title, model_section(figures, known.get(model), class_names, gallery)))
    return sections


def write_page(arguments, rows: pd.DataFrame, in_use: str, known: dict, verdict, record: dict, params, class_names):
    sections = model_sections(rows, model_of(in_use), known, class_names, arguments.sheets)
    sample = random_sample(of_model(rows, model_of(in_use)))
    evidently = evidently_report(sample, arguments.predictions, arguments.out / "evidently.html")
    trend = daily_trend(rows)
    with atomic_path(arguments.out / "index.html") as staging:
        picture = None
        if len(trend):
            test_accuracy = known[model_of(in_use)]["accuracy"]
            picture = trend_png(trend, test_accuracy, verdict.floor, staging.with_suffix(".png"))
        page = render_page(verdict, in_use, params.window_days, sections, picture, record, evidently)
        staging.write_text(page)
        if picture is not None:
            picture.unlink()


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--labels", required=True, type=Path, help="the record of live labels (.csv)")
        parser.add_argument("--model", required=True, type=Path, help="the model in use (.keras)")
        parser.add_argument("--scorer", required=True, type=Path, help="its unfamiliarity scorer (.npz)")
        parser.add_argument("--metrics", required=True, type=Path, help="the evaluate stage's metrics.json")
        parser.add_argument("--per-class", required=True, type=Path, help="the evaluate stage's per_class.json")
        parser.add_argument("--predictions", required=True, type=Path, help="the evaluate stage's predictions.csv")
        parser.add_argument("--sheets", required=True, type=Path, help="the labelling sheets, for their pictures")
        parser.add_argument("--out", required=True, type=Path, help="output folder (reports/live)")

    def work(arguments):
        params = load_params(LiveParams, arguments.params)
        class_names = dataset_spec(read_section("ingest", arguments.params)["dataset"]).class_names
        rows = read_labels(arguments.labels)
        check_record(arguments.labels, rows, class_names)
        in_use = version_of_files(arguments.model, arguments.scorer)
        known = test_figures(arguments.metrics, arguments.per_class, arguments.out, model_of(in_use))
        window = in_window(rows, model_of(in_use), params.window_days)
        correct = int((window["label"] == window["predicted"]).sum())
        verdict = judge(correct, len(window), known[model_of(in_use)]["accuracy"], params)
        live_params = read_section("live", arguments.params)
        record = {
            "git revision": git_revision(),
            "labels": labels_line(arguments.labels, rows),
            "params": {"live": {key: live_params[key] for key in STAGE_KEYS}},
        }
        arguments.out.mkdir(parents=True, exist_ok=True)
        write_page(arguments, rows, in_use, known, verdict, record, params, class_names)
        summary = {"version_in_use": in_use, **asdict(verdict), "still_needed": verdict.still_needed}
        summary.update(window_days=params.window_days, lineage=record)
        for name, content in ((TEST_FIGURES, known), (SUMMARY, summary)):
            with atomic_path(arguments.out / name) as staging:
                staging.write_text(json.dumps(content, indent=2) + "\n")
        print(f"live: {verdict.verdict}: {verdict.reason}")

    run_command("live", configure, work, argv)


if __name__ == "__main__":
    main()
