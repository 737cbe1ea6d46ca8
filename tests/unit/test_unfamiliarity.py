"""The unfamiliarity score: a threshold that flags the chosen share of normal images, and the far ones flagged."""

import dataclasses

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.model.unfamiliarity import fit, flagged, load, save, scores, threshold_at

# An output layer that tells the ten classes apart: each class's logit is its centre's direction.
LOGIT_WEIGHTS = np.random.default_rng(0).uniform(0, 4, (10, 32)).T / 8
LOGIT_BIAS = np.zeros(10)


def clustered_embeddings(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten classes, each a cloud around its own centre in 32 non-negative (ReLU-like) dimensions."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).uniform(0, 4, (10, 32))
    labels = rng.integers(0, 10, count)
    return np.maximum(centres[labels] + rng.normal(0, 0.5, (count, 32)), 0), labels


@pytest.fixture(scope="module")
def scorer():
    embeddings, labels = clustered_embeddings(3000, seed=1)
    unset = fit(embeddings, labels, LOGIT_WEIGHTS, LOGIT_BIAS)
    validation, _ = clustered_embeddings(2000, seed=2)
    return dataclasses.replace(unset, threshold=threshold_at(scores(unset, validation), 0.05))


def test_the_threshold_flags_the_chosen_share_of_new_normal_images(scorer):
    normal, _ = clustered_embeddings(4000, seed=3)
    assert 0.035 <= flagged(scorer, normal).mean() <= 0.065


def test_embeddings_unlike_every_class_are_flagged(scorer):
    rng = np.random.default_rng(4)
    between_classes = np.random.default_rng(0).uniform(0, 4, (10, 32))[:5].mean(axis=0) + rng.normal(0, 0.5, (200, 32))
    far_away = rng.uniform(8, 12, (200, 32))
    silent = np.zeros((1, 32))  # an image that turns no unit on, as a blank one may
    assert flagged(scorer, np.maximum(between_classes, 0)).mean() >= 0.95
    assert flagged(scorer, far_away).all() and flagged(scorer, silent).all()


def test_a_saved_scorer_gives_the_same_scores(scorer, tmp_path):
    save(scorer, tmp_path / "unfamiliarity.npz")
    loaded = load(tmp_path / "unfamiliarity.npz")
    normal, _ = clustered_embeddings(100, seed=5)
    np.testing.assert_allclose(scores(loaded, normal), scores(scorer, normal))
    assert loaded.threshold == scorer.threshold


def test_missing_and_corrupt_files_are_named_in_one_line(scorer, tmp_path):
    with pytest.raises(PipelineError, match=r"absent\.npz: unfamiliarity file not found"):
        load(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(PipelineError, match=r"text\.npz: not an unfamiliarity \.npz \(not a zip archive\)"):
        load(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", images=np.zeros(3))
    with pytest.raises(PipelineError, match=r"other\.npz: not an unfamiliarity \.npz") as error:
        load(tmp_path / "other.npz")
    assert "\n" not in str(error.value)


def test_a_file_without_a_threshold_is_refused(tmp_path):
    embeddings, labels = clustered_embeddings(1200, seed=6)
    save(fit(embeddings, labels, LOGIT_WEIGHTS, LOGIT_BIAS), tmp_path / "unset")  # no .npz suffix: written as named
    with pytest.raises(PipelineError, match=r"unset: no threshold set \(got nan\)"):
        load(tmp_path / "unset")


def test_an_unset_threshold_or_rate_is_refused():
    embeddings, labels = clustered_embeddings(1200, seed=6)
    unset = fit(embeddings, labels, LOGIT_WEIGHTS, LOGIT_BIAS)
    with pytest.raises(PipelineError, match="threshold is not set"):
        flagged(unset, embeddings[:3])
    with pytest.raises(PipelineError, match="flag_rate must be between 0 and 1, got 1.5"):
        threshold_at(scores(unset, embeddings), 1.5)
