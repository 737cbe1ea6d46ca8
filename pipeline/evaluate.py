"""evaluate: the trained model on the test set: metrics, confusion matrix, classification report, HTML report."""

from __future__ import annotations

import contextlib
import html
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cli import run_stage
from pipeline.datasets import dataset_spec
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.keras_runtime import load_keras
from pipeline.lineage import lineage
from pipeline.model_card import data_section, render_model_card
from pipeline.params import EvaluateParams, read_section
from pipeline.plots import save_confusion_matrix, save_gallery
from pipeline.preprocess import load_prepared
from pipeline.report import image_tag, page, table

OUTPUTS = (
    "metrics",
    "predictions",
    "confusion",
    "classification_report",
    "misclassified",
    "report",
    "model_card",
    "lineage",
)


def load_model(path: Path):
    """The saved Keras model; a missing or unreadable file is a one-line error naming it."""
    if not Path(path).is_file():
        raise PipelineError(f"{path}: model file not found (run the train stage first)")
    keras = load_keras()

    try:
        return keras.models.load_model(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise PipelineError(f"{path}: not a readable Keras model ({' '.join(str(error).split())[:200]})") from None


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    predictions = probabilities.argmax(axis=1)
    true_probabilities = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    classes = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, zero_division=0
    )
    return {
        "accuracy": round(float((predictions == labels).mean()), 6),
        "macro_f1": round(float(f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)), 6),
        "loss": round(float(-np.log(true_probabilities).mean()), 6),
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
            ("Confusion matrix", image_tag(images["confusion"], "confusion matrix")),
            ("Classification report", f"<pre>{html.escape(class_report)}</pre>"),
            ("Learning curve", image_tag(images["curve"], "learning curve")),
            ("Most confidently wrong test images", image_tag(images["misclassified"], "misclassified test images")),
        ],
    )


def evaluate(
    model, test_split, class_names, params: EvaluateParams, outputs: dict[str, Path], curve: Path, lineage_record: dict
) -> tuple[dict, np.ndarray]:
    """Write every output but the model card; return the metrics and the confusion matrix (rows: actual)."""
    from sklearn.metrics import classification_report, confusion_matrix

    images, labels = test_split
    labels = labels.astype(np.int64)
    probabilities = model.predict(images, batch_size=params.batch_size, verbose=0)
    predictions = probabilities.argmax(axis=1)
    metrics = compute_metrics(labels, probabilities, class_names)
    outputs["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
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


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the trained model (.keras)")
        parser.add_argument("--test", required=True, type=Path, help="prepared test split (.npz)")
        parser.add_argument("--manifest", required=True, type=Path, help="the ingest manifest, for lineage")
        parser.add_argument("--curve", required=True, type=Path, help="the learning-curve plot from training")
        parser.add_argument("--dataset", required=True, help="dataset name, for its class names")
        for name in OUTPUTS:
            parser.add_argument(f"--{name.replace('_', '-')}", required=True, type=Path, help=f"output: {name}")

    def work(arguments):
        params = EvaluateParams.load(Path(arguments.params))
        class_names = dataset_spec(arguments.dataset).class_names
        test_split = load_prepared(arguments.test)
        model = load_model(arguments.model)
        train_params = read_section("train", Path(arguments.params))
        val_fraction = read_section("preprocess", Path(arguments.params))["val_fraction"]
        manifest = json.loads(arguments.manifest.read_text())
        record = lineage(arguments.manifest, {"train": train_params})
        with contextlib.ExitStack() as stack:
            outputs = {name: stack.enter_context(atomic_path(getattr(arguments, name))) for name in OUTPUTS}
            metrics, matrix = evaluate(model, test_split, class_names, params, outputs, arguments.curve, record)
            card = render_model_card(
                metrics, matrix, class_names, data_section(manifest, val_fraction), train_params, record
            )
            outputs["model_card"].write_text(card)
            outputs["lineage"].write_text(json.dumps(record, indent=2) + "\n")
        print(f"evaluate: test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")

    run_stage("evaluate", configure, work, argv)


if __name__ == "__main__":
    main()
