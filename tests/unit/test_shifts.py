"""Simulated shifts: each one moves the batch the way it says, reproducibly; strength 0 changes nothing."""

import numpy as np
import pytest

from pipeline.drift.features import pixel_statistics
from pipeline.drift.shifts import SCENARIOS, apply_shift
from pipeline.errors import PipelineError
from tests.support.data import square_images


@pytest.fixture(scope="module")
def batch():
    return square_images(200, seed=0)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_scenario_changes_the_batch_reproducibly(batch, scenario):
    images, labels = batch
    shifted, shifted_labels = apply_shift(images, labels, scenario, None, seed=3)
    again, _ = apply_shift(images, labels, scenario, None, seed=3)
    assert shifted.dtype == np.uint8 and shifted.shape == images.shape
    assert not np.array_equal(shifted, images)
    np.testing.assert_array_equal(shifted, again)


@pytest.mark.parametrize("scenario", sorted(set(SCENARIOS) - {"class_mix", "inversion"}))
def test_strength_zero_is_no_shift(batch, scenario):
    images, labels = batch
    np.testing.assert_array_equal(apply_shift(images, labels, scenario, 0.0, seed=3)[0], images)


@pytest.mark.parametrize(
    ("scenario", "feature", "direction"),
    [
        ("brightness", "mean_intensity", 1),
        ("contrast", "contrast", -1),
        ("blur", "edge_energy", -1),
        ("noise", "edge_energy", 1),
        ("inversion", "mean_intensity", 1),
    ],
)
def test_scenarios_move_the_feature_they_should(batch, scenario, feature, direction):
    images, labels = batch
    before = pixel_statistics(images)[feature].mean()
    after = pixel_statistics(apply_shift(images, labels, scenario, None, seed=3)[0])[feature].mean()
    assert (after - before) * direction > 0


def test_class_mix_skews_the_batch_towards_one_class(batch):
    images, labels = batch
    _, mixed = apply_shift(images, labels, "class_mix", 0.5, seed=3)
    assert len(mixed) == len(labels)
    assert np.bincount(mixed).max() / len(mixed) >= 0.5
    with pytest.raises(PipelineError, match="needs labelled images"):
        apply_shift(images, None, "class_mix", 0.5, seed=3)
