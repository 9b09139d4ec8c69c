"""Width sweep of one layer, and the greedy estimate of several hidden layers.

For layer k the widths of layers 1 … k−1 are fixed and the candidate width x of
layer k is swept. The NEAR layer score divided by x is fitted with α + β·x^γ.
The width x* is where the fitted slope has fallen to the fraction t of its
slope at width 1 (see :mod:`layersize.fit`). Layer k is then
fixed at ⌈x*⌉ and layer k+1 is swept on top of it. The score of a layer depends
only on the layers before it, so one greedy pass suffices.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from layersize.fit import (
    DEFAULT_THRESHOLD,
    FitError,
    PoorFitWarning,
    PowerLawFit,
    fit_power_law,
)
from layersize.layer_score import LayerScore, layer_score, seed_for
from layersize.nets import get_activation, get_initialization
from layersize.rank import Method, one_cpu_thread

__all__ = [
    "DEFAULT_REPETITIONS",
    "DEFAULT_WIDTHS",
    "IMAGE_REPETITIONS",
    "IMAGE_WIDTHS",
    "default_sweep",
    "LayerEstimate",
    "SizingResult",
    "WidthPoint",
    "estimate_layer_size",
    "estimate_layer_sizes",
    "validate_widths",
]

logger = logging.getLogger(__name__)

DEFAULT_WIDTHS: tuple[int, ...] = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
"""Default sweep for atomic networks: estimates of 30–100 neurons are typical."""
DEFAULT_REPETITIONS = 400

# Image classifiers need wider layers than atomic networks: an MLP on 28 × 28
# digits is estimated at 100-200 neurons. Their scores vary less between
# repetitions, and each repetition costs more, so fewer are drawn.
IMAGE_WIDTHS: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640)
IMAGE_REPETITIONS = 20


def default_sweep(kind: str, n_samples: int | None = None) -> tuple[tuple[int, ...], int]:
    """Return the default width grid and repetitions for "structures" or "images" input.

    With ``n_samples``, widths above the number of sample rows are dropped.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, or fewer than 4 default widths fit into
        ``n_samples`` rows.
    """
    if kind == "images":
        grid, repetitions = IMAGE_WIDTHS, IMAGE_REPETITIONS
    elif kind == "structures":
        grid, repetitions = DEFAULT_WIDTHS, DEFAULT_REPETITIONS
    else:
        raise ValueError(f"kind must be 'structures' or 'images', got {kind!r}.")
    if n_samples is None:
        return grid, repetitions
    fitting = tuple(width for width in grid if width <= n_samples)
    if len(fitting) < 4:
        rows = "atoms" if kind == "structures" else "images"
        raise ValueError(
            f"The data has only {n_samples} sample rows ({rows}), but the default sweep "
            f"needs at least {grid[3]} for its 4 narrowest widths {list(grid[:4])}. A "
            f"layer of width n needs n distinct rows, so use a larger data set (hundreds of "
            f"rows at least), or give 4 widths of at most {n_samples} with --widths."
        )
    return fitting, repetitions


MIN_CHUNK_REPETITIONS = 50


@dataclass(frozen=True)
class WidthPoint:
    """Summary of the scores of one layer at one width."""

    width: int
    mean: float
    stderr: float
    repetitions: int
    pre_activation: float
    post_activation: float

    @property
    def relative_mean(self) -> float:
        return self.mean / self.width

    @property
    def relative_stderr(self) -> float:
        return self.stderr / self.width

    @classmethod
    def from_score(cls, score: LayerScore) -> "WidthPoint":
        return cls(
            width=score.width,
            mean=score.mean,
            stderr=score.stderr,
            repetitions=score.repetitions,
            pre_activation=float(score.pre_activation.mean()),
            post_activation=float(score.post_activation.mean()),
        )

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "score": self.mean,
            "score_stderr": self.stderr,
            "relative_score": self.relative_mean,
            "relative_score_stderr": self.relative_stderr,
            "repetitions": self.repetitions,
            "pre_activation_erank": self.pre_activation,
            "post_activation_erank": self.post_activation,
        }


@dataclass(frozen=True)
class LayerEstimate:
    """The sweep, the fit and the chosen width of one hidden layer.

    Attributes
    ----------
    layer : int
        1-based index of the hidden layer.
    fixed_widths : tuple of int
        Widths of the layers before it during its sweep.
    points : tuple of WidthPoint
        Scores at each swept width.
    fit : PowerLawFit
        Fit of α + β·x^γ to the relative scores.
    width : int
        ⌈x*⌉, the smallest integer width at which the fitted slope has fallen
        to the threshold fraction.
    anchor : float or None
        Relative score at width 1 that the fit contained, or None without it.
    """

    layer: int
    fixed_widths: tuple[int, ...]
    points: tuple[WidthPoint, ...]
    fit: PowerLawFit
    width: int
    anchor: float | None = None

    @property
    def widths(self) -> np.ndarray:
        return np.array([point.width for point in self.points])

    @property
    def relative_scores(self) -> np.ndarray:
        return np.array([point.relative_mean for point in self.points])

    @property
    def relative_stderrs(self) -> np.ndarray:
        return np.array([point.relative_stderr for point in self.points])

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "width": self.width,
            "fixed_widths": list(self.fixed_widths),
            "fit": self.fit.to_dict(),
            "anchor_relative_score": self.anchor,
            "sweep": [point.to_dict() for point in self.points],
        }


@dataclass(frozen=True)
class SizingResult:
    """Widths of all hidden layers and how each was found."""

    layers: tuple[LayerEstimate, ...]
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def widths(self) -> list[int]:
        return [layer.width for layer in self.layers]

    def to_dict(self) -> dict:
        return {
            "widths": self.widths,
            "layers": [layer.to_dict() for layer in self.layers],
            "settings": dict(self.settings),
            "seconds": self.seconds,
        }


def validate_widths(widths: Sequence[int], n_samples: int) -> tuple[int, ...]:
    """Check a width grid and return it sorted, as a tuple of int.

    Raises
    ------
    ValueError
        If there are fewer than 4 distinct widths, a width below 2, or a width
        above the number of sample rows.
    """
    try:
        grid = sorted({int(width) for width in widths})
    except (TypeError, ValueError) as error:
        raise ValueError(f"Widths must be integers, got {widths!r}.") from error
    if len(grid) < 4:
        raise ValueError(
            f"The fit needs at least 4 distinct widths, got {grid}. Give more, for "
            f"example --widths 4,8,16,32,64,128."
        )
    if grid[0] < 2:
        raise ValueError(f"Widths must be at least 2, got {grid[0]} in {grid}.")
    if grid[-1] > n_samples:
        raise ValueError(
            f"The widest layer in {grid} needs {grid[-1]} distinct sample rows per "
            f"repetition, but the data has only {n_samples}. Drop widths above "
            f"{n_samples} or use more data."
        )
    return tuple(grid)


# A width whose repetitions cost more than PIECE_WORK in all (n³ per repetition,
# the order of the eigen-solver's work) is split into pieces that threads score
# side by side. The split depends only on the width and the repetitions, so the
# scores do not depend on the number of workers.
PIECE_WORK = 2**30


def _pieces(width: int, repetitions: int) -> list[int]:
    """Return the repetition counts of the pieces that one width is scored in."""
    per_piece = max(1, PIECE_WORK // width**3)
    return [min(per_piece, repetitions - start) for start in range(0, repetitions, per_piece)]


def _concatenate(width: int, scores: Sequence[LayerScore]) -> LayerScore:
    """Join the repetitions of several scores of the same width, in order."""
    return LayerScore(
        width=width,
        totals=np.concatenate([score.totals for score in scores]),
        pre_activation=np.concatenate([score.pre_activation for score in scores]),
        post_activation=np.concatenate([score.post_activation for score in scores]),
    )


def _score_piece(
    features: torch.Tensor,
    fixed_widths: Sequence[int],
    width: int,
    layer: int,
    piece: int,
    repetitions: int,
    seed: int,
    **options,
) -> LayerScore:
    """Score one piece of the repetitions of a width.

    The first piece is seeded by (seed, layer, width), as an unsplit width is,
    and piece k > 0 by (seed, layer, width, k).
    """
    keys = (layer, width) if piece == 0 else (layer, width, piece)
    return layer_score(features, fixed_widths, width, repetitions, seed=seed_for(seed, *keys), **options)


def _score_until(
    features: torch.Tensor,
    fixed_widths: Sequence[int],
    width: int,
    layer: int,
    repetitions: int,
    target_stderr: float,
    seed: int,
    **options,
) -> LayerScore:
    """Score one width in chunks until the relative standard error reaches the target."""
    chunks: list[LayerScore] = []
    done = 0
    while done < repetitions:
        size = min(MIN_CHUNK_REPETITIONS, repetitions - done)
        chunks.append(
            layer_score(
                features, fixed_widths, width, size,
                seed=seed_for(seed, layer, width, len(chunks)), **options,
            )
        )
        done += size
        totals = np.concatenate([chunk.totals for chunk in chunks])
        if totals.size >= 2 and totals.std(ddof=1) / math.sqrt(totals.size) / width <= target_stderr:
            break
    return _concatenate(width, chunks)


def estimate_layer_size(
    features,
    fixed_widths: Sequence[int] = (),
    widths: Sequence[int] = DEFAULT_WIDTHS,
    repetitions: int = DEFAULT_REPETITIONS,
    activation: str = "stanh",
    init: str = "stanh",
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    target_stderr: float | None = None,
    method: Method = "gram",
    allow_extrapolation: bool = False,
    progress: bool | tqdm = False,
    anchor: bool = True,
    workers: int | None = None,
) -> LayerEstimate:
    """Sweep the width of one hidden layer and estimate its size.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Network input rows, for example scaled atomic descriptors.
    fixed_widths : sequence of int, default=()
        Widths of the hidden layers before this one.
    widths : sequence of int, default=DEFAULT_WIDTHS
        Candidate widths, at least 4, each at most ``n_samples``.
    repetitions : int, default=DEFAULT_REPETITIONS (400)
        Repetitions per width, or the maximum when ``target_stderr`` is set.
    activation, init : str
        Names from :data:`layersize.nets.ACTIVATIONS` and
        :data:`layersize.nets.INITIALIZATIONS`.
    threshold : float, default=0.005
        Slope fraction t of x* = t^(1/(γ−1)).
    seed : int, default=0
        The draws at (layer, width) are seeded from (seed, layer, width).
    target_stderr : float, optional
        Stop adding repetitions, in chunks of 50, once the standard error of the
        relative score falls to this value.
    method : {"gram", "svd"}, default="gram"
        Singular-value route of the effective rank.
    allow_extrapolation : bool, default=False
        Return a width outside the swept range instead of raising.
    progress : bool or tqdm, default=False
        Show a progress bar, or advance the given one once per width.
    anchor : bool, default=True
        Add the point at width 1 to the fit. There the pre- and post-activation
        matrices are 1 × 1, and a non-zero 1 × 1 matrix has effective rank 1, so
        the relative score is 2 for activations that never output exact zeros.
        The point is scored like any width, at almost no cost, so that ReLU
        (0 for about half the draws) gets its true value. The point pins the
        fit at small widths, and the authors' NEAR library adds the same kind
        of point.
    workers : int, optional
        Number of worker threads, each running torch and NumPy on one thread.
        They score widths side by side, and split a wide width's repetitions
        into pieces (see ``PIECE_WORK``) unless ``target_stderr`` is set.
        Default: the number of CPU cores this process may use. The result does
        not depend on it.

    Returns
    -------
    LayerEstimate

    Raises
    ------
    ValueError
        For an invalid width grid or option.
    FitError
        If the fit fails, gives γ ≥ 1, or puts x* outside the swept widths
        (unless ``allow_extrapolation``).
    """
    rows = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if rows.ndim != 2:
        raise ValueError(f"features must have shape (n_samples, n_features), got {tuple(rows.shape)}.")
    if not bool(torch.isfinite(rows).all()):
        raise ValueError("features contain NaN or inf. Check the input structures and descriptors.")
    grid = validate_widths(widths, rows.shape[0])
    if not bool((rows != rows[0]).any()):
        raise ValueError(
            f"All {rows.shape[0]} input rows are identical, so every sample matrix has rank at "
            f"most 1 and the score cannot grow with the width. Check the input file: the "
            f"structures or images must differ."
        )
    get_activation(activation)
    get_initialization(init)
    if target_stderr is not None and not target_stderr > 0:
        raise ValueError(f"target_stderr must be positive, got {target_stderr}.")
    layer = len(fixed_widths) + 1

    options = dict(activation=activation, init=init, method=method)
    # One task per piece of a width, or per width when repetitions are added
    # until the target error. The costliest tasks go first, so that the last
    # ones to finish are short and no thread waits long for another.
    if target_stderr is None:
        tasks = [
            (width, piece, size)
            for width in grid
            for piece, size in enumerate(_pieces(width, repetitions))
        ]
    else:
        tasks = [(width, 0, repetitions) for width in grid]
    tasks.sort(key=lambda task: task[0] ** 3 * task[2], reverse=True)
    remaining = {width: sum(1 for task in tasks if task[0] == width) for width in grid}
    n_workers = _resolve_workers(workers, len(tasks))

    own_bar = progress is True
    bar = tqdm(total=len(grid), desc=f"layer {layer}", unit="width") if own_bar else progress

    def run(width: int, piece: int, size: int) -> LayerScore:
        if target_stderr is not None:
            return _score_until(rows, fixed_widths, width, layer, size, target_stderr, seed, **options)
        return _score_piece(rows, fixed_widths, width, layer, piece, size, seed, **options)

    pieces: dict[int, dict[int, LayerScore]] = {width: {} for width in grid}
    scores: dict[int, LayerScore] = {}
    try:
        # Each piece draws from its own seeded generator, so the scores do not
        # depend on which thread runs them or in what order. Every thread runs
        # torch and NumPy on one thread, set here once for all of them.
        with one_cpu_thread(), ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = {pool.submit(run, *task): task for task in tasks}
            try:
                for future in as_completed(futures):
                    width, piece, _ = futures[future]
                    pieces[width][piece] = future.result()
                    remaining[width] -= 1
                    if remaining[width]:
                        continue
                    result = _concatenate(width, [pieces[width][k] for k in sorted(pieces[width])])
                    scores[width] = result
                    logger.info(
                        "layer %d width %d: score %.3f ± %.3f over %d repetitions",
                        layer, result.width, result.mean, result.stderr, result.repetitions,
                    )
                    if bar:
                        bar.update(1)
            except BaseException:
                # A failed task or Ctrl-C ends the sweep, so the tasks not yet started are dropped.
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        if own_bar:
            bar.close()
    points = [WidthPoint.from_score(scores[width]) for width in grid]

    x = np.array([point.width for point in points], dtype=float)
    y = np.array([point.relative_mean for point in points])
    anchor_score = None
    if anchor:
        width_one = _score_piece(rows, fixed_widths, 1, layer, 0, repetitions, seed, **options)
        anchor_score = width_one.mean
    try:
        fit = fit_power_law(
            x, y, threshold=threshold, anchor=None if anchor_score is None else (1.0, anchor_score)
        )
    except FitError as error:
        raise FitError(f"Layer {layer}: {error}") from error
    if anchor:
        _warn_if_anchor_decides(layer, fit, x, y, threshold)
    if not allow_extrapolation and not (grid[0] <= fit.width <= grid[-1]):
        side = "above the widest" if fit.width > grid[-1] else "below the narrowest"
        hint = (
            f"add widths up to about {2 * math.ceil(fit.width)}"
            if fit.width > grid[-1]
            else f"add widths down to {max(2, math.floor(fit.width / 2))}"
        )
        raise FitError(
            f"Layer {layer}: the estimated width {fit.width:.1f} (γ = {fit.gamma:.3f}) lies "
            f"{side} swept width ({grid[0]}–{grid[-1]}), so the fit does not support it. "
            f"Sweep a range that contains it: {hint}."
        )
    return LayerEstimate(
        layer=layer,
        fixed_widths=tuple(int(w) for w in fixed_widths),
        points=tuple(points),
        fit=fit,
        width=int(math.ceil(fit.width - 1e-9)),
        anchor=anchor_score,
    )


def _resolve_workers(workers: int | None, n_tasks: int) -> int:
    """Return how many worker threads to start: ``workers``, else the usable cores."""
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # not available on macOS and Windows
            workers = os.cpu_count() or 1
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    return max(1, min(int(workers), n_tasks))


def _warn_if_anchor_decides(layer: int, fit: PowerLawFit, x: np.ndarray, y: np.ndarray, threshold: float) -> None:
    """Warn when the width would change by more than a factor of 2 without the width-1 point.

    The swept points alone should then carry the estimate. If they do not, the
    power law describes them poorly and the width rests on the exact point.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            plain = fit_power_law(x, y, threshold=threshold).width
        except (FitError, ValueError):
            plain = math.nan
    if math.isfinite(plain) and 0.5 <= plain / fit.width <= 2.0:
        return
    without = f"{plain:.1f}" if math.isfinite(plain) else "no width"
    warnings.warn(
        f"Layer {layer}: the width {fit.width:.1f} rests mainly on the exact point at width 1; "
        f"the swept points alone give {without}. The power law describes this sweep poorly, "
        f"so look at the plot and treat the width as rough, or sweep a denser grid.",
        PoorFitWarning,
        stacklevel=3,
    )


