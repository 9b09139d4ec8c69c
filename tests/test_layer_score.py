"""Batched MLP layer score: exact cases, reproducibility and the cross-check with near_score."""

import numpy as np
import pytest
import torch

from layersize.layer_score import layer_score, seed_for
from layersize.nets import build_mlp
from layersize.score import near_score


@pytest.fixture(scope="module")
def low_rank_rows():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3000, 6)) @ rng.normal(size=(6, 40))
    return ((rows - rows.mean(0)) / rows.std(0)).astype(np.float32)


def test_pre_activation_rank_limited_by_input_rank(low_rank_rows):
    # Z = X W + 0 has rank at most 6, so its effective rank cannot exceed 6.
    score = layer_score(low_rank_rows, [], 32, repetitions=20, init="stanh", seed=1)
    assert score.pre_activation.max() <= 6.0 + 1e-6
    # The nonlinearity spreads the spectrum, so the post-activation rank is higher.
    assert score.post_activation.mean() > score.pre_activation.mean()


def test_linear_identity_features_give_full_rank():
    # Orthonormal input rows and orthogonal weights: Z has all singular values equal.
    rows = np.eye(16, dtype=np.float32)
    score = layer_score(rows, [], 16, repetitions=3, activation="relu", init="stanh", seed=0)
    assert score.pre_activation == pytest.approx(np.full(3, 16.0), rel=0.35)
    assert score.totals == pytest.approx(score.pre_activation + score.post_activation)


def test_same_seed_same_scores(low_rank_rows):
    first = layer_score(low_rank_rows, [8], 12, repetitions=10, seed=5)
    second = layer_score(low_rank_rows, [8], 12, repetitions=10, seed=5)
    other = layer_score(low_rank_rows, [8], 12, repetitions=10, seed=6)
    assert np.array_equal(first.totals, second.totals)
    assert not np.array_equal(first.totals, other.totals)


def test_chunking_does_not_change_scores(low_rank_rows):
    whole = layer_score(low_rank_rows, [], 10, repetitions=9, seed=2, chunk_size=9)
    split = layer_score(low_rank_rows, [], 10, repetitions=9, seed=2, chunk_size=9)
    assert np.array_equal(whole.totals, split.totals)


def test_global_rng_untouched(low_rank_rows):
    state = torch.get_rng_state()
    layer_score(low_rank_rows, [], 8, repetitions=4, seed=0)
    assert torch.equal(state, torch.get_rng_state())


def test_width_above_rows_raises():
    with pytest.raises(ValueError, match="needs 50 distinct sample rows.*only 20"):
        layer_score(np.zeros((20, 3), dtype=np.float32), [], 50)


def test_zero_weights_score_zero_without_nan():
    rows = np.random.default_rng(1).normal(size=(100, 5)).astype(np.float32)
    score = layer_score(rows, [], 10, repetitions=3, activation="tanh", init="stanh", seed=0)
    assert np.all(np.isfinite(score.totals))
    zero = layer_score(np.zeros((100, 5), dtype=np.float32), [], 10, repetitions=3, activation="tanh")
    assert np.array_equal(zero.totals, np.zeros(3))


def test_stderr_formula(low_rank_rows):
    score = layer_score(low_rank_rows, [], 8, repetitions=12, seed=3)
    assert score.stderr == pytest.approx(score.totals.std(ddof=1) / np.sqrt(12))


def test_seed_for_depends_on_every_key():
    seeds = {seed_for(0, 1, 8), seed_for(0, 1, 16), seed_for(0, 2, 8), seed_for(1, 1, 8)}
    assert len(seeds) == 4
    assert seed_for(0, 1, 8) == seed_for(0, 1, 8)


@pytest.mark.parametrize("activation", ["stanh", "relu"])
def test_agrees_with_near_score_on_mlp(low_rank_rows, activation):
    # Layer 2 of a 40-12-20 MLP: the batched score and the general per-layer
    # capture draw independently, so they must agree within their errors.
    fast = layer_score(low_rank_rows, [12], 20, repetitions=200, activation=activation, init="stanh", seed=0)
    model = build_mlp(40, [12, 20], activation=activation, n_outputs=None)
    general = near_score(model, low_rank_rows, repetitions=200, seed=1, init="stanh")
    second_layer = [layer for layer in general.layers if layer.width == 20]
    assert len(second_layer) == 2
    totals = second_layer[0].ranks + second_layer[1].ranks
    difference = fast.mean - totals.mean()
    combined = np.hypot(fast.stderr, totals.std(ddof=1) / np.sqrt(totals.size))
    assert abs(difference) < 4 * combined


@pytest.mark.parametrize(("n_available", "n_rows"), [(5000, 640), (5000, 70), (48634, 128), (100, 100)])
def test_draw_rows_distinct_for_any_ratio(n_available, n_rows):
    from layersize.layer_score import _draw_rows

    indices = _draw_rows(n_available, n_rows, 5, torch.Generator().manual_seed(0))

    assert indices.shape == (5, n_rows)
    for row in indices:
        assert len(set(row.tolist())) == n_rows
        assert int(row.max()) < n_available
