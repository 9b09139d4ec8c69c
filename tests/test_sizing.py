"""Width sweep and greedy multi-layer estimate on small synthetic data."""

import warnings

import numpy as np
import pytest

from layersize.fit import FitError, PoorFitWarning, fit_power_law
from layersize.layer_score import layer_score
from layersize.sizing import (
    PIECE_WORK,
    _pieces,
    _warn_if_anchor_decides,
    estimate_layer_size,
    estimate_layer_sizes,
    validate_widths,
)


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4000, 8)) @ rng.normal(size=(8, 30))
    return ((data - data.mean(0)) / data.std(0)).astype(np.float32)


WIDTHS = (4, 8, 12, 16, 24, 32, 48, 64)


@pytest.mark.filterwarnings("ignore::layersize.fit.PoorFitWarning")
def test_greedy_driver_fixes_earlier_layers(rows):
    result = estimate_layer_sizes(rows, n_layers=2, widths=WIDTHS, repetitions=24, seed=0,
                                  allow_extrapolation=True)
    assert len(result.widths) == 2
    first, second = result.layers
    assert first.fixed_widths == ()
    assert second.fixed_widths == (first.width,)
    for layer in result.layers:
        assert layer.width == int(np.ceil(layer.fit.width))
        assert layer.fit.gamma < 1
        assert [point.width for point in layer.points] == list(WIDTHS)
    document = result.to_dict()
    assert document["widths"] == result.widths
    assert document["settings"]["repetitions"] == 24


def test_same_seed_same_widths(rows):
    first = estimate_layer_size(rows, widths=WIDTHS, repetitions=16, seed=3, allow_extrapolation=True)
    second = estimate_layer_size(rows, widths=WIDTHS, repetitions=16, seed=3, allow_extrapolation=True)
    assert first.fit == second.fit
    assert first.width == second.width


@pytest.mark.filterwarnings("ignore::layersize.fit.PoorFitWarning")
def test_width_scores_do_not_depend_on_grid(rows):
    full = estimate_layer_size(rows, widths=WIDTHS, repetitions=8, seed=1, allow_extrapolation=True)
    part = estimate_layer_size(rows, widths=WIDTHS[2:], repetitions=8, seed=1, allow_extrapolation=True)
    assert full.points[2:] == part.points


def test_target_stderr_stops_early(rows):
    loose = estimate_layer_size(rows, widths=WIDTHS, repetitions=400, target_stderr=0.05, seed=0,
                                allow_extrapolation=True)
    assert all(point.repetitions == 50 for point in loose.points)
    assert all(point.relative_stderr <= 0.05 for point in loose.points)


@pytest.mark.filterwarnings("ignore::layersize.fit.PoorFitWarning")
def test_extrapolated_width_raises(rows):
    with pytest.raises(FitError, match="Sweep a range that contains it"):
        estimate_layer_size(rows, widths=(96, 112, 128, 144), repetitions=4, seed=0)


@pytest.mark.parametrize(
    ("widths", "message"),
    [((4, 8, 16), "at least 4 distinct"), ((1, 4, 8, 16), "at least 2"), ((4, 8, 16, 5000), "only 4000")],
)
def test_validate_widths_errors(widths, message):
    with pytest.raises(ValueError, match=message):
        validate_widths(widths, 4000)


def test_validate_widths_sorts_and_dedupes():
    assert validate_widths([16, 4, 8, 8, 32], 100) == (4, 8, 16, 32)


def test_nan_features_raise(rows):
    bad = rows.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        estimate_layer_size(bad, widths=WIDTHS, repetitions=2)


def test_unknown_activation_raises(rows):
    with pytest.raises(ValueError, match="Unknown activation"):
        estimate_layer_sizes(rows, n_layers=1, widths=WIDTHS, repetitions=2, activation="gelu")


