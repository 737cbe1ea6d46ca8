"""The promotion gate's arithmetic, and the labelling sheet the monitor writes instead of retraining."""

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.accept.labelling import Captured, write_labelling_sheet
from pipeline.evaluation.promotion import PromoteParams, decide, decision_table, standard_error

GATE = PromoteParams(max_test_drop=2.0, max_source_drop=1.0, keep_refused_experiments=5)
NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def in_use(accuracy=0.90, studio=0.70):
    return {"accuracy": accuracy, "test_images": 10_000, "sources": {"studio": {"accuracy": studio, "images": 1000}}}


def candidate(accuracy, studio):
    return {"accuracy": accuracy, "sources": {"studio": {"accuracy": studio, "images": 1000}}}


def test_standard_error_is_binomial():
    assert standard_error(0.9, 10_000) == pytest.approx(0.003)
    assert standard_error(0.8, 1000) == pytest.approx(math.sqrt(0.16 / 1000))


def test_a_small_drop_on_the_test_set_with_a_gain_on_the_new_source_is_promoted():
    # 2 standard errors at 90% on 10,000 images: 0.006.
    decision = decide(in_use(), candidate(0.8945, 0.80), GATE)
    assert decision.promoted and decision.reasons == []
    assert [row["passed"] for row in decision.rows] == [True, True]


def test_a_drop_beyond_the_margin_on_the_test_set_is_refused():
    decision = decide(in_use(), candidate(0.8935, 0.80), GATE)
    assert not decision.promoted
    assert decision.reasons == ["accuracy on the original test set drops 0.0065, more than the 0.0060 allowed"]


def test_any_new_source_dropping_beyond_its_noise_is_refused():
    # 1 standard error at 70% on 1,000 images: 0.0145.
    assert decide(in_use(), candidate(0.95, 0.686), GATE).promoted
    decision = decide(in_use(), candidate(0.95, 0.684), GATE)
    assert not decision.promoted and "new source studio drops 0.0160" in decision.reasons[0]
    assert "| new source studio | 1,000 | 0.7000 | 0.6840 | -0.0160 | 0.0145 | **no** |" in decision_table(decision)


def test_a_tuned_challenger_must_also_beat_the_model_in_use():
    assert not decide(in_use(), candidate(0.90, 0.70), GATE, must_beat=True).promoted
    assert decide(in_use(), candidate(0.9001, 0.70), GATE, must_beat=True).promoted


def test_labelling_sheet_lists_the_least_confident_first(tmp_path):
    images = np.arange(3 * 784, dtype=np.uint8).reshape(3, 28, 28, 1)
    probabilities = np.full((3, 10), 0.0)
    probabilities[0, 1], probabilities[0, 0] = 0.9, 0.1
    probabilities[1, 5], probabilities[1, 7] = 0.4, 0.6
    probabilities[2, 8], probabilities[2, 0] = 0.55, 0.45
    # The service kept one of them: its thumbnail and uploaded name go beside it (pipeline/serving/captures.py).
    captured = {"b/c.png": Captured(b"\x89PNG thumbnail", "IMG_0042.jpg")}
    write_labelling_sheet(images, ["a.jpg", "b/c.png", "d e.png"], probabilities, NAMES, tmp_path, captured)
    sheet = pd.read_csv(tmp_path / "labels.csv", keep_default_na=False)
    columns = ["file", "label", "predicted", "confidence", "source", "thumbnail", "uploaded_as"]
    assert list(sheet.columns) == columns
    assert list(sheet["thumbnail"]) == ["", "thumbnails/00001_c.png", ""]
    assert list(sheet["uploaded_as"]) == ["", "IMG_0042.jpg", ""]
    assert (tmp_path / "thumbnails" / "00001_c.png").read_bytes() == b"\x89PNG thumbnail"
    assert list(sheet["source"]) == ["d e.png", "b/c.png", "a.jpg"]
    assert list(sheet["predicted"]) == ["Bag", "Sneaker", "Trouser"]
    assert list(sheet["label"]) == ["", "", ""]
    assert list(sheet["file"]) == ["00000_d_e.png", "00001_c.png", "00002_a.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "00001_c.png")), images[1, :, :, 0])
