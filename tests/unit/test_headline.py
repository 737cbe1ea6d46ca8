"""The headline metrics files `dvc metrics show` prints: a few plain numbers per stage; and the readers of the split
evaluation files."""

import json

import pytest

from flows.summary import read_metrics
from pipeline.reports.headline import drift_headline, evaluation_headline, validation_headline

PER_CLASS = {"Trouser": {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2}}


def drift_summary(verdict: str, smallest_p: float) -> dict:
    """The part of the drift stage's summary the headline reads, with the rest it holds beside it."""
    return {
        "verdict": verdict,
        "dataset_drift": verdict == "drift",
        "smallest_p_value": smallest_p,
        "threshold": 0.004,
        "rejected": ["mean_intensity"] if verdict == "drift" else [],
        "tests": {"mean_intensity": {"p_value": smallest_p, "effect": 0.3, "distance": 0.4}},
        "batch": {"images": 1000, "scenario": "none", "strength": None, "source": "data/prepared/test.npz"},
        "lineage": {"git revision": "abc1234"},
    }


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_drift_headline_is_the_verdict_as_a_number_its_smallest_p_value_and_the_batch_size():
    drifted = drift_headline(drift_summary("drift", 1.5e-9))
    assert drifted == {"drift": 1, "smallest_p": 1.5e-9, "batch_images": 1000}
    assert type(drifted["drift"]) is int  # 1, not True: DVC compares numbers
    assert drift_headline(drift_summary("no drift", 0.3))["drift"] == 0
    assert drift_headline(drift_summary("inconclusive", 0.001))["drift"] == 0  # no alarm on too few images


def test_validation_headline_counts_the_expectations_passed():
    summary = {"success": False, "evaluated": 23, "passed": 21, "failed": [{"expectation": "label in 0-9"}]}
    assert validation_headline(summary) == {"expectations_passed": 21}


def test_evaluation_headline_leaves_the_per_class_scores_out():
    figures = {"accuracy": 0.9375, "macro_f1": 0.9371, "loss": 0.18, "calibration_error": 0.07, "unfamiliar": 0.05}
    assert evaluation_headline({**figures, "per_class": PER_CLASS}) == figures


@pytest.mark.parametrize(
    "figures",
    [
        drift_headline(drift_summary("drift", 0.0001)),
        validation_headline({"passed": 23}),
        evaluation_headline(
            {"accuracy": 1, "macro_f1": 0.5, "loss": 0.1, "calibration_error": 0.1, "unfamiliar": 0.04}
        ),
    ],
)
def test_every_headline_figure_is_a_plain_number(figures):
    assert figures and all(is_number(value) for value in figures.values()), figures


def test_flows_read_the_evaluation_with_its_per_class_scores(tmp_path):
    assert read_metrics(tmp_path) is None  # nothing evaluated yet
    folder = tmp_path / "reports" / "evaluate"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "macro_f1": 0.8, "loss": 0.3}))
    (folder / "per_class.json").write_text(json.dumps(PER_CLASS))
    assert read_metrics(tmp_path) == {"accuracy": 0.9, "macro_f1": 0.8, "loss": 0.3, "per_class": PER_CLASS}
    # A workspace evaluated before the split holds the per-class scores in metrics.json itself.
    (folder / "per_class.json").unlink()
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "macro_f1": 0.8, "loss": 0.3, "per_class": {}}))
    assert read_metrics(tmp_path)["per_class"] == {}