def test_anchor_adds_width_one_point_to_fit(rows):
    anchored = estimate_layer_size(rows, widths=(4, 8, 16, 32, 64), repetitions=20, seed=3,
                                   threshold=0.05, allow_extrapolation=True)
    plain = estimate_layer_size(rows, widths=(4, 8, 16, 32, 64), repetitions=20, seed=3,
                                threshold=0.05, allow_extrapolation=True, anchor=False)
    x = [point.width for point in anchored.points]
    y = [point.relative_mean for point in anchored.points]
    refit = fit_power_law(x, y, threshold=0.05, anchor=(1.0, 2.0))

    assert anchored.anchor == 2.0
    assert plain.anchor is None
    assert anchored.fit == refit
    assert plain.fit == fit_power_law(x, y, threshold=0.05)
    assert [p.mean for p in anchored.points] == [p.mean for p in plain.points]


@pytest.mark.filterwarnings("ignore::layersize.fit.PoorFitWarning")
def test_anchor_of_relu_is_measured_below_two(rows):
    estimate = estimate_layer_size(rows, widths=(4, 8, 16, 32, 64), repetitions=200, seed=0,
                                   activation="relu", init="kaiming_uniform",
                                   threshold=0.05, allow_extrapolation=True)

    # A 1 × 1 ReLU output is 0, of effective rank 0, for about half the draws.
    assert 1.3 < estimate.anchor < 1.7


def test_anchored_r_squared_uses_swept_points_only(rows):
    estimate = estimate_layer_size(rows, widths=(4, 8, 16, 32, 64), repetitions=20, seed=3,
                                   threshold=0.05, allow_extrapolation=True)
    x = estimate.widths.astype(float)
    y = estimate.relative_scores
    fit = estimate.fit
    residuals = y - (fit.alpha + fit.beta * x**fit.gamma)
    expected = 1 - np.sum(residuals**2) / np.sum((y - y.mean()) ** 2)

    assert fit.r_squared == pytest.approx(expected)


def test_identical_rows_raise():
    with pytest.raises(ValueError, match="All 300 input rows are identical"):
        estimate_layer_size(np.ones((300, 5)), widths=(4, 8, 16, 32), repetitions=4)


def test_one_dimensional_features_raise():
    with pytest.raises(ValueError, match="n_samples, n_features"):
        estimate_layer_sizes(np.random.default_rng(0).random(500), n_layers=1)


def test_default_sweep_on_small_data():
    from layersize.sizing import default_sweep

    assert default_sweep("structures", 50) == ((4, 8, 12, 16, 24, 32, 48), 400)
    with pytest.raises(ValueError, match="only 6 sample rows"):
        default_sweep("structures", 6)


def test_width_one_relative_score_is_two(rows):
    from layersize.layer_score import layer_score

    score = layer_score(rows, (), 1, repetitions=10, seed=0)

    np.testing.assert_allclose(score.totals, 2.0)


def test_warns_when_width_rests_on_anchor():
    # Relative scores that fall linearly in log(width) follow no power law, and
    # the swept points alone put the width far from that of the anchored fit.
    x = np.array([10.0, 20, 40, 80, 160, 320, 640])
    y = 1.5 - 0.15 * np.log(x)
    anchored = fit_power_law([1.0, *x], [2.0, *y], threshold=0.01)

    with pytest.warns(PoorFitWarning, match="rests mainly on the exact point"):
        _warn_if_anchor_decides(1, anchored, x, y, 0.01)


def test_no_anchor_warning_for_exact_power_law():
    x = np.array([4.0, 8, 16, 32, 64, 128])
    y = 0.2 + 1.8 * x**-0.3
    anchored = fit_power_law([1.0, *x], [2.0, *y], threshold=0.005)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_anchor_decides(1, anchored, x, y, 0.005)


@pytest.mark.filterwarnings("ignore::layersize.fit.PoorFitWarning")
def test_workers_do_not_change_the_result(rows):
    serial = estimate_layer_sizes(rows, n_layers=2, widths=(4, 8, 16, 32), repetitions=10, seed=5,
                                  threshold=0.05, allow_extrapolation=True, workers=1)
    threaded = estimate_layer_sizes(rows, n_layers=2, widths=(4, 8, 16, 32), repetitions=10, seed=5,
                                    threshold=0.05, allow_extrapolation=True, workers=3)

    assert threaded.widths == serial.widths
    assert [layer.fit for layer in threaded.layers] == [layer.fit for layer in serial.layers]


