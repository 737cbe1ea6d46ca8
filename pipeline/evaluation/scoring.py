"""Scoring the trained model on the test set: metrics, confusion matrix, classification report, HTML report."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.evaluation.calibration import calibration_error
from pipeline.model.unfamiliarity import Unfamiliarity, flagged
from pipeline.model.views import with_unfamiliarity_views
from pipeline.params import param
from pipeline.plots import headless_pyplot
from pipeline.reports.headline import evaluation_headline
from pipeline.reports.html import image_tag, page, table

# The files `evaluate` writes, by name (the model card is written beside them by the stage): `metrics` holds the
# headline figures for `dvc metrics show`, `per_class` each class's precision, recall, F1 and support.
OUTPUTS = (
    "metrics",
    "per_class",
    "predictions",
    "confusion",
    "classification_report",
    "misclassified",
    "report",
    "model_card",
    "lineage",
)


@dataclass(frozen=True)
class EvaluateParams:
    SECTION: ClassVar[str] = "evaluate"
    batch_size: int = param("number", integer=True, minimum=1)
    gallery_size: int = param("number", integer=True, minimum=0)


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    predictions = probabilities.argmax(axis=1)
    true_probabilities = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    classes = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, zero_division=0
    )
    correct = (predictions == labels).astype(float)
    return {
        "accuracy": round(float(correct.mean()), 6),
        "macro_f1": round(float(f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)), 6),
        "loss": round(float(-np.log(true_probabilities).mean()), 6),
        "calibration_error": round(calibration_error(probabilities.max(axis=1), correct), 6),
        "per_class": {
            name: {
                "precision": round(float(p), 6),
                "recall": round(float(r), 6),
                "f1": round(float(f), 6),
                "support": int(s),
            }
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
        },
    }


def source_accuracies(model, slices: dict[str, tuple[np.ndarray, np.ndarray]], batch_size: int) -> dict[str, dict]:
    """Accuracy on each new source's test slice, with its standard error (binomial: sqrt(p(1-p)/n))."""
    scores = {}
    for source, (images, labels) in slices.items():
        if not len(labels):
            continue  # Keras cannot predict on no images; a slice file written empty by hand says nothing
        predictions = model.predict(images, batch_size=batch_size, verbose=0).argmax(axis=1)
        scores[source] = with_standard_error(float((predictions == labels).mean()), len(labels))
    return scores


def with_standard_error(accuracy: float, images: int) -> dict:
    standard_error = float(np.sqrt(accuracy * (1 - accuracy) / images)) if images else float("nan")
    return {"accuracy": round(accuracy, 6), "images": int(images), "standard_error": round(standard_error, 6)}


def sources_table(metrics: dict) -> str:
    """Accuracy on the original test set and on each new source's slice, with +-2 standard errors."""
    rows = [("original test set", with_standard_error(metrics["accuracy"], metrics["test_images"]))]
    rows += list(metrics["sources"].items())
    return table(
        [
            [name, f"{score['accuracy']:.4f}", f"+-{2 * score['standard_error']:.4f}", f"{score['images']:,}"]
            for name, score in rows
        ],
        ["test images from", "accuracy", "2 standard errors", "images"],
    )


