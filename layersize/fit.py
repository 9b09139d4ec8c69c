"""Power-law fit of the relative layer score and the width read off it.

The relative score y(x) = score(x) / x of a layer swept over widths x is fitted
with f(x) = α + β·x^γ. The slope ratio f'(x) / f'(1) = x^(γ−1) does not depend on
α or β, so the width at which the slope has fallen to a fraction t of its value
at width 1 is

    x* = t^(1 / (γ − 1)),

defined for γ < 1. The NEAR method's default is t = 0.005 (0.5 %).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import curve_fit

__all__ = [
    "DEFAULT_THRESHOLD",
    "FitError",
    "PoorFitWarning",
    "PowerLawFit",
    "fit_power_law",
    "power_law",
    "threshold_width",
]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.005
MIN_R_SQUARED = 0.9
# Widths beyond this are not a layer anyone builds; x* above it means the fit
# found no levelling off.
MAX_WIDTH = 1e9


class FitError(RuntimeError):
    """Raised when the power-law fit does not support a width estimate."""


class PoorFitWarning(UserWarning):
    """Warns that a fit succeeded but describes the scores poorly."""


def power_law(x, alpha: float, beta: float, gamma: float):
    """Evaluate f(x) = α + β·x^γ."""
    return alpha + beta * np.power(x, gamma)


def threshold_width(gamma: float, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Return x* = t^(1/(γ−1)), where the slope of α + β·x^γ is t times its slope at x = 1.

    Raises
    ------
    ValueError
        If ``threshold`` is not in (0, 1) or ``gamma`` is not below 1.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}.")
    if not gamma < 1.0:
        raise ValueError(f"The slope ratio x^(γ−1) only falls for γ < 1, got γ = {gamma}.")
    log_width = math.log(threshold) / (gamma - 1.0)
    if log_width > math.log(MAX_WIDTH):
        raise ValueError(
            f"γ = {gamma} is so close to 1 that x* = t^(1/(γ−1)) is about 10^{log_width / math.log(10):.0f} "
            f"neurons, more than {MAX_WIDTH:.0e}: the relative score barely levels off."
        )
    return float(math.exp(log_width))


@dataclass(frozen=True)
class PowerLawFit:
    """Result of fitting α + β·x^γ to relative scores.

    Attributes
    ----------
    alpha, beta, gamma : float
        Fitted parameters.
    gamma_stderr : float
        Standard error of γ from the fit's covariance matrix.
    r_squared : float
        Coefficient of determination of the fit on the relative scores.
    threshold : float
        Slope fraction t used for the width.
    width : float
        x* = t^(1/(γ−1)), not rounded.
    width_stderr : float
        Standard error of x* propagated from that of γ.
    """

    alpha: float
    beta: float
    gamma: float
    gamma_stderr: float
    r_squared: float
    threshold: float
    width: float
    width_stderr: float

    def to_dict(self) -> dict:
        return asdict(self)


def _initial_guess(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Find a starting point: for fixed γ the model is linear in α and β, so scan γ."""
    best = (math.inf, (float(y.mean()), 0.0, -0.5))
    for gamma in np.linspace(-3.0, 0.95, 80):
        design = np.column_stack([np.ones_like(x), np.power(x, gamma)])
        (alpha, beta), *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = float(np.sum((design @ (alpha, beta) - y) ** 2))
        if residual < best[0]:
            best = (residual, (float(alpha), float(beta), float(gamma)))
    return best[1]


