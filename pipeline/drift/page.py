"""The drift page of one check: the verdict in words, the images it is about, the tests, and the trend of checks.

Pictures before tables: the batch beside the reference, the predicted-class shares, the batch images furthest from
the reference; then each test's p-value and effect, and every check so far as a trend of p-values and verdicts.
"""

from __future__ import annotations

import html
import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from pipeline.drift.check import DriftCheck
from pipeline.drift.history import DECISION_FILE
from pipeline.files import atomic_path
from pipeline.plots import headless_pyplot
from pipeline.reports.html import image_tag, page, table

# Where the drift monitor writes what it decided after the check (flows/monitoring.py): the stage cannot know it.
MONITOR_DECISION = "<!-- the monitor's decision -->"
SHOWN_IMAGES = 32
FURTHEST_IMAGES = 16
SMALLEST_SHOWN_P = 1e-12  # smaller p-values sit on the trend's floor, so the scale stays readable
VERDICT_COLOURS = {"drift": "#c0392b", "no drift": "#2e7d32", "inconclusive": "#9e9e9e"}


def reference_words(reference: dict) -> str:
    """Which reference the batch was compared with, and why that one."""
    weights = reference["sources"]
    named = ", ".join(f"{html.escape(source)} {weight:.0%}" for source, weight in weights.items())
    why = {
        "named source": "the source named for this check",
        "one source (estimated)": "the known source the batch looks like (no source was named)",
        "mixture (estimated)": "the mix of known sources the batch looks like, estimated from its images (no source "
        "was named)",
    }[reference["chosen"]]
    known = ", ".join(html.escape(source) for source in reference["known_sources"])
    return f"the reference of {named}: {why}; known sources: {known}"


def verdict_words(summary: dict) -> str:
    batch = summary["batch"]
    scenario = "" if batch["scenario"] == "none" else f", shifted by the {batch['scenario']} scenario"
    headline = {"drift": "Dataset drift", "no drift": "No dataset drift", "inconclusive": "Inconclusive"}
    return (
        f'<p style="font-size:1.3em;color:{VERDICT_COLOURS[summary["verdict"]]}">'
        f"<b>{headline[summary['verdict']]}</b>: {html.escape(summary['reason'])}.</p>"
        f"<p>Checked: <code>{html.escape(batch['source'])}</code>, {batch['images']} images "
        f"({batch['bytes']:,} bytes on disk; sha256 of its images as checked <code>{batch['sha256'][:16]}</code>)"
        f"{html.escape(scenario)}.</p>"
        f"<p>Compared with {summary['reference']['images']} {summary['reference']['split']} images, "
        f"{reference_words(summary['reference'])}.</p>"
        f"{MONITOR_DECISION}"
        f"<p>At alpha {summary['alpha']} a clean batch is called drifted "
        f"with probability {summary['alpha']}, whatever its size: the smallest of the {summary['feature_count']} "
        f"tests' p-values ({summary['smallest_p_value']:.3g}) is held to {summary['threshold']:.3g}, the "
        f"threshold clean batches of this size fall under that often; a test counts only with an effect of at "
        f"least {summary['effect_floor']}. "
        "<a href=\"report.html\">Evidently's report of this check</a> draws every feature's distribution.</p>"
    )


