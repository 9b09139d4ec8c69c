"""NEAR score of one hidden layer of an MLP, for many repetitions at once.

For a candidate width n of layer k, with layers 1 … k−1 fixed at their widths,
one repetition draws fresh weights for layers 1 … k and n fresh rows of the
input features (without replacement), propagates them, and adds the effective
ranks of the n × n pre-activation matrix Z_k and post-activation matrix
H_k = σ(Z_k). All repetitions of a width run as one batched computation:
weights are tensors of shape (repetitions, fan_in, fan_out) and the effective
ranks of the (repetitions, n, n) stacks come from one decomposition call each.

This is the fast path for plain MLPs that the layer-size estimate uses. The
general :func:`layersize.score.near_score` scores any ``nn.Module`` layer by
layer, and the two agree on MLPs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from layersize.nets import Initialization, get_activation, get_initialization
from layersize.rank import Method, effective_rank, one_cpu_thread

__all__ = ["LayerScore", "layer_score", "seed_for"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerScore:
    """Scores of one layer at one width, over its repetitions.

    Attributes
    ----------
    width : int
        Width n of the scored layer (and number of sample rows).
    totals : numpy.ndarray of shape (repetitions,)
        erank(Z) + erank(H) of each repetition.
    pre_activation : numpy.ndarray of shape (repetitions,)
        erank(Z) of each repetition.
    post_activation : numpy.ndarray of shape (repetitions,)
        erank(H) of each repetition.
    """

    width: int
    totals: np.ndarray
    pre_activation: np.ndarray
    post_activation: np.ndarray

    @property
    def repetitions(self) -> int:
        return int(self.totals.size)

    @property
    def mean(self) -> float:
        return float(self.totals.mean())

    @property
    def stderr(self) -> float:
        """Standard error of the mean score (0 for a single repetition)."""
        if self.totals.size < 2:
            return 0.0
        return float(self.totals.std(ddof=1) / np.sqrt(self.totals.size))


def seed_for(seed: int, *keys: int) -> int:
    """Derive an independent 63-bit seed from a user seed and integer keys.

    A width's draws then depend only on (seed, layer, width), not on which other
    widths were swept or in what order.
    """
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(int(key) for key in keys))
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _draw_rows(
    n_available: int, n_rows: int, repetitions: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw, for each repetition, ``n_rows`` distinct row indices out of ``n_available``.

    When the rows are few compared with the data, indices are drawn with
    replacement, and any repetition with a repeated index is drawn again. Every
    ordered set of distinct rows stays equally likely, and no repetition needs
    a full permutation of the data. A draw has no repeat with
    probability about exp(−n_rows² / (2·n_available)), so this route is taken
    only while n_rows·(n_rows − 1) ≤ n_available (at least 60 % of draws kept).
    Otherwise each repetition takes the head of a random permutation.
    """
    if n_rows * (n_rows - 1) > n_available:
        return torch.stack(
            [torch.randperm(n_available, generator=generator)[:n_rows] for _ in range(repetitions)]
        )
    indices = torch.randint(n_available, (repetitions, n_rows), generator=generator)
    while True:
        ordered = indices.sort(dim=1).values
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
        if not bool(repeated.any()):
            return indices
        indices[repeated] = torch.randint(
            n_available, (int(repeated.sum()), n_rows), generator=generator
        )


def layer_score(
    features: torch.Tensor | np.ndarray,
    fixed_widths: Sequence[int],
    width: int,
    repetitions: int = 400,
    activation: str = "stanh",
    init: str | Initialization = "stanh",
    seed: int = 0,
    method: Method = "gram",
    chunk_size: int | None = None,
) -> LayerScore:
    """Score one hidden layer of an MLP at one width.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Input rows of the network (for a potential: scaled descriptors, one row
        per atom). Float32 is used for the forward pass.
    fixed_widths : sequence of int
        Widths of the hidden layers before the scored one (empty for layer 1).
    width : int
        Candidate width n of the scored layer. Each repetition draws n rows.
    repetitions : int, default=400
        Number of independent draws of weights and rows.
    activation : str, default="stanh"
        Activation after every hidden layer; see :data:`layersize.nets.ACTIVATIONS`.
    init : str or Initialization, default="stanh"
        Weight initialisation; see :data:`layersize.nets.INITIALIZATIONS`.
    seed : int, default=0
        Seed of the local random generator. Global RNG state is not touched.
    method : {"gram", "svd"}, default="gram"
        Singular-value route of :func:`layersize.rank.effective_rank`.
    chunk_size : int, optional
        Number of repetitions computed together; by default as many as keep the
        batch of activations under about 64 MB.

    Returns
    -------
    LayerScore

    Raises
    ------
    ValueError
        If ``width`` exceeds the number of sample rows, or a width or the
        repetition count is below 1.
    """
    rows = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if rows.ndim != 2:
        raise ValueError(
            f"features must have shape (n_samples, n_features), got {tuple(rows.shape)}."
        )
    n_samples, n_features = rows.shape
    width = int(width)
    if width < 1 or any(int(w) < 1 for w in fixed_widths):
        raise ValueError(f"Widths must be at least 1, got fixed {list(fixed_widths)} and candidate {width}.")
    if repetitions < 1:
        raise ValueError(f"repetitions must be at least 1, got {repetitions}.")
    if width > n_samples:
        raise ValueError(
            f"Width {width} needs {width} distinct sample rows per repetition, but the "
            f"data has only {n_samples}. Use widths up to {n_samples} or more data."
        )

    scheme = get_initialization(init) if isinstance(init, str) else init
    nonlinearity = get_activation(activation)
    layer_widths = [n_features, *(int(w) for w in fixed_widths), width]
    if chunk_size is None:
        floats_per_repetition = width * max(layer_widths) + sum(
            fan_in * fan_out for fan_in, fan_out in zip(layer_widths[:-1], layer_widths[1:])
        )
        chunk_size = max(1, min(repetitions, (16 * 1024 * 1024) // max(1, floats_per_repetition)))

    generator = torch.Generator().manual_seed(seed)
    pre_ranks: list[torch.Tensor] = []
    post_ranks: list[torch.Tensor] = []
    # Small batched products and decompositions run faster, and far more
    # steadily on a busy machine, on one thread; see one_cpu_thread.
    with torch.no_grad(), one_cpu_thread():
        for start in range(0, repetitions, chunk_size):
            batch = min(chunk_size, repetitions - start)
            activations = rows[_draw_rows(n_samples, width, batch, generator)]
            for fan_in, fan_out in zip(layer_widths[:-1], layer_widths[1:]):
                weights = scheme.sample_weights(
                    (batch, fan_in, fan_out), generator, fans=(fan_in, fan_out)
                )
                biases = scheme.sample_biases((batch, 1, fan_out), fan_in, generator)
                pre_activation = torch.baddbmm(biases, activations, weights)
                activations = nonlinearity(pre_activation)
            pre_ranks.append(effective_rank(pre_activation, method=method))
            post_ranks.append(effective_rank(activations, method=method))

    pre = torch.cat(pre_ranks).numpy()
    post = torch.cat(post_ranks).numpy()
    return LayerScore(width=width, totals=pre + post, pre_activation=pre, post_activation=post)