def test_thread_count_restored_after_threaded_sweep(rows):
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        estimate_layer_size(rows, widths=(4, 8, 16, 32), repetitions=4, seed=0, workers=2,
                            threshold=0.05, allow_extrapolation=True)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)

    assert after == 2


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_invalid_workers_raise(rows, workers):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        estimate_layer_size(rows, widths=(4, 8, 16, 32), repetitions=4, workers=workers)


@pytest.mark.parametrize("width, repetitions", [(4, 400), (600, 5), (1280, 5), (640, 20), (1024, 3)])
def test_pieces_cover_repetitions(width, repetitions):
    sizes = _pieces(width, repetitions)

    assert sum(sizes) == repetitions
    assert all(size >= 1 for size in sizes)
    # Every piece but the last is full, and no piece of several repetitions exceeds the limit.
    assert len(set(sizes[:-1])) <= 1
    assert sizes[-1] <= sizes[0]
    assert all(size == 1 or width**3 * size <= PIECE_WORK for size in sizes)


@pytest.mark.filterwarnings("ignore::layersize.fit.PoorFitWarning")
def test_split_widths_ignore_worker_count(rows, monkeypatch):
    # A small piece limit splits these narrow widths as 1280 is split on MNIST.
    monkeypatch.setattr("layersize.sizing.PIECE_WORK", 16**3 * 3)
    assert _pieces(32, 10) == [1] * 10
    runs = {
        workers: estimate_layer_size(rows, widths=(4, 8, 16, 32), repetitions=10, seed=2,
                                     threshold=0.05, allow_extrapolation=True, workers=workers)
        for workers in (1, 2, 3)
    }

    for workers in (2, 3):
        assert runs[workers].points == runs[1].points
        assert runs[workers].fit == runs[1].fit
    assert all(point.repetitions == 10 for point in runs[1].points)


@pytest.mark.filterwarnings("ignore::layersize.fit.PoorFitWarning")
def test_unsplit_widths_keep_their_draws(rows, monkeypatch):
    whole = estimate_layer_size(rows, widths=(4, 8, 16, 32), repetitions=6, seed=4,
                                threshold=0.05, allow_extrapolation=True)
    monkeypatch.setattr("layersize.sizing.PIECE_WORK", 32**3 * 2)
    split = estimate_layer_size(rows, widths=(4, 8, 16, 32), repetitions=6, seed=4,
                                threshold=0.05, allow_extrapolation=True)

    # Widths up to 16 fit in one piece and keep their draws. Width 32 is split
    # into 3 pieces of 2 repetitions with draws of their own.
    assert split.points[:3] == whole.points[:3]
    assert split.points[3] != whole.points[3]


def test_failed_piece_cancels_waiting_tasks(rows, monkeypatch):
    import time

    import layersize.sizing as sizing

    calls = []

    def failing_score(*arguments, **options):
        calls.append(arguments[2])
        if len(calls) > 1:
            time.sleep(0.05)  # slow enough that the main thread cancels before many more start
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(sizing, "PIECE_WORK", 1)
    monkeypatch.setattr(sizing, "layer_score", failing_score)
    with pytest.raises(RuntimeError, match="scoring failed"):
        estimate_layer_size(rows, widths=(4, 8, 16, 32), repetitions=10, workers=1)

    # 40 one-repetition pieces were queued. The worker may start a few more before
    # the main thread cancels the rest, but not all of them.
    assert len(calls) <= 10


def test_interrupt_cancels_waiting_tasks(rows, monkeypatch):
    import os
    import signal
    import time

    import layersize.sizing as sizing

    calls = []

    def score_then_interrupt(*arguments, **options):
        calls.append(arguments[2])
        if len(calls) == 1:
            # Ctrl-C: SIGINT reaches the main thread while it waits for results,
            # after it has queued every task.
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGINT)
        else:
            time.sleep(0.05)  # slow enough that the main thread cancels before many more start
        return layer_score(*arguments, **options)

    monkeypatch.setattr(sizing, "PIECE_WORK", 1)
    monkeypatch.setattr(sizing, "layer_score", score_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        estimate_layer_size(rows, widths=(4, 8, 16, 32), repetitions=10, workers=1)

    # 40 one-repetition pieces were queued. The worker may start a few more before
    # the main thread cancels the rest, but not all of them.
    assert len(calls) <= 10