def save_gallery(images: np.ndarray, captions: list[str], path: Path, columns: int = 8) -> None:
    """A grid of the images, each enlarged 3x with its caption above, drawn with Pillow: a page has three of
    them, and matplotlib's subplots would take seconds each."""
    from PIL import Image, ImageDraw, ImageFont

    scale, caption_height, gap = 3, 16, 6
    side = images.shape[1] * scale if len(images) else 28 * scale
    rows = max(1, int(np.ceil(len(images) / columns)))
    canvas = Image.new("L", (columns * (side + gap), rows * (side + caption_height + gap)), color=255)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=11)
    for index, (image, caption) in enumerate(zip(images, captions, strict=True)):
        left = (index % columns) * (side + gap)
        top = (index // columns) * (side + caption_height + gap)
        draw.text((left, top + 1), caption, fill=0, font=font)
        tile = Image.fromarray(image[..., 0]).resize((side, side), Image.NEAREST)
        canvas.paste(tile, (left, top + caption_height))
    canvas.save(path, format="PNG")


def save_class_shares(summary: dict, path: Path) -> None:
    plt = headless_pyplot()
    shares = summary["prediction_drift"]["class_shares"]
    names, positions = list(shares), np.arange(len(shares))
    figure, axis = plt.subplots(figsize=(9, 3.2))
    axis.bar(positions - 0.2, [shares[name]["reference"] for name in names], 0.4, label="reference")
    axis.bar(positions + 0.2, [shares[name]["current"] for name in names], 0.4, label="batch")
    axis.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("share of predictions")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def save_trend(history: list[dict], path: Path) -> None:
    """Every check's smallest p-value over time (log scale), coloured by its verdict, with its threshold."""
    plt = headless_pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.2))
    times = [datetime.fromisoformat(entry["time"]) for entry in history]
    for verdict, colour in VERDICT_COLOURS.items():
        chosen = [index for index, entry in enumerate(history) if entry["verdict"] == verdict]
        axis.scatter(
            [times[index] for index in chosen],
            [max(history[index]["smallest_p_value"], SMALLEST_SHOWN_P) for index in chosen],
            color=colour,
            label=verdict,
            zorder=3,
        )
    axis.plot(
        times, [entry["threshold"] for entry in history], color="#555", linestyle=":", marker="_", label="threshold"
    )
    if len(times) == 1:  # a day either side, or matplotlib spreads one point over years
        axis.set_xlim(times[0] - timedelta(days=1), times[0] + timedelta(days=1))
    axis.set_yscale("log")
    axis.set_ylabel(f"smallest p-value (floor {SMALLEST_SHOWN_P:g})")
    axis.legend(fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def furthest_from_reference(check: DriftCheck, count: int) -> np.ndarray:
    """The batch images whose embedding components lie furthest from the reference's (Mahalanobis distance)."""
    columns = [index for index, name in enumerate(check.matrix.names) if name.startswith("embedding_pc")]
    reference = check.reference_matrix.values[:, columns]
    precision = np.linalg.pinv(np.cov(reference, rowvar=False))
    offsets = check.matrix.values[:, columns] - reference.mean(axis=0)
    distances = np.einsum("ij,jk,ik->i", offsets, precision, offsets)
    return np.argsort(-distances)[:count]


def p_text(p_value: float) -> str:
    return "< 1e-300" if p_value == 0 else f"{p_value:.3g}"  # 0 is a p-value below what a float holds


def test_table(summary: dict) -> str:
    rejected = set(summary["rejected"])
    rows = [
        [
            name,
            p_text(row["p_value"]),
            f"{row['effect']:.4f}",
            row.get("distance", "-"),
            "yes" if name in rejected else "",
        ]
        for name, row in summary["tests"].items()
    ]
    header = ["test", "p-value", "effect", "distance (reference sd)", "rejected"]
    return table(rows, header)


def render_page(
    check: DriftCheck, reference_images: np.ndarray, history: list[dict], lineage: dict, trend: Path
) -> str:
    """The whole page; `trend` is where the trend picture is saved (the reports index shows it too)."""
    class_names = list(check.summary["prediction_drift"]["class_shares"])
    predicted = [class_names[index] for index in check.matrix.predicted]
    furthest = furthest_from_reference(check, FURTHEST_IMAGES)
    with tempfile.TemporaryDirectory() as scratch:
        pictures = {name: Path(scratch) / f"{name}.png" for name in ("batch", "reference", "shares", "furthest")}
        save_gallery(check.images[:SHOWN_IMAGES], predicted[:SHOWN_IMAGES], pictures["batch"])
        save_gallery(
            reference_images[:SHOWN_IMAGES],
            ["reference"] * min(SHOWN_IMAGES, len(reference_images)),
            pictures["reference"],
        )
        save_class_shares(check.summary, pictures["shares"])
        save_gallery(check.images[furthest], [predicted[index] for index in furthest], pictures["furthest"])
        save_trend(history, trend)
        sections = [
            ("Verdict", verdict_words(check.summary)),
            ("The batch (predicted class under each)", image_tag(pictures["batch"], "batch images")),
            ("Reference images", image_tag(pictures["reference"], "reference images")),
            ("Predicted classes", image_tag(pictures["shares"], "predicted-class shares")),
            ("Furthest from the reference (embedding)", image_tag(pictures["furthest"], "most unusual images")),
            ("Tests, most significant first", test_table(check.summary)),
            (f"Every check so far ({len(history)})", image_tag(trend, "trend of checks")),
        ]
        return page("Drift check", lineage, sections)


def add_decision(folder: Path, decision: str, labelling_sheet: str | None) -> None:
    """What the drift monitor decided after the check, into its folder: decision.json, and on its page (where the
    stage left MONITOR_DECISION), with a link to the labelling sheet when one was written."""
    sheet = ""
    if labelling_sheet:
        link = Path(labelling_sheet).resolve().relative_to(folder.resolve()).as_posix()
        sheet = f' <a href="{html.escape(link)}">The labelling sheet</a>.'
    words = f"<p><b>What the drift monitor did next</b>: {html.escape(decision)}.{sheet}</p>"
    record = {"decision": decision, "labelling_sheet": labelling_sheet}
    with atomic_path(folder / DECISION_FILE) as staging:
        staging.write_text(json.dumps(record, indent=2) + "\n")
    page_file = folder / "page.html"
    with atomic_path(page_file) as staging:
        staging.write_text(page_file.read_text().replace(MONITOR_DECISION, words, 1))
