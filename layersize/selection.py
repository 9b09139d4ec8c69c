"""Rank activation × weight-initialisation pairs of an MLP by their NEAR score.

:func:`rank_activation_init` builds the same MLP once for every pair of an
activation from :data:`layersize.nets.ACTIVATIONS` and an initialisation from
:data:`layersize.nets.INITIALIZATIONS`, scores it on the given inputs before any
training, and sorts the pairs by score. A higher NEAR score means a more
expressive network at initialisation; the score is a sum of effective ranks and so
has no unit.

Tie rule
--------
Each score has a 95% confidence interval ``mean ± 1.96 · stderr``. After sorting
by mean, from highest to lowest, a pair joins the tie group of the pair directly
above it when its interval overlaps the interval of every pair in that group.
That is, its upper end is at least the highest lower end in the group.
Otherwise it starts a new group. Within a group every two intervals overlap, so the group
contains exactly pairs whose order the scores do not resolve, and pairs whose
intervals are disjoint never share a rank. Every pair of a group gets the rank
of its first member, marked with ``=`` as in sports tables, so the ranks of five
pairs can read 1, 2=, 2=, 4, 5.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from layersize.atomic import atomic_path
from layersize.nets import ACTIVATIONS, INITIALIZATIONS, build_mlp
from layersize.score import NearScore, near_score

__all__ = [
    "DEFAULT_REPETITIONS",
    "TIE_RULE",
    "Z_95",
    "PairScore",
    "SelectionResult",
    "assign_tie_ranks",
    "pair_seed",
    "plot_selection",
    "rank_activation_init",
]

logger = logging.getLogger(__name__)

# Quantile of the standard normal distribution for a two-sided 95% interval.
Z_95 = 1.96

# Measured with `near-select --data mnist_5k.csv.gz --hidden 200,200` (5,000 MNIST
# digits, a 784-200-200-10 MLP): with 8 repetitions the standard errors are 1.1 to
# 4.7 for pairs scoring 240 to 385, and 0.03 to 0.11 for the U(0, 1) pairs scoring
# 9.5 to 14.4. The uniform pairs are thus separated from the rest by far more than
# their intervals. All 25 pairs took 6 s with one torch thread on a shared 2-core
# machine. Closer calls between the other pairs stay unresolved even with 32
# repetitions (standard errors 0.7 to 2.3), because many scores lie within 1%.
DEFAULT_REPETITIONS = 8

TIE_RULE = (
    "Pairs are sorted by mean score. A pair joins the tie group above it when its 95% "
    "interval (mean ± 1.96 stderr) overlaps the interval of every pair in that group. "
    "A group shares the rank of its first pair, marked with '='."
)


@dataclass(frozen=True)
class PairScore:
    """NEAR score of one activation × initialisation pair and its place in the ranking.

    Attributes
    ----------
    activation : str
        Name from :data:`layersize.nets.ACTIVATIONS`.
    init : str
        Name from :data:`layersize.nets.INITIALIZATIONS`.
    mean : float
        NEAR score: mean over the repetitions of the summed effective ranks.
    stderr : float
        Standard error of ``mean``.
    rank : int
        1-based position of the first pair of this pair's tie group.
    tie_group : int
        1-based number of the tie group, counted from the top.
    tied : bool
        Whether the tie group has more than one pair.
    seed : int
        Seed passed to :func:`layersize.score.near_score` for this pair.
    score : NearScore
        The full result, with the score of every repetition and layer.
    """

    activation: str
    init: str
    mean: float
    stderr: float
    rank: int
    tie_group: int
    tied: bool
    seed: int
    score: NearScore = field(repr=False, compare=False)

    @property
    def ci_low(self) -> float:
        """Lower end of the 95% confidence interval, ``mean - 1.96 · stderr``."""
        return self.mean - Z_95 * self.stderr

    @property
    def ci_high(self) -> float:
        """Upper end of the 95% confidence interval, ``mean + 1.96 · stderr``."""
        return self.mean + Z_95 * self.stderr

    @property
    def rank_label(self) -> str:
        """The rank as printed: ``"3"``, or ``"3="`` for a pair in a tie group."""
        return f"{self.rank}=" if self.tied else str(self.rank)

    def to_dict(self) -> dict[str, Any]:
        """Return the pair as JSON-serialisable values, with the score of each repetition and layer."""
        return {
            "rank": self.rank,
            "rank_label": self.rank_label,
            "tie_group": self.tie_group,
            "activation": self.activation,
            "init": self.init,
            "mean": self.mean,
            "stderr": self.stderr,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "seed": self.seed,
            "totals": self.score.totals.tolist(),
            "layers": [
                {"name": layer.name, "kind": layer.kind, "width": layer.width, "mean": layer.mean}
                for layer in self.score.layers
            ],
        }


@dataclass(frozen=True)
class SelectionResult:
    """Activation × initialisation pairs of one MLP, ranked by NEAR score.

    Attributes
    ----------
    pairs : list of PairScore
        The pairs from the highest to the lowest mean score.
    n_inputs : int
        Input width of the MLP.
    hidden_widths : tuple of int
        Widths of its hidden layers.
    n_outputs : int
        Width of its linear output layer.
    n_samples : int
        Number of input samples the scores drew from.
    repetitions : int
        Repetitions per pair.
    seed : int
        Seed from which every pair's seed is derived.
    """

    pairs: list[PairScore]
    n_inputs: int
    hidden_widths: tuple[int, ...]
    n_outputs: int
    n_samples: int
    repetitions: int
    seed: int

    @property
    def architecture(self) -> str:
        """Layer widths joined by hyphens, such as ``"784-200-200-10"``."""
        return "-".join(str(width) for width in (self.n_inputs, *self.hidden_widths, self.n_outputs))

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-serialisable values."""
        return {
            "architecture": self.architecture,
            "n_inputs": self.n_inputs,
            "hidden_widths": list(self.hidden_widths),
            "n_outputs": self.n_outputs,
            "n_samples": self.n_samples,
            "repetitions": self.repetitions,
            "seed": self.seed,
            "confidence_z": Z_95,
            "tie_rule": TIE_RULE,
            "pairs": [pair.to_dict() for pair in self.pairs],
        }

    def format_table(self) -> str:
        """Format the ranking as a plain-text table, one pair a row."""
        activation_width = max([len("activation"), *(len(pair.activation) for pair in self.pairs)])
        init_width = max([len("init"), *(len(pair.init) for pair in self.pairs)])
        lines = [
            f"NEAR score of a {self.architecture} MLP before training, {self.repetitions} "
            f"repetitions on {self.n_samples} samples, seed {self.seed}",
            f"{'rank':<5} {'activation':<{activation_width}}  {'init':<{init_width}}  "
            f"{'score':>9}  {'stderr':>7}  {'95% interval':>19}",
        ]
        for pair in self.pairs:
            interval = f"[{pair.ci_low:.1f}, {pair.ci_high:.1f}]"
            lines.append(
                f"{pair.rank_label:<5} {pair.activation:<{activation_width}}  {pair.init:<{init_width}}  "
                f"{pair.mean:>9.2f}  {pair.stderr:>7.2f}  {interval:>19}"
            )
        lines.append(
            "A rank with '=' marks a tie group: all its 95% intervals overlap each other, "
            "so the order inside the group is not resolved."
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def assign_tie_ranks(means: Sequence[float], stderrs: Sequence[float], z: float = Z_95) -> list[tuple[int, int]]:
    """Assign sports-table ranks to scores that are already sorted from highest to lowest mean.

    Parameters
    ----------
    means : sequence of float
        Mean scores, in descending order.
    stderrs : sequence of float
        Their standard errors, non-negative.
    z : float, default=1.96
        Half-width of each interval in standard errors.

    Returns
    -------
    list of (int, int)
        ``(rank, tie_group)`` of each score, both 1-based. Score ``i`` joins the
        tie group of score ``i - 1`` when ``means[i] + z·stderrs[i]`` is at least
        ``means[j] - z·stderrs[j]`` for every score ``j`` of that group, so that
        all intervals of a group overlap. Every score of a group gets the
        position of the group's first score as its rank.

    Raises
    ------
    ValueError
        If the lengths differ, the means are not in descending order, or a
        standard error is negative or not finite.
    """
    if len(means) != len(stderrs):
        raise ValueError(f"Got {len(means)} means but {len(stderrs)} standard errors; pass one of each per score.")
    for index, stderr in enumerate(stderrs):
        if not math.isfinite(stderr) or stderr < 0:
            raise ValueError(f"Standard error {index} is {stderr!r}, but it must be finite and non-negative.")
    for index in range(1, len(means)):
        if means[index] > means[index - 1]:
            raise ValueError(
                f"Means must be sorted from highest to lowest, but mean {index} ({means[index]!r}) "
                f"is above mean {index - 1} ({means[index - 1]!r})."
            )

    ranks: list[tuple[int, int]] = []
    highest_lower_end = -math.inf  # of the current group
    for index in range(len(means)):
        lower_end = means[index] - z * stderrs[index]
        upper_end = means[index] + z * stderrs[index]
        if index > 0 and upper_end >= highest_lower_end:
            ranks.append(ranks[-1])
            highest_lower_end = max(highest_lower_end, lower_end)
            continue
        group = ranks[-1][1] + 1 if ranks else 1
        ranks.append((index + 1, group))
        highest_lower_end = lower_end
    return ranks


def pair_seed(seed: int, activation: str, init: str) -> int:
    """Derive the seed of one pair from the run's seed and the pair's names.

    The seed depends on nothing else, so a pair scores the same whichever other
    pairs are ranked with it, and the derivation gives the same value in every
    Python process (unlike the salted built-in ``hash``).
    """
    digest = hashlib.blake2b(f"{seed}/{activation}/{init}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # 63 bits, a valid torch.Generator seed


def _resolve_names(names: Sequence[str] | str | None, known: dict[str, Any], kind: str) -> list[str]:
    """Lower-case, de-duplicate and check names; ``None`` means every known name."""
    if names is None:
        return list(known)
    if isinstance(names, str):
        names = [names]
    resolved: list[str] = []
    for name in names:
        key = str(name).strip().lower()
        if key not in known:
            raise ValueError(f"Unknown {kind} {name!r}. Choose from: {', '.join(known)}.")
        if key not in resolved:
            resolved.append(key)
    if not resolved:
        raise ValueError(f"No {kind} was given. Choose at least one of: {', '.join(known)}.")
    return resolved


def _as_feature_matrix(features: Any) -> torch.Tensor:
    tensor = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
    if tensor.ndim != 2:
        raise ValueError(
            f"features must be a matrix of shape (n_samples, n_inputs), one flattened image a row, "
            f"got shape {tuple(tensor.shape)}. Flatten each image first."
        )
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    return tensor


def _validate_widths(hidden_widths: Sequence[int], n_outputs: int) -> tuple[tuple[int, ...], int]:
    widths = tuple(hidden_widths)
    for width in (*widths, n_outputs):
        if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
            raise ValueError(
                f"Layer widths must be positive integers, got hidden_widths={list(widths)} and "
                f"n_outputs={n_outputs!r}."
            )
    return tuple(int(width) for width in widths), int(n_outputs)


def rank_activation_init(
    features: torch.Tensor | np.ndarray,
    hidden_widths: Sequence[int],
    n_outputs: int,
    activations: Sequence[str] | None = None,
    inits: Sequence[str] | None = None,
    repetitions: int = DEFAULT_REPETITIONS,
    seed: int = 0,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> SelectionResult:
    """Score an MLP with every activation × initialisation pair and rank the pairs.

    For each pair, the MLP ``n_inputs``-``hidden_widths``-``n_outputs`` (Linear,
    activation, ..., Linear) is built with :func:`layersize.nets.build_mlp` and
    scored by :func:`layersize.score.near_score` with that initialisation. The
    score counts the output of every Linear layer, the output layer included, and
    of every activation.

    Parameters
    ----------
    features : torch.Tensor or numpy.ndarray of shape (n_samples, n_inputs)
        Input samples, one flattened image a row, scaled as for training.
    hidden_widths : sequence of int
        Width of each hidden layer.
    n_outputs : int
        Width of the output layer, such as the number of classes.
    activations : sequence of str, optional
        Names from :data:`layersize.nets.ACTIVATIONS` (case-insensitive,
        duplicates ignored). Default: all of them.
    inits : sequence of str, optional
        Names from :data:`layersize.nets.INITIALIZATIONS`. Default: all of them.
    repetitions : int, default=8
        Repetitions per pair, each with fresh weights and samples.
    seed : int, default=0
        Seed of the whole ranking. Each pair is scored with
        :func:`pair_seed` ``(seed, activation, init)``, so the same seed gives
        the same table.
    progress : bool, default=False
        Show a progress bar over the pairs.
    device : str or torch.device, optional
        Device of the forward passes. Default: the CPU.

    Returns
    -------
    SelectionResult
        The pairs from highest to lowest mean score, with ranks and tie groups
        by the rule in the module docstring.

    Raises
    ------
    ValueError
        If a name is unknown, a width is not a positive integer, ``features`` is
        not a matrix, or it has fewer rows than the widest layer needs.
    """
    activation_names = _resolve_names(activations, ACTIVATIONS, "activation")
    init_names = _resolve_names(inits, INITIALIZATIONS, "initialisation")
    widths, n_outputs = _validate_widths(hidden_widths, n_outputs)
    inputs = _as_feature_matrix(features)
    n_samples, n_inputs = inputs.shape
    widest = max((*widths, n_outputs))
    if n_samples < widest:
        raise ValueError(
            f"features contain {n_samples} samples, but the widest layer ({widest}) needs {widest} "
            f"samples for its square matrix. Use more samples or narrower layers."
        )

    pair_names = [(activation, init) for activation in activation_names for init in init_names]
    scored: list[tuple[str, str, int, NearScore]] = []
    for activation, init in tqdm(pair_names, desc="pairs", unit="pair", disable=not progress):
        # nn.Linear draws its default weights from torch's global generator, and
        # near_score replaces them anyway, so restore the caller's generator state.
        with torch.random.fork_rng(devices=[]):
            model = build_mlp(n_inputs, widths, activation, n_outputs)
        seed_of_pair = pair_seed(seed, activation, init)
        score = near_score(model, inputs, repetitions=repetitions, seed=seed_of_pair, init=init, device=device)
        logger.info("%s + %s: NEAR score %.2f ± %.2f", activation, init, score.mean, score.stderr)
        scored.append((activation, init, seed_of_pair, score))

    # Python's sort is stable, so equal means keep the order of the requested names.
    scored.sort(key=lambda item: -item[3].mean)
    ranks = assign_tie_ranks([item[3].mean for item in scored], [item[3].stderr for item in scored])
    group_sizes: dict[int, int] = {}
    for _, group in ranks:
        group_sizes[group] = group_sizes.get(group, 0) + 1

    pairs = [
        PairScore(
            activation=activation, init=init, mean=score.mean, stderr=score.stderr,
            rank=rank, tie_group=group, tied=group_sizes[group] > 1, seed=seed_of_pair, score=score,
        )
        for (activation, init, seed_of_pair, score), (rank, group) in zip(scored, ranks)
    ]
    return SelectionResult(
        pairs=pairs, n_inputs=int(n_inputs), hidden_widths=widths, n_outputs=n_outputs,
        n_samples=int(n_samples), repetitions=repetitions, seed=seed,
    )


def plot_selection(result: SelectionResult, path: str | os.PathLike) -> None:
    """Draw the ranking as horizontal bars with 95% error bars and save it atomically.

    The best pair is at the top. Bars of one tie group share a colour, and pairs
    with the ``uniform`` initialisation (all weights in U(0, 1)) are hatched and
    outlined in black. The file format follows the suffix of ``path``.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    pairs = result.pairs
    palette = colormaps["tab10"].colors
    positions = np.arange(len(pairs))[::-1]
    figure = Figure(figsize=(8.0, 1.2 + 0.32 * len(pairs)), layout="constrained")
    axes = figure.add_subplot()

    for position, pair in zip(positions, pairs):
        is_uniform = pair.init == "uniform"
        axes.barh(
            position, pair.mean, xerr=Z_95 * pair.stderr, capsize=3,
            color=palette[(pair.tie_group - 1) % len(palette)],
            hatch="//" if is_uniform else None,
            edgecolor="black" if is_uniform else "none",
            error_kw={"elinewidth": 1.0, "ecolor": "black"},
        )
        axes.text(pair.ci_high, position, f" {pair.mean:.1f}", va="center", fontsize=8)

    axes.set_yticks(positions, [f"{pair.rank_label}  {pair.activation} / {pair.init}" for pair in pairs])
    axes.set_xlabel("NEAR score (sum of effective ranks) with 95% interval")
    axes.set_xlim(0, max(pair.ci_high for pair in pairs) * 1.12 if pairs else 1)
    axes.set_title(
        f"{result.architecture} MLP before training: {result.repetitions} repetitions, seed {result.seed}\n"
        "one colour per tie group (overlapping 95% intervals)", fontsize=10,
    )
    if any(pair.init == "uniform" for pair in pairs):
        axes.legend(
            handles=[Patch(facecolor="white", edgecolor="black", hatch="//", label="uniform init, W ~ U(0, 1)")],
            loc="lower right", fontsize=8,
        )
    axes.grid(axis="x", alpha=0.3)

    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
