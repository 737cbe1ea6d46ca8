"""The live-performance page (reports/live/index.html): the verdict on the model in use, then each model's live
figures beside its test-set figures, the trend by day, and the pictures it got wrong."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.live.performance import ModelFigures
from pipeline.live.statistics import WORSE, Verdict
from pipeline.plots import headless_pyplot
from pipeline.reports.html import image_tag, page, table

MOST_PICTURES_SHOWN = 24


def percent(value: float | None) -> str:
    return "–" if value is None or np.isnan(value) else f"{value:.1%}"


def with_interval(value: float | None, interval: tuple[float, float]) -> str:
    return "–" if value is None else f"{value:.1%} [{interval[0]:.1%}, {interval[1]:.1%}]"


def verdict_section(verdict: Verdict, version: str, window_days: int) -> str:
    colour = "#b00020" if verdict.verdict == WORSE else "#222"
    return (
        f'<p style="font-size:1.3em;color:{colour}"><b>{html.escape(verdict.verdict)}</b>: '
        f"{html.escape(verdict.reason)}.</p><p>The model in use: <code>{html.escape(version)}</code>. The verdict "
        f"counts its random sample of the last {window_days} days (live.window_days) up to its latest labelled "
        "answer; the figures below, every label. The hard cases were chosen for being hard: they never count.</p>"
    )


def summary_rows(figures: ModelFigures, test: dict | None) -> list[list]:
    test_ece = test.get("calibration_error") if test else None
    return [
        ["accuracy", with_interval(figures.accuracy, figures.interval), percent(test["accuracy"]) if test else "–"],
        [
            "expected calibration error",
            with_interval(figures.calibration_error if figures.labels else None, figures.calibration_interval),
            percent(test_ece),
        ],
        ["the same, for a perfectly calibrated model (chance alone)", percent(figures.calibration_by_chance), "–"],
        ["labelled pictures", f"{figures.labels:,}", f"{test['test_images']:,}" if test else "–"],
    ]


def class_rows(figures: ModelFigures, test: dict | None) -> list[list]:
    recall = (test or {}).get("per_class", {})
    return [
        [
            item.name,
            item.labels,
            with_interval(item.correct / item.labels if item.labels else None, item.interval),
            percent(recall.get(item.name)),
        ]
        for item in figures.per_class
    ]


def confusion_table(confusion: np.ndarray, class_names: tuple[str, ...]) -> str:
    rows = [[name, *map(int, confusion[index])] for index, name in enumerate(class_names)]
    return table(rows, ["label \\ answer", *class_names])


def model_section(figures: ModelFigures, test: dict | None, class_names: tuple[str, ...], gallery: str) -> str:
    hard = [
        [group, labels, percent(correct / labels if labels else None)]
        for group, (labels, correct) in figures.hard_cases.items()
    ]
    no_test = "" if test else "<p>This model's test-set figures are not on record here.</p>"
    return (
        f"<p>Answers from {html.escape(figures.first_answer[:19])} to {html.escape(figures.last_answer[:19])} (UTC); "
        "95% intervals (Wilson; bootstrap for the calibration error, which on a few hundred labels reads high by "
        "about the chance figure beside it).</p>"
        f"{no_test}{table(summary_rows(figures, test), ['', 'live (random sample)', 'test set'])}"
        "<h3>Accuracy by class (of the pictures a person labelled so)</h3>"
        f"{table(class_rows(figures, test), ['class', 'live labels', 'live accuracy', 'test accuracy'])}"
        f"<h3>Confusion matrix of the random sample</h3>{confusion_table(figures.confusion, class_names)}"
        "<h3>Hard cases, apart (chosen for being hard: not an estimate of accuracy)</h3>"
        f"{table(hard, ['group', 'labels', 'accuracy'])}{gallery}"
    )


def trend_png(trend: pd.DataFrame, test_accuracy: float | None, floor: float | None, path: Path) -> Path:
    """Accuracy by day answered, one colour per version, with 95% intervals and the verdict's floor."""
    plt = headless_pyplot()
    figure, axis = plt.subplots(figsize=(10, 4))
    for model, part in trend.groupby("model"):
        days = pd.to_datetime(part["day"])
        errors = [part["accuracy"] - part["low"], part["high"] - part["accuracy"]]
        axis.errorbar(days, part["accuracy"], yerr=errors, fmt="o-", capsize=3, label=model)
    if test_accuracy is not None:
        axis.axhline(test_accuracy, color="green", linestyle="--", label="test accuracy (model in use)")
        axis.axhline(floor, color="#b00020", linestyle=":", label="test accuracy less live.margin")
    days = pd.to_datetime(trend["day"])
    if days.nunique() == 1:  # matplotlib would spread one day over years
        axis.set_xlim(days.min() - pd.Timedelta(days=3), days.min() + pd.Timedelta(days=3))
    axis.set_ylabel("accuracy of the day's random sample")
    lowest = min([*trend["low"], floor if floor is not None else 1.0])
    axis.set_ylim(max(0.0, lowest - 0.02), 1.0)
    axis.legend(fontsize=8, loc="lower left")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)
    return path


def wrong_answers(rows: pd.DataFrame, sheets: Path) -> str:
    """The labelled pictures a model answered wrongly, as the labeller saw them (thumbnail, else 28x28): the random
    sample's first, the most confident first. The pictures are the sheets' (not a DVC dependency: a sheet removed
    since leaves its labels and loses its pictures here)."""
    wrong = rows[rows["label"] != rows["predicted"]].assign(
        sure=lambda table: table["confidence"].astype(float), hard=lambda table: table["group"] != "random"
    )
    wrong = wrong.sort_values(["hard", "sure"], ascending=[True, False], kind="stable").head(MOST_PICTURES_SHOWN)
    cells = []
    for row in wrong.itertuples(index=False):
        folder = sheets / row.sheet
        picture = folder / "thumbnails" / row.file
        picture = picture if picture.is_file() else folder / row.file
        if not picture.is_file():
            continue
        encoded = base64.b64encode(picture.read_bytes()).decode()
        cells.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(row.picture)}" width="96">'
            f"<figcaption>labelled {html.escape(row.label)}<br>answered {html.escape(row.predicted)} "
            f"({float(row.confidence):.0%})<br><small>{html.escape(row.group)}</small></figcaption></figure>"
        )
    if not cells:
        return ""
    return f"<h3>Wrong answers ({len(cells)} shown)</h3><div class=gallery>{''.join(cells)}</div>"


GALLERY_STYLE = (
    "<style>.gallery{display:flex;flex-wrap:wrap;gap:.6rem}.gallery figure{margin:0;width:7.5rem;font-size:.8em}"
    ".gallery img{image-rendering:pixelated;background:#000}</style>"
)


def render_page(
    verdict: Verdict,
    in_use: str,
    window_days: int,
    sections: list[tuple[str, str]],
    trend: Path | None,
    lineage_record: dict,
    evidently: str | None,
) -> str:
    top = [("The model in use, live", verdict_section(verdict, in_use, window_days))]
    if trend is not None:
        top.append(("Trend", image_tag(trend, "live accuracy by day")))
    if evidently:
        sections = [*sections, ("Evidently", evidently)]
    document = page("Live accuracy", lineage_record, [*top, *sections])
    return document.replace("</head>", f"{GALLERY_STYLE}</head>", 1)