def confident_mistakes(labels: np.ndarray, probabilities: np.ndarray, count: int) -> np.ndarray:
    """Indices of the wrongly classified images, the most confident first."""
    predictions = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = probabilities[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def render_report(metrics: dict, class_report: str, lineage_record: dict, images: dict[str, Path]) -> str:
    overall = table([[name, f"{metrics[name]:.4f}"] for name in ("accuracy", "macro_f1", "loss")], ["metric", "value"])
    per_class = table(
        [
            [name, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", m["support"]]
            for name, m in metrics["per_class"].items()
        ],
        ["class", "precision", "recall", "F1", "test images"],
    )
    return page(
        "Evaluation on the test set",
        lineage_record,
        [
            ("Metrics", overall + per_class),
            ("Accuracy by source of the test images", sources_table(metrics)),
            ("Confusion matrix", image_tag(images["confusion"], "confusion matrix")),
            ("Classification report", f"<pre>{html.escape(class_report)}</pre>"),
            ("Learning curve", image_tag(images["curve"], "learning curve")),
            ("Most confidently wrong test images", image_tag(images["misclassified"], "misclassified test images")),
        ],
    )


def evaluate(
    model,
    scorer: Unfamiliarity,
    test_split,
    slices: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names,
    params: EvaluateParams,
    outputs: dict[str, Path],
    curve: Path,
    lineage_record: dict,
) -> tuple[dict, np.ndarray]:
    """Write every output but the model card; return the metrics and the confusion matrix (rows: actual)."""
    from sklearn.metrics import classification_report, confusion_matrix

    images, labels = test_split
    labels = labels.astype(np.int64)
    probabilities, *views = with_unfamiliarity_views(model).predict(images, batch_size=params.batch_size, verbose=0)
    predictions = probabilities.argmax(axis=1)
    metrics = compute_metrics(labels, probabilities, class_names)
    # Test images are as familiar as the validation images the threshold was set on: close to the flag rate.
    metrics["unfamiliar"] = round(float(flagged(scorer, views).mean()), 6)
    metrics["test_images"] = len(labels)
    metrics["sources"] = source_accuracies(model, slices, params.batch_size)
    # DVC shows the headline figures; the per-class scores would add forty columns to its table.
    outputs["metrics"].write_text(json.dumps(evaluation_headline(metrics), indent=2) + "\n")
    outputs["per_class"].write_text(json.dumps(metrics["per_class"], indent=2) + "\n")
    names = np.array(class_names)
    pd.DataFrame({"actual": names[labels], "predicted": names[predictions]}).to_csv(outputs["predictions"], index=False)
    matrix = confusion_matrix(labels, predictions, labels=list(range(len(class_names))))
    save_confusion_matrix(matrix, class_names, outputs["confusion"])
    class_report = classification_report(
        labels,
        predictions,
        labels=list(range(len(class_names))),
        target_names=list(class_names),
        digits=4,
        zero_division=0,
    )
    outputs["classification_report"].write_text(class_report)
    mistakes = confident_mistakes(labels, probabilities, params.gallery_size)
    captions = [
        f"true: {names[labels[i]]}\npredicted: {names[predictions[i]]} ({probabilities[i].max():.1%})" for i in mistakes
    ]
    save_gallery(images[mistakes], captions, outputs["misclassified"])
    report = render_report(
        metrics,
        class_report,
        lineage_record,
        {"confusion": outputs["confusion"], "curve": curve, "misclassified": outputs["misclassified"]},
    )
    outputs["report"].write_text(report)
    return metrics, matrix


def save_confusion_matrix(matrix: np.ndarray, class_names: tuple[str, ...], path: Path) -> None:
    """Counts and row-normalised rates (recall on the diagonal), side by side, with class names."""
    plt = headless_pyplot()
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(1, 2, figsize=(17, 7.5))
    for axis, values, title, text in (
        (axes[0], matrix, "Confusion matrix (counts)", lambda v: f"{int(v)}"),
        (axes[1], normalised, "Confusion matrix (share of each true class)", lambda v: f"{v:.2f}"),
    ):
        axis.imshow(values, cmap="Blues")
        for row in range(len(class_names)):
            for column in range(len(class_names)):
                value = values[row, column]
                colour = "white" if value > values.max() / 2 else "black"
                axis.text(column, row, text(value), ha="center", va="center", color=colour, fontsize=8)
        axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
        axis.set_yticks(range(len(class_names)), class_names)
        axis.set_xlabel("predicted class")
        axis.set_ylabel("true class")
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def save_gallery(images: np.ndarray, captions: list[str], path: Path, columns: int = 8) -> None:
    """A grid of images with a caption under each."""
    plt = headless_pyplot()
    rows = max(1, int(np.ceil(len(images) / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.4 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index].squeeze(), cmap="binary")
            axis.set_title(captions[index], fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
