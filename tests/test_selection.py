"""Tests of ranking activation × initialisation pairs by NEAR score."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from shared_data import SHARED_DATA

from layersize.images import load_images
from layersize.nets import ACTIVATIONS, INITIALIZATIONS, build_mlp
from layersize.score import near_score
from layersize.selection import (
    Z_95,
    assign_tie_ranks,
    pair_seed,
    plot_selection,
    rank_activation_init,
)

MNIST_5K = SHARED_DATA / "mnist_5k.csv.gz"


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    # 80 random 4x4 "images" with pixels in [0, 1], like scaled image data.
    return np.random.default_rng(0).random((80, 16), dtype=np.float32)


def small_ranking(images, **options):
    arguments = {"hidden_widths": [8, 8], "n_outputs": 3, "repetitions": 2, "seed": 0}
    arguments.update(options)
    return rank_activation_init(images, **arguments)


# --- tie rule on synthetic scores ------------------------------------------------------


def test_ties_overlapping_intervals_share_rank():
    # Intervals [9.02, 10.98] and [8.52, 10.48] overlap.
    assert assign_tie_ranks([10.0, 9.5], [0.5, 0.5]) == [(1, 1), (1, 1)]


def test_ties_separated_intervals_distinct_ranks():
    # Intervals [9.80, 10.20] and [8.80, 9.20] are disjoint.
    assert assign_tie_ranks([10.0, 9.0], [0.1, 0.1]) == [(1, 1), (2, 2)]


def test_ties_rank_skips_after_group():
    ranks = assign_tie_ranks([100.0, 50.0, 49.0, 10.0, 1.0], [0.1, 1.0, 1.0, 0.1, 0.1])
    assert [rank for rank, _ in ranks] == [1, 2, 2, 4, 5]
    assert [group for _, group in ranks] == [1, 2, 2, 3, 4]


def test_ties_do_not_chain_through_neighbours():
    # 10 overlaps 9, 9 overlaps 8, but the intervals of 10 and 8 are disjoint,
    # so 8 starts a new group.
    stderr = 0.6 / Z_95
    ranks = assign_tie_ranks([10.0, 9.0, 8.0], [stderr] * 3)
    assert ranks == [(1, 1), (1, 1), (3, 2)]


def test_every_interval_in_a_group_overlaps():
    rng = np.random.default_rng(0)
    means = np.sort(rng.uniform(0, 10, 40))[::-1].tolist()
    stderrs = rng.uniform(0.05, 1.0, 40).tolist()

    ranks = assign_tie_ranks(means, stderrs)

    for first in range(40):
        for second in range(first + 1, 40):
            if ranks[first][1] == ranks[second][1]:
                assert means[second] + Z_95 * stderrs[second] >= means[first] - Z_95 * stderrs[first]
                assert means[first] + Z_95 * stderrs[first] >= means[second] - Z_95 * stderrs[second]


def test_ties_touching_intervals_count_as_overlap():
    # Both intervals end exactly at 9.5.
    assert assign_tie_ranks([10.0, 9.0], [0.5 / Z_95, 0.5 / Z_95]) == [(1, 1), (1, 1)]


def test_ties_zero_stderr_only_equal_means():
    assert assign_tie_ranks([3.0, 3.0, 2.0], [0.0, 0.0, 0.0]) == [(1, 1), (1, 1), (3, 2)]


def test_ties_empty_input():
    assert assign_tie_ranks([], []) == []


@pytest.mark.parametrize(
    ("means", "stderrs", "message"),
    [
        ([1.0, 2.0], [0.1, 0.1], "sorted from highest to lowest"),
        ([2.0, 1.0], [0.1], "1 standard errors"),
        ([2.0, 1.0], [0.1, -0.1], "non-negative"),
        ([2.0, 1.0], [0.1, float("nan")], "finite"),
    ],
)
def test_ties_invalid_input_raises(means, stderrs, message):
    with pytest.raises(ValueError, match=message):
        assign_tie_ranks(means, stderrs)


# --- rank_activation_init ----------------------------------------------------------------


def test_ranking_every_pair_once(images):
    result = small_ranking(images, activations=["relu", "tanh", "silu"], inits=["kaiming_uniform", "uniform"])
    names = [(pair.activation, pair.init) for pair in result.pairs]
    expected = {(a, i) for a in ("relu", "tanh", "silu") for i in ("kaiming_uniform", "uniform")}
    assert len(names) == len(expected)
    assert set(names) == expected


def test_ranking_defaults_to_all_pairs(images):
    result = small_ranking(images, repetitions=1)
    assert len(result.pairs) == len(ACTIVATIONS) * len(INITIALIZATIONS)


def test_ranking_sorted_and_ranks_follow_tie_rule(images):
    result = small_ranking(images, inits=["kaiming_uniform", "xavier_uniform", "uniform"])
    means = [pair.mean for pair in result.pairs]
    assert means == sorted(means, reverse=True)
    assert result.pairs[0].rank == 1
    for index in range(1, len(result.pairs)):
        below = result.pairs[index]
        above = result.pairs[index - 1]
        group_above = [pair for pair in result.pairs[:index] if pair.tie_group == above.tie_group]
        overlaps_group = all(pair.ci_low <= below.ci_high for pair in group_above)
        assert (below.tie_group == above.tie_group) == overlaps_group
        assert (below.rank == above.rank) == overlaps_group
    for position, pair in enumerate(result.pairs, start=1):
        group_members = [other for other in result.pairs if other.tie_group == pair.tie_group]
        assert pair.tied == (len(group_members) > 1)
        assert pair.rank_label == (f"{pair.rank}=" if pair.tied else str(pair.rank))
        if not pair.tied:
            assert pair.rank == position


def test_ranking_interval_95_percent(images):
    pair = small_ranking(images, activations=["silu"], inits=["stanh"]).pairs[0]
    assert pair.ci_low == pytest.approx(pair.mean - 1.96 * pair.stderr)
    assert pair.ci_high == pytest.approx(pair.mean + 1.96 * pair.stderr)


def test_ranking_same_seed_same_table(images):
    options = {"activations": ["relu", "tanhshrink"], "inits": ["xavier_uniform", "stanh"]}
    first = small_ranking(images, **options)
    second = small_ranking(images, **options)
    assert first.format_table() == second.format_table()
    assert first.to_dict() == second.to_dict()


def test_ranking_other_seed_other_scores(images):
    options = {"activations": ["relu"], "inits": ["xavier_uniform"]}
    first = small_ranking(images, seed=0, **options).pairs[0]
    second = small_ranking(images, seed=1, **options).pairs[0]
    assert first.seed != second.seed
    assert first.mean != second.mean


def test_ranking_pair_score_independent_of_other_pairs(images):
    alone = small_ranking(images, activations=["tanh"], inits=["kaiming_uniform"]).pairs[0]
    together = small_ranking(images, activations=["relu", "tanh"], inits=["uniform", "kaiming_uniform"])
    match = next(pair for pair in together.pairs if (pair.activation, pair.init) == ("tanh", "kaiming_uniform"))
    assert match.mean == alone.mean
    assert match.seed == alone.seed == pair_seed(0, "tanh", "kaiming_uniform")


def test_ranking_names_case_insensitive_and_deduplicated(images):
    result = small_ranking(images, activations=["ReLU", "relu"], inits=["Uniform"])
    assert [(pair.activation, pair.init) for pair in result.pairs] == [("relu", "uniform")]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_ranking_scores_every_activation_output(images, activation):
    pair = small_ranking(images, activations=[activation], inits=["stanh"]).pairs[0]

    kinds = [layer.kind for layer in pair.score.layers]
    widths = [layer.width for layer in pair.score.layers]

    # Linear, activation, Linear, activation, Linear: the custom sTanh module too.
    assert kinds == ["weights", "activation", "weights", "activation", "weights"]
    assert widths == [8, 8, 8, 8, 3]


@pytest.mark.parametrize("init", sorted(INITIALIZATIONS))
def test_ranking_applies_named_init(images, init):
    pair = small_ranking(images, activations=["tanh"], inits=[init]).pairs[0]
    reference = near_score(
        build_mlp(16, [8, 8], "tanh", 3), images, repetitions=2,
        seed=pair_seed(0, "tanh", init), init=init,
    )
    other_init = "kaiming_uniform" if init != "kaiming_uniform" else "uniform"
    other = near_score(
        build_mlp(16, [8, 8], "tanh", 3), images, repetitions=2,
        seed=pair_seed(0, "tanh", init), init=other_init,
    )

    assert pair.mean == reference.mean
    assert pair.mean != other.mean


def test_ranking_keeps_global_rng(images):
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()

    small_ranking(images, activations=["relu", "stanh"], inits=["pytorch", "uniform"])

    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


def test_ranking_table_marks_ties():
    # With seed 0 the Kaiming and Xavier pairs score 52.7 ± 1.4 and 51.6 ± 2.6,
    # so their 95% intervals overlap. The U(0, 1) pair scores 6.1 ± 0.02.
    features = np.random.default_rng(2).random((120, 64), dtype=np.float32)
    result = rank_activation_init(
        features, [24, 24], 5, activations=["tanh"], inits=["kaiming_uniform", "xavier_uniform", "uniform"],
        repetitions=4, seed=0,
    )
    labels = {pair.init: pair.rank_label for pair in result.pairs}
    rows = {line.split()[2]: line.split()[0] for line in result.format_table().splitlines()[2:5]}

    assert result.pairs[0].ci_low <= result.pairs[1].ci_high
    assert labels == {"kaiming_uniform": "1=", "xavier_uniform": "1=", "uniform": "3"}
    assert rows == labels
    assert [pair.tie_group for pair in result.pairs] == [1, 1, 2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"activations": ["relu", "gelu"]}, "Unknown activation 'gelu'"),
        ({"inits": ["orthogonal"]}, "Unknown initialisation 'orthogonal'"),
        ({"activations": []}, "No activation"),
        ({"hidden_widths": [8, 0]}, "positive integers"),
        ({"n_outputs": 0}, "positive integers"),
        ({"hidden_widths": [8, 200]}, "needs 200 samples"),
    ],
)
def test_ranking_invalid_arguments_raise(images, options, message):
    with pytest.raises(ValueError, match=message):
        small_ranking(images, **options)


def test_ranking_features_must_be_matrix(images):
    with pytest.raises(ValueError, match="shape"):
        small_ranking(images.reshape(80, 4, 4))


def test_ranking_uniform_last_on_pixel_data():
    # Non-negative inputs through all-positive U(0, 1) weights give nearly
    # rank-one layer outputs, so every uniform pair should rank below every other.
    features = np.random.default_rng(1).random((120, 64), dtype=np.float32)
    result = rank_activation_init(
        features, [24, 24], 5, inits=["kaiming_uniform", "xavier_uniform", "stanh", "uniform"],
        repetitions=2, seed=0,
    )
    inits_in_order = [pair.init for pair in result.pairs]
    n_uniform = len(ACTIVATIONS)
    assert inits_in_order[-n_uniform:] == ["uniform"] * n_uniform
    lowest_other = min(pair.ci_low for pair in result.pairs if pair.init != "uniform")
    highest_uniform = max(pair.ci_high for pair in result.pairs if pair.init == "uniform")
    assert highest_uniform < lowest_other


@pytest.mark.skipif(not MNIST_5K.exists(), reason=f"MNIST sample not found at {MNIST_5K}")
def test_ranking_uniform_last_on_mnist():
    # The file is sorted by class, so every 12th image gives all ten digits.
    features = load_images(MNIST_5K).features[::12]
    result = rank_activation_init(
        features, [32, 32], 10, activations=["relu", "tanhshrink"],
        inits=["kaiming_uniform", "xavier_uniform", "uniform"], repetitions=2, seed=0,
    )
    assert [pair.init for pair in result.pairs[-2:]] == ["uniform", "uniform"]
    assert result.pairs[-3].ci_low > result.pairs[-2].ci_high


# --- output ------------------------------------------------------------------------------


def test_result_to_dict_is_json(images):
    result = small_ranking(images, activations=["silu"], inits=["kaiming_uniform", "uniform"])
    document = json.loads(json.dumps(result.to_dict()))
    assert document["architecture"] == "16-8-8-3"
    assert document["repetitions"] == 2
    assert len(document["pairs"]) == 2
    first = document["pairs"][0]
    for key in ("rank", "rank_label", "tie_group", "activation", "init", "mean", "stderr", "ci_low", "ci_high"):
        assert key in first
    assert len(first["totals"]) == 2
    # Three Linear outputs and two activation outputs.
    assert len(first["layers"]) == 5


def test_result_table_lists_every_pair(images):
    result = small_ranking(images, activations=["silu", "tanh"], inits=["uniform"])
    lines = result.format_table().splitlines()
    assert "16-8-8-3" in lines[0]
    rows = [line for line in lines if line.split()[1:3] in (["silu", "uniform"], ["tanh", "uniform"])]
    assert len(rows) == 2
    assert rows[0].split()[0] == result.pairs[0].rank_label


def test_plot_writes_png(images, tmp_path):
    result = small_ranking(images, activations=["relu"], inits=["kaiming_uniform", "uniform"])
    path = tmp_path / "plots" / "selection.png"
    plot_selection(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [entry.name for entry in path.parent.iterdir()] == ["selection.png"]
