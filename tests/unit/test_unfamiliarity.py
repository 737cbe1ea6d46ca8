"""The unfamiliarity score: a threshold that flags the chosen share of normal images, and the far ones flagged."""

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.model.unfamiliarity import (
    UnfamiliarityParams,
    fit,
    flagged,
    load,
    save,
    scores,
    standardised,
    threshold_at,
)

PARAMS = UnfamiliarityParams(flag_rate=0.05, neighbour_bank=800, neighbour_components=8, seed=0, batch_size=64)
CENTRES = np.random.default_rng(0).uniform(0, 4, (10, 32))
# A fixed map from the embedding to a second, narrower view, standing in for a block's pooled feature maps.
TO_SECOND_VIEW = np.random.default_rng(1).normal(0, 0.3, (32, 12))


def views_of(embeddings: np.ndarray, rng) -> list[np.ndarray]:
    second = np.maximum(embeddings @ TO_SECOND_VIEW + rng.normal(0, 0.3, (len(embeddings), 12)), 0)
    return [embeddings, second]


def clustered_views(count: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Ten classes, each a cloud around its own centre in 32 non-negative (ReLU-like) dimensions, and a second view."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    return views_of(np.maximum(CENTRES[labels] + rng.normal(0, 0.5, (count, 32)), 0), rng), labels


@pytest.fixture(scope="module")
def scorer():
    views, labels = clustered_views(3000, seed=1)
    validation, _ = clustered_views(2000, seed=2)
    return standardised(fit(views, labels, PARAMS), validation, PARAMS.flag_rate)


def test_the_threshold_flags_the_chosen_share_of_new_normal_images(scorer):
    normal, _ = clustered_views(4000, seed=3)
    assert 0.035 <= flagged(scorer, normal).mean() <= 0.065


def test_embeddings_unlike_every_class_are_flagged(scorer):
    rng = np.random.default_rng(4)
    between_classes = np.maximum(CENTRES[:5].mean(axis=0) + rng.normal(0, 0.5, (200, 32)), 0)
    far_away = rng.uniform(8, 12, (200, 32))
    silent = np.zeros((1, 32))  # an image that turns no unit on, as a blank one may
    assert flagged(scorer, views_of(between_classes, rng)).mean() >= 0.95
    assert flagged(scorer, views_of(far_away, rng)).all()
    assert flagged(scorer, [silent, np.zeros((1, 12))]).all()


def test_an_image_normal_in_its_embedding_but_not_in_an_earlier_view_is_flagged(scorer):
    rng = np.random.default_rng(5)
    (embeddings, second), _ = clustered_views(200, seed=5)
    # Strokes or texture the embedding has abstracted away still light up the earlier block's units.
    assert flagged(scorer, [embeddings, second + rng.uniform(3, 5, second.shape)]).mean() >= 0.95
    assert flagged(scorer, [embeddings, second]).mean() <= 0.1


def test_the_search_bank_is_a_seeded_subsample_of_the_training_images():
    views, labels = clustered_views(1000, seed=6)
    bank = fit(views, labels, PARAMS).bank
    assert bank.shape == (PARAMS.neighbour_bank, PARAMS.neighbour_components)
    np.testing.assert_allclose(np.linalg.norm(bank, axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(bank, fit(views, labels, PARAMS).bank)
    other_seed = UnfamiliarityParams(**{**PARAMS.__dict__, "seed": 1})
    assert not np.array_equal(bank, fit(views, labels, other_seed).bank)


def test_a_saved_scorer_gives_the_same_scores(scorer, tmp_path):
    save(scorer, tmp_path / "unfamiliarity.npz")
    loaded = load(tmp_path / "unfamiliarity.npz")
    normal, _ = clustered_views(100, seed=5)
    np.testing.assert_allclose(scores(loaded, normal), scores(scorer, normal))
    assert loaded.threshold == scorer.threshold


def test_views_that_do_not_match_the_scorer_are_refused(scorer):
    normal, _ = clustered_views(10, seed=7)
    with pytest.raises(PipelineError, match="the scorer reads 2 views of an image, got 1"):
        scores(scorer, normal[:1])


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
    views, labels = clustered_views(1200, seed=6)
    save(fit(views, labels, PARAMS), tmp_path / "unset")  # no .npz suffix: written as named
    with pytest.raises(PipelineError, match=r"unset: no threshold set \(got nan\)"):
        load(tmp_path / "unset")


def test_an_unset_threshold_or_rate_is_refused():
    views, labels = clustered_views(1200, seed=6)
    unset = fit(views, labels, PARAMS)
    with pytest.raises(PipelineError, match="threshold is not set"):
        flagged(unset, [view[:3] for view in views])
    with pytest.raises(PipelineError, match="flag_rate must be between 0 and 1, got 1.5"):
        threshold_at(np.zeros(3), 1.5)