def fit_power_law(
    widths,
    relative_scores,
    threshold: float = DEFAULT_THRESHOLD,
    anchor: tuple[float, float] | None = None,
) -> PowerLawFit:
    """Fit α + β·x^γ to relative scores and compute the width x*.

    Parameters
    ----------
    widths : array-like of shape (n_widths,)
        Swept widths x, at least 4 distinct positive values.
    relative_scores : array-like of shape (n_widths,)
        Layer score divided by width at each x.
    threshold : float, default=0.005
        Slope fraction t of the width x* = t^(1/(γ−1)).
    anchor : (float, float), optional
        An extra point (x, y) that the curve is fitted through together with
        the swept points, such as the relative score at width 1. R² and the
        poor-fit warning judge the swept points only, because a distant
        anchor makes almost any curve through it look good.

    Returns
    -------
    PowerLawFit

    Raises
    ------
    ValueError
        If the inputs have different lengths, fewer than 4 points, non-positive
        widths, or non-finite scores.
    FitError
        If the least-squares fit fails, or gives γ ≥ 1 (the relative score does
        not level off, so no width can be read off).

    Warns
    -----
    PoorFitWarning
        If R² is below 0.9.
    """
    x = np.asarray(widths, dtype=float)
    y = np.asarray(relative_scores, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"widths and relative_scores must be 1-D of equal length, got shapes {x.shape} and {y.shape}."
        )
    if x.size < 4 or np.unique(x).size < 4:
        raise ValueError(
            f"A fit of three parameters needs at least 4 distinct widths, got {x.tolist()}. "
            f"Sweep more widths."
        )
    if np.any(x <= 0):
        raise ValueError(f"Widths must be positive, got {x.tolist()}.")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"Relative scores must be finite, got {y.tolist()}.")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}.")

    fit_x, fit_y = x, y
    if anchor is not None:
        anchor_x, anchor_y = (float(value) for value in anchor)
        if not (anchor_x > 0 and math.isfinite(anchor_x) and math.isfinite(anchor_y)):
            raise ValueError(f"The anchor must be a point (x > 0, finite y), got {anchor!r}.")
        fit_x = np.concatenate([[anchor_x], x])
        fit_y = np.concatenate([[anchor_y], y])

    start = _initial_guess(fit_x, fit_y)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parameters, covariance = curve_fit(power_law, fit_x, fit_y, p0=start, maxfev=20000)
    except (RuntimeError, ValueError) as error:
        raise FitError(
            f"The fit of α + β·x^γ to the relative scores failed ({error}). Sweep a wider "
            f"range of widths or use more repetitions so that the scores are less noisy."
        ) from error
    alpha, beta, gamma = (float(value) for value in parameters)
    if not all(math.isfinite(value) for value in (alpha, beta, gamma)):
        raise FitError(
            f"The fit returned non-finite parameters (α={alpha}, β={beta}, γ={gamma}). "
            f"Sweep a wider range of widths or use more repetitions."
        )

    gamma_variance = float(covariance[2, 2]) if np.all(np.isfinite(covariance)) else math.inf
    gamma_stderr = math.sqrt(gamma_variance) if gamma_variance >= 0 else math.inf
    residuals = y - power_law(x, alpha, beta, gamma)
    total = float(np.sum((y - y.mean()) ** 2))
    r_squared = 1.0 - float(np.sum(residuals**2)) / total if total > 0 else 0.0

    if gamma >= 1.0:
        raise FitError(
            f"The fitted exponent γ = {gamma:.3g} is not below 1, so the relative score does "
            f"not level off between widths {fit_x.min():g} and {x.max():g} and no width can be "
            f"read off. Sweep wider layers."
        )
    try:
        width = threshold_width(gamma, threshold)
    except ValueError as error:
        raise FitError(f"{error} Sweep wider layers, or use more repetitions.") from error
    # Delta method: dx*/dγ = −x* ln(t) / (γ − 1)².
    width_stderr = abs(width * math.log(threshold) / (gamma - 1.0) ** 2) * gamma_stderr
    if r_squared < MIN_R_SQUARED:
        warnings.warn(
            f"The power law describes the relative scores poorly (R² = {r_squared:.3f} < "
            f"{MIN_R_SQUARED}); treat the width {width:.1f} with caution, and sweep more "
            f"widths or use more repetitions.",
            PoorFitWarning,
            stacklevel=2,
        )
    logger.debug("Fit α=%.4g β=%.4g γ=%.4g±%.2g R²=%.4f x*=%.2f", alpha, beta, gamma, gamma_stderr, r_squared, width)
    return PowerLawFit(
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        gamma_stderr=gamma_stderr,
        r_squared=r_squared,
        threshold=float(threshold),
        width=width,
        width_stderr=width_stderr,
    )
