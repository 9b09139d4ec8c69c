"""Power-law fit and the threshold width."""

import math

import numpy as np
import pytest

from layersize.fit import FitError, PoorFitWarning, fit_power_law, power_law, threshold_width


@pytest.mark.parametrize(("gamma", "threshold"), [(-0.3, 0.005), (-1.0, 0.01), (0.5, 0.005)])
def test_threshold_width_formula(gamma, threshold):
    width = threshold_width(gamma, threshold)
    assert width == pytest.approx(threshold ** (1 / (gamma - 1)))
    # The slope ratio x^(γ−1) at that width equals the threshold.
    assert width ** (gamma - 1) == pytest.approx(threshold)


def test_threshold_width_example_value():
    # γ = −1 and t = 0.0025 give x* = 0.0025^(−1/2) = 20.
    assert threshold_width(-1.0, 0.0025) == pytest.approx(20.0)


@pytest.mark.parametrize("gamma", [1.0, 1.5])
def test_threshold_width_rejects_gamma_at_least_one(gamma):
    with pytest.raises(ValueError, match="γ < 1"):
        threshold_width(gamma)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1])
def test_threshold_width_rejects_bad_threshold(threshold):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        threshold_width(-0.5, threshold)


@pytest.mark.parametrize(("alpha", "beta", "gamma"), [(0.05, 1.4, -0.3), (0.2, 3.0, -1.2), (1.0, -0.5, 0.4)])
def test_fit_recovers_exact_power_law(alpha, beta, gamma):
    widths = np.array([4, 8, 12, 16, 24, 32, 48, 64, 96, 128], dtype=float)
    fit = fit_power_law(widths, power_law(widths, alpha, beta, gamma))
    assert fit.alpha == pytest.approx(alpha, abs=1e-6)
    assert fit.beta == pytest.approx(beta, rel=1e-6)
    assert fit.gamma == pytest.approx(gamma, abs=1e-6)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.width == pytest.approx(threshold_width(gamma, 0.005), rel=1e-5)


def test_fit_on_noisy_power_law_reports_uncertainty():
    widths = np.geomspace(4, 256, 12)
    noise = np.random.default_rng(0).normal(scale=0.003, size=widths.size)
    fit = fit_power_law(widths, power_law(widths, 0.02, 1.5, -0.3) + noise)
    assert abs(fit.gamma - (-0.3)) < 3 * fit.gamma_stderr + 0.02
    assert fit.width_stderr > 0
    assert math.isfinite(fit.width_stderr)


def test_fit_rejects_rising_exponent():
    widths = np.array([4, 8, 16, 32, 64, 128], dtype=float)
    with pytest.raises(FitError, match="not below 1"):
        fit_power_law(widths, power_law(widths, 0.0, 0.01, 1.5))


def test_fit_warns_on_poor_fit():
    widths = np.array([4, 8, 16, 32, 64, 128], dtype=float)
    step = np.array([1.0, 1.0, 1.0, 0.2, 0.2, 0.2])
    with pytest.warns(PoorFitWarning, match="R²"):
        fit = fit_power_law(widths, step)
    assert fit.r_squared < 0.9


@pytest.mark.parametrize(
    ("widths", "scores", "message"),
    [
        ([4, 8, 16], [1.0, 0.8, 0.7], "at least 4"),
        ([4, 8, 16, 32], [1.0, 0.8, 0.7], "equal length"),
        ([0, 8, 16, 32], [1.0, 0.8, 0.7, 0.6], "positive"),
        ([4, 8, 16, 32], [1.0, np.nan, 0.7, 0.6], "finite"),
    ],
)
def test_fit_rejects_invalid_input(widths, scores, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(widths, scores)


def test_gamma_near_one_raises_fit_error():
    with pytest.raises(ValueError, match="so close to 1"):
        threshold_width(0.999, 0.005)

    x = np.array([1.0, 4, 8, 16, 32, 64, 128])
    with pytest.raises(FitError):
        fit_power_law(x, 1 - 0.001 * x)


def test_anchor_joins_fit_but_not_r_squared():
    x = np.array([4.0, 8, 16, 32, 64])
    y = 0.3 + 1.7 * x**-0.4 + np.array([0.01, -0.01, 0.01, -0.01, 0.01])

    anchored = fit_power_law(x, y, threshold=0.01, anchor=(1.0, 2.0))
    pooled = fit_power_law([1.0, *x], [2.0, *y], threshold=0.01)
    residuals = y - power_law(x, anchored.alpha, anchored.beta, anchored.gamma)
    swept_r_squared = 1 - np.sum(residuals**2) / np.sum((y - y.mean()) ** 2)

    assert (anchored.alpha, anchored.beta, anchored.gamma) == (pooled.alpha, pooled.beta, pooled.gamma)
    assert anchored.width == pooled.width
    assert anchored.r_squared == pytest.approx(swept_r_squared)
    assert anchored.r_squared != pytest.approx(pooled.r_squared)


@pytest.mark.parametrize("anchor", [(0.0, 2.0), (1.0, float("nan"))])
def test_invalid_anchor_raises(anchor):
    with pytest.raises(ValueError, match="anchor must be a point"):
        fit_power_law([4, 8, 16, 32], [1.0, 0.8, 0.7, 0.65], anchor=anchor)
