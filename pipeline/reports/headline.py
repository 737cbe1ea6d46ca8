"""The headline figures of a stage, as the metrics file `dvc metrics show` prints: a few plain numbers each.

Each stage keeps its full record elsewhere (per-class scores, feature scores, lineage); DVC merges the keys of
every metrics file into one table, so a metrics file holds only the numbers a person compares between runs.
The train stage's two figures stay in its entry point: importing this module would retrain the model whenever
it changes.
"""

from __future__ import annotations

# The test-set figures of the evaluate stage (`unfamiliar`: the share of test images flagged as unfamiliar;
# `calibration_error`: the expected calibration error); its per-class scores go to a file of their own.
EVALUATION_FIGURES = ("accuracy", "macro_f1", "loss", "calibration_error", "unfamiliar")


def evaluation_headline(metrics: dict) -> dict:
    """Test accuracy, macro F1, loss, calibration error and share flagged unfamiliar, from the evaluation's full
    metrics; with accepted new data, each new source's accuracy and test images too (`dvc metrics show` prints
    `sources.<name>.accuracy`)."""
    headline = {name: float(metrics[name]) for name in EVALUATION_FIGURES}
    sources = metrics.get("sources") or {}
    if sources:
        headline["sources"] = {
            name: {"accuracy": score["accuracy"], "images": score["images"]} for name, score in sources.items()
        }
    return headline


def validation_headline(summary: dict) -> dict[str, int]:
    """How many expectations passed, from the validation summary (also when some failed)."""
    return {"expectations_passed": int(summary["passed"])}


def drift_headline(summary: dict) -> dict[str, float]:
    """The verdict as 1 (drift) or 0 (no drift, or inconclusive), its smallest p-value, and the batch's size."""
    return {
        "drift": int(bool(summary["dataset_drift"])),
        "smallest_p": float(summary["smallest_p_value"]),
        "batch_images": int(summary["batch"]["images"]),
    }