def estimate_layer_sizes(
    features,
    n_layers: int = 3,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    repetitions: int = DEFAULT_REPETITIONS,
    activation: str = "stanh",
    init: str = "stanh",
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    target_stderr: float | None = None,
    method: Method = "gram",
    allow_extrapolation: bool = False,
    progress: bool = False,
    anchor: bool = True,
    workers: int | None = None,
) -> SizingResult:
    """Estimate the widths of ``n_layers`` hidden layers greedily.

    Layer k is swept on top of layers 1 … k−1 fixed at their estimated widths.
    The parameters are those of :func:`estimate_layer_size`.

    Returns
    -------
    SizingResult
        ``result.widths`` is the list of widths, and ``result.to_dict()``
        contains the sweeps, fits and settings for a report.

    Examples
    --------
    >>> import numpy as np
    >>> rows = np.random.default_rng(0).normal(size=(2000, 20))
    >>> result = estimate_layer_sizes(rows, n_layers=1, repetitions=20)  # doctest: +SKIP
    >>> result.widths  # doctest: +SKIP
    """
    if int(n_layers) < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}.")
    started = time.perf_counter()
    rows = np.asarray(features, dtype=np.float32)
    if rows.ndim != 2:
        raise ValueError(f"features must have shape (n_samples, n_features), got {rows.shape}.")
    grid = validate_widths(widths, rows.shape[0])
    settings = {
        "n_layers": int(n_layers),
        "widths": list(grid),
        "repetitions": int(repetitions),
        "target_stderr": target_stderr,
        "activation": activation,
        "init": init,
        "threshold": threshold,
        "seed": seed,
        "method": method,
        "anchor": bool(anchor),
        "n_samples": int(rows.shape[0]) if rows.ndim == 2 else None,
        "n_features": int(rows.shape[1]) if rows.ndim == 2 else None,
    }
    estimates: list[LayerEstimate] = []
    with tqdm(total=int(n_layers) * len(grid), desc="width sweep", unit="width", disable=not progress) as bar:
        for _ in range(int(n_layers)):
            estimate = estimate_layer_size(
                rows,
                fixed_widths=[layer.width for layer in estimates],
                widths=grid,
                repetitions=repetitions,
                activation=activation,
                init=init,
                threshold=threshold,
                seed=seed,
                target_stderr=target_stderr,
                method=method,
                allow_extrapolation=allow_extrapolation,
                progress=bar,
                anchor=anchor,
                workers=workers,
            )
            logger.info("layer %d: width %d (x* = %.2f)", estimate.layer, estimate.width, estimate.fit.width)
            estimates.append(estimate)
    return SizingResult(
        layers=tuple(estimates), settings=settings, seconds=time.perf_counter() - started
    )
