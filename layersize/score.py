"""NEAR score of any PyTorch model.

The NEAR score (Network Expressivity by Activation Rank; Husistein, Reiher and
Eckhoff, 2024) of a network is the sum, over its layers, of the effective rank of
the pre-activation matrix and of the post-activation matrix. Each matrix is square,
with as many sample rows as the layer is wide. The sum is averaged over
repetitions, each with fresh random weights and fresh random samples of the inputs.

:func:`near_score` scores a deep copy of any ``nn.Module``, convolutional
networks included; :mod:`layersize.capture` decides which layer outputs count and
how a convolutional output becomes a square matrix.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import numbers
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from tqdm.auto import tqdm

from layersize.capture import (
    CaptureMode,
    CapturePoint,
    LayerKind,
    OutputCapture,
    Select,
    feature_dim_of,
    square_block,
)
from layersize.nets import Initialization, get_initialization
from layersize.rank import Method, effective_rank

__all__ = ["LayerRank", "NearScore", "near_score"]

logger = logging.getLogger(__name__)

InitFunction = Callable[[nn.Module, torch.Generator], Any]
Incomplete = Literal["raise", "warn"]

# Square blocks waiting for their effective ranks are computed early once they
# take more memory than this, so that deep CNNs with many repetitions fit in
# memory. Below it, each layer gets one batched effective-rank call.
_MAX_PENDING_BYTES = 256 * 2**20


@dataclass(frozen=True, eq=False)
class LayerRank:
    """Effective rank of one layer output over the repetitions.

    Attributes
    ----------
    name : str
        Label of the output; see :class:`layersize.capture.CapturePoint`.
    module_name : str
        Qualified module name, or the fx node name of a functional activation.
    kind : {"weights", "activation", "other"}
        ``"weights"``: the output of a module with weights (a pre-activation).
        ``"activation"``: the output of an activation (a post-activation).
    width : int
        Number of features (channels) of the output: the matrix is width × width.
    rows : int
        Number of rows of the matrix; less than ``width`` only when the inputs
        hold too few samples (``complete`` is then False).
    ranks : numpy.ndarray of shape (n_repetitions,)
        Effective rank in each repetition in which the layer ran.
    complete : bool
        Whether every matrix was square.
    """

    name: str
    module_name: str
    kind: LayerKind
    width: int
    rows: int
    ranks: np.ndarray
    complete: bool = True

    @property
    def repetitions(self) -> int:
        """Number of repetitions in which the layer ran."""
        return int(self.ranks.size)

    @property
    def mean(self) -> float:
        """Mean effective rank over the repetitions."""
        return float(self.ranks.mean())

    @property
    def stderr(self) -> float:
        """Standard error of the mean effective rank (0 for a single repetition)."""
        return _stderr(self.ranks)

    def to_dict(self) -> dict[str, Any]:
        """Return the layer's result as JSON-serialisable values."""
        return {
            "name": self.name,
            "module_name": self.module_name,
            "kind": self.kind,
            "width": self.width,
            "rows": self.rows,
            "complete": self.complete,
            "mean": self.mean,
            "stderr": self.stderr,
            "repetitions": self.repetitions,
            "ranks": self.ranks.tolist(),
        }


@dataclass(frozen=True, eq=False)
class NearScore:
    """NEAR score of a model: the mean over repetitions of the summed effective ranks.

    Attributes
    ----------
    mean : float
        Mean of ``totals``.
    stderr : float
        Standard error of the mean: ``std(totals, ddof=1) / sqrt(repetitions)``,
        0 for a single repetition.
    totals : numpy.ndarray of shape (repetitions,)
        Sum of the layers' effective ranks in each repetition.
    layers : list of LayerRank
        One entry per captured output, in the order of the forward pass.
    repetitions : int
        Number of repetitions.
    n_samples : int
        Number of input samples drawn in each repetition.
    capture : {"fx", "hooks"}
        How the outputs were captured; with ``"hooks"`` functional activations
        are not counted.
    seed : int
        Seed of the local random generator.
    notes : list of str
        Remarks on the result: left-out layers, incomplete matrices, fallbacks.
    """

    mean: float
    stderr: float
    totals: np.ndarray
    layers: list[LayerRank]
    repetitions: int
    n_samples: int
    capture: CaptureMode
    seed: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-serialisable values."""
        return {
            "mean": self.mean,
            "stderr": self.stderr,
            "repetitions": self.repetitions,
            "n_samples": self.n_samples,
            "capture": self.capture,
            "seed": self.seed,
            "totals": self.totals.tolist(),
            "layers": [layer.to_dict() for layer in self.layers],
            "notes": list(self.notes),
        }

    def format_table(self) -> str:
        """Format the score and a table of the layers as plain text."""
        lines = [
            f"NEAR score {self.mean:.2f} ± {self.stderr:.2f} (standard error; "
            f"{self.repetitions} repetitions of {self.n_samples} samples, {self.capture} capture)"
        ]
        name_width = max([len("layer"), *(len(layer.name) for layer in self.layers)])
        lines.append(f"{'layer':<{name_width}}  {'kind':<10}  {'width':>6}  {'effective rank':>14}  {'stderr':>8}")
        for layer in self.layers:
            marker = "" if layer.complete else f"  only {layer.rows} rows"
            lines.append(
                f"{layer.name:<{name_width}}  {layer.kind:<10}  {layer.width:>6}  "
                f"{layer.mean:>14.2f}  {layer.stderr:>8.2f}{marker}"
            )
        lines.append(f"{'total':<{name_width}}  {'':<10}  {'':>6}  {self.mean:>14.2f}  {self.stderr:>8.2f}")
        lines.extend(f"Note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


@dataclass(frozen=True)
class _LayerPlan:
    """Shape facts of one layer output, from the dry runs."""

    width: int
    rows_per_sample: int
    samples_needed: int


def _stderr(values: np.ndarray) -> float:
    if values.size < 2:
        return 0.0
    return float(values.std(ddof=1) / math.sqrt(values.size))


# --- arguments -------------------------------------------------------------------------


def _as_inputs(inputs: Any, model: nn.Module) -> torch.Tensor:
    """Convert ``inputs`` to a tensor in the dtype of the model's floating-point parameters."""
    tensor = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs))
    tensor = tensor.detach()
    if tensor.ndim == 0 or tensor.shape[0] == 0:
        raise ValueError(
            f"inputs must be a batch of samples with shape (N, ...), N >= 1, got shape "
            f"{tuple(tensor.shape)}."
        )
    if tensor.is_floating_point():
        n_bad = int((~torch.isfinite(tensor)).sum())
        if n_bad:
            raise ValueError(
                f"inputs contain {n_bad} NaN or infinite values out of {tensor.numel()}. "
                f"Remove or replace them before scoring."
            )
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        if dtype is not None and tensor.dtype != dtype:
            tensor = tensor.to(dtype)
    return tensor


def _resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _resolve_init(init: str | Initialization | InitFunction | None) -> InitFunction | None:
    if init is None or isinstance(init, Initialization):
        return init
    if isinstance(init, str):
        return get_initialization(init)
    if not callable(init):
        raise TypeError(
            f"init must be None, the name of an initialisation in "
            f"layersize.nets.INITIALIZATIONS, or a callable init(module, generator), "
            f"got {type(init).__name__}."
        )
    return init


def _validate_arguments(repetitions: Any, seed: Any, incomplete: Any) -> None:
    if isinstance(repetitions, bool) or not isinstance(repetitions, numbers.Integral) or repetitions < 1:
        raise ValueError(f"repetitions must be an integer of at least 1, got {repetitions!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}.")
    if incomplete not in ("raise", "warn"):
        raise ValueError(f"incomplete must be 'raise' or 'warn', got {incomplete!r}.")


# --- global state ----------------------------------------------------------------------


@contextlib.contextmanager
def _preserved_global_rng(device: torch.device) -> Iterator[None]:
    """Restore torch's global random states of the CPU and of ``device``'s type on exit."""
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            yield
        return
    # NOTE: this branch and the seeding of accelerator generators in
    # _seed_global_rng have not been run in the tests, which use the CPU only.
    device_module = torch.get_device_module(device.type)
    devices = list(range(device_module.device_count()))
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        yield


def _seed_global_rng(seed: int, device: torch.device) -> None:
    """Seed the global generators that ``reset_parameters`` draws from on ``device``."""
    torch.default_generator.manual_seed(seed)
    if device.type != "cpu":
        device_module = torch.get_device_module(device.type)
        seed_all = getattr(device_module, "manual_seed_all", None) or device_module.manual_seed
        seed_all(seed)


def _working_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """Deep-copy ``model`` to ``device``, in eval mode except for normalisation layers.

    Batch and instance normalisation stay in training mode, so that they use the
    statistics of the batch; dropout and other training-only randomness are off.
    """
    try:
        working = copy.deepcopy(model)
    except Exception as error:  # deepcopy can fail in many ways on user attributes
        raise TypeError(
            f"near_score works on a deep copy of the model, but copy.deepcopy failed on "
            f"{type(model).__name__}: {type(error).__name__}: {error}. Make the model "
            f"deep-copyable, for example by keeping open files or locks out of its "
            f"attributes."
        ) from error
    working.to(device)
    working.eval()
    for module in working.modules():
        if isinstance(module, (_BatchNorm, _InstanceNorm)):
            module.train()
    return working


def _modules_without_reset(model: nn.Module) -> list[str]:
    return [
        name or type(module).__name__
        for name, module in model.named_modules()
        if next(module.parameters(recurse=False), None) is not None
        and not callable(getattr(module, "reset_parameters", None))
    ]


def _resettable_modules(model: nn.Module) -> list[tuple[str, Callable[[], Any]]]:
    """List the qualified name and ``reset_parameters`` of every module that has one."""
    resets = []
    for name, module in model.named_modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            resets.append((name, reset))
    return resets


def _module_seed(repetition_seed: int, module_name: str) -> int:
    """Derive a 63-bit seed from a repetition's seed and a module's qualified name."""
    key = repetition_seed.to_bytes(8, "little") + module_name.encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def _reinitialise(
    model: nn.Module,
    init: InitFunction | None,
    generator: torch.Generator,
    device: torch.device,
    resets: list[tuple[str, Callable[[], Any]]],
) -> None:
    """Draw fresh weights, from ``init`` or from every module's ``reset_parameters``.

    ``resets`` is :func:`_resettable_modules` of ``model``. Each module draws
    from the global generators seeded with a hash of one draw of ``generator``
    and the module's name, so that a module's weights do not depend on how many
    parameters the modules before it have. Two models with a module of the same
    name and shape give it the same weights in the same repetition.
    """
    if init is not None:
        init(model, generator)
        return
    # The global generators are restored by _preserved_global_rng afterwards.
    repetition_seed = int(torch.randint(2**62, (1,), generator=generator))
    for name, reset in resets:
        _seed_global_rng(_module_seed(repetition_seed, name), device)
        reset()


# --- planning --------------------------------------------------------------------------


def _record_shapes(capture: OutputCapture, batch: torch.Tensor) -> dict[str, tuple[CapturePoint, tuple[int, ...], int]]:
    """Run a forward pass and return each output's point, shape and feature dimension."""
    recent: dict[tuple[int, ...], int] = {}

    def process(point: CapturePoint, output: torch.Tensor) -> tuple[tuple[int, ...], int]:
        shape = tuple(output.shape)
        feature_dim = feature_dim_of(point.module, shape, recent)
        recent[shape] = feature_dim
        return shape, feature_dim

    return {point.name: (point, *result) for point, result in capture.run(batch, process)}


def _plan_layers(
    capture: OutputCapture, inputs: torch.Tensor, device: torch.device, notes: list[str]
) -> tuple[dict[str, _LayerPlan], set[str]]:
    """Find each output's width and rows per sample from forward passes on 2 and 3 samples.

    Returns the plans and the labels of outputs that are left out because their
    dimension 0 does not grow with the batch.
    """
    small, large = min(2, inputs.shape[0]), min(3, inputs.shape[0])
    first = _record_shapes(capture, inputs[:small].to(device))
    second = _record_shapes(capture, inputs[:large].to(device)) if large > small else first

    plans: dict[str, _LayerPlan] = {}
    left_out: set[str] = set()
    for name in [*second, *(label for label in first if label not in second)]:
        point, shape, feature_dim = second[name] if name in second else first[name]
        n_batch = large if name in second else small
        scales = len(shape) >= 1 and shape[0] % n_batch == 0
        if name in first and name in second and large > small:
            shape_small = first[name][1]
            scales = scales and shape_small[1:] == shape[1:] and shape_small[0] * large == shape[0] * small
        width = shape[feature_dim] if len(shape) >= 2 else 1
        if not scales or width == 0:
            left_out.add(name)
            notes.append(
                f"Left out {name!r}: its output of shape {shape} does not have the batch "
                f"in dimension 0 (or has no features), so its rows cannot be matched to samples."
            )
            continue
        rows_per_sample = max(math.prod(shape) // (n_batch * width), 1)
        plans[name] = _LayerPlan(width, rows_per_sample, math.ceil(width / rows_per_sample))
    return plans, left_out


def _too_few_samples_message(
    plans: dict[str, _LayerPlan], short: list[str], n_available: int
) -> str:
    name = max(short, key=lambda label: plans[label].samples_needed)
    plan = plans[name]
    if plan.rows_per_sample == 1:
        requirement = (
            f"Layer {name!r} has width {plan.width} and needs {plan.samples_needed} samples "
            f"for a square matrix"
        )
    else:
        requirement = (
            f"Layer {name!r} has {plan.width} channels on {plan.rows_per_sample} positions per "
            f"sample and needs {plan.samples_needed} samples for a {plan.width}×{plan.width} block"
        )
    n_others = len(short) - 1
    others = ""
    if n_others:
        layers_need = "layer needs" if n_others == 1 else "layers need"
        others = f" ({n_others} other {layers_need} more than {n_available} too)"
    return (
        f"{requirement}, but inputs contain only {n_available} "
        f"{'sample' if n_available == 1 else 'samples'}{others}. Pass at least "
        f"{plan.samples_needed} samples, or incomplete='warn' to score such layers on "
        f"fewer rows than their width."
    )


# --- scoring ---------------------------------------------------------------------------


class _RankAccumulator:
    """Square blocks of each layer, turned into effective ranks in batches."""

    def __init__(self, method: Method) -> None:
        self.method = method
        self.pending: dict[str, list[tuple[int, torch.Tensor]]] = {}
        self.ranks: dict[str, list[tuple[int, float]]] = {}
        self.shapes: dict[str, tuple[int, int]] = {}
        self.complete: dict[str, bool] = {}
        # Blocks whose rows are all the same non-zero row, counted per layer.
        self.constant_blocks: dict[str, int] = {}
        self.pending_bytes = 0

    def add(self, name: str, repetition: int, block: torch.Tensor) -> None:
        self.pending.setdefault(name, []).append((repetition, block))
        self.ranks.setdefault(name, [])
        rows, width = block.shape
        previous_rows = self.shapes[name][0] if name in self.shapes else rows
        self.shapes[name] = (min(rows, previous_rows), width)
        self.complete[name] = self.complete.get(name, True) and rows == width
        self.pending_bytes += block.numel() * block.element_size()
        if self.pending_bytes > _MAX_PENDING_BYTES:
            self.flush()

    def flush(self) -> None:
        # One batched effective-rank call for all pending blocks of one shape and
        # dtype, across layers and repetitions.
        by_shape: dict[tuple[Any, ...], list[tuple[str, int, torch.Tensor]]] = {}
        for name, entries in self.pending.items():
            for repetition, block in entries:
                key = (tuple(block.shape), block.dtype, block.device)
                by_shape.setdefault(key, []).append((name, repetition, block))
        for group in by_shape.values():
            stack = torch.stack([block for _, _, block in group])
            values = effective_rank(stack, method=self.method).cpu().tolist()
            # A block with all rows equal is non-zero exactly when its first row is.
            same_rows = (stack == stack[:, :1]).all(dim=(1, 2))
            constant = (same_rows & stack[:, 0].ne(0).any(dim=1)).tolist()
            for (name, repetition, _), value, same_rows in zip(group, values, constant):
                self.ranks[name].append((repetition, value))
                if same_rows:
                    self.constant_blocks[name] = self.constant_blocks.get(name, 0) + 1
        self.pending = {}
        self.pending_bytes = 0


def near_score(
    model: nn.Module,
    inputs: torch.Tensor | np.ndarray,
    repetitions: int = 32,
    seed: int = 0,
    init: str | Initialization | InitFunction | None = None,
    device: str | torch.device | None = None,
    select: Select = "weights_and_activations",
    progress: bool = False,
    incomplete: Incomplete = "raise",
    method: Method = "gram",
    trace: bool = True,
) -> NearScore:
    """Compute the NEAR score of a model.

    Each repetition draws fresh weights and a fresh random set of samples from
    ``inputs``, runs one forward pass, and takes the effective rank of a square
    matrix from every selected layer output. The score of a repetition is the
    sum of those effective ranks, and the NEAR score is its mean.

    Parameters
    ----------
    model : torch.nn.Module
        The network. Its ``forward`` takes one tensor of samples. The model is
        not changed: scoring works on a deep copy, and the caller's weights,
        training mode, hooks and torch's global random state are as before.
        Hooks that the model already has run on the copy too.
    inputs : torch.Tensor or numpy.ndarray of shape (N, ...)
        The samples to draw from, such as (N, features) for an MLP or
        (N, C, H, W) for a 2-D CNN. Floating-point inputs are cast to the dtype
        of the model's parameters.
    repetitions : int, default=32
        Number of repetitions.
    seed : int, default=0
        Seed of the local ``torch.Generator`` behind every draw (weights, samples,
        block positions). The same seed gives the same score. Repetition r
        draws from its own generator, seeded by the r-th draw of the local one,
        so its draws do not depend on the model's layers in earlier repetitions.
    init : str, Initialization or callable, optional
        How fresh weights are drawn in each repetition: a name from
        :data:`layersize.nets.INITIALIZATIONS`, or a callable
        ``init(model_copy, generator)`` that re-initialises the copy in place
        from the repetition's generator. By default every module's own
        ``reset_parameters`` is called, with torch's global generators seeded
        from the repetition's generator and the module's qualified name. Models
        that share a module name and shape then draw the same weights for it,
        which makes scores of related models (such as the cells of a search
        space) differ only where the models do.
    device : str or torch.device, optional
        Device of the forward passes. By default the device of the model's
        parameters.
    select : {"weights_and_activations", "activations", "weights"} or callable, \
default="weights_and_activations"
        Which outputs count. The default counts the outputs of

        - every module with a ``weight`` tensor (Linear, ConvNd, affine
          normalisation layers),
        - every ``torch.nn`` activation module,
        - every user-defined parameter-free module that keeps the shape of its
          input (such as a ``class STanh(nn.Module)``),
        - every elementwise activation applied as a function in ``forward``
          (``F.relu``, ``torch.tanh``, ...), which ``torch.fx`` tracing finds.

        A model that cannot be traced is scored with forward hooks on modules
        alone, and a logged warning and ``notes`` state that. A callable
        ``select(name, module)`` chooses by itself; see :mod:`layersize.capture`.
    progress : bool, default=False
        Show a progress bar over the repetitions.
    incomplete : {"raise", "warn"}, default="raise"
        What happens when ``inputs`` contains too few samples for a square matrix of
        some layer: raise a ValueError, or score that layer on the rows there are,
        with a remark in ``notes`` and ``complete=False`` on the layer.
    method : {"gram", "svd"}, default="gram"
        Singular-value route of :func:`layersize.rank.effective_rank`.
    trace : bool, default=True
        Trace the forward pass with ``torch.fx`` to find activations applied
        as functions. False skips the trace and captures modules alone with
        forward hooks (``capture="hooks"`` in the result). That is exact for
        models whose activations are all modules, and saves the trace's time
        (about 0.1 s for a NAS-Bench-201 network).

    Returns
    -------
    NearScore
        The mean and standard error of the score, the score of every repetition
        and the mean effective rank of every layer output.

    Raises
    ------
    ValueError
        If ``inputs`` contains fewer samples than a layer needs (with
        ``incomplete="raise"``), if no output is selected, or if an argument or
        the inputs are invalid.
    TypeError
        If ``model`` is not an ``nn.Module`` or cannot be deep-copied, or if
        ``init`` is not callable.

    Notes
    -----
    A layer output is flattened to rows of features, one row per sample for a
    dense (N, width) output and one row per spatial position for a
    convolutional (N, C, *spatial) output, with the rows of each sample
    contiguous. A layer of width w takes w rows. A dense layer takes its first w
    rows. A feature map takes a block that starts at the first row of a random
    sample and runs on into the next samples when one sample has fewer than w
    positions. Each repetition draws as many samples as the most demanding
    layer needs, which a forward pass on 2 and 3 samples determines.

    Normalisation layers use the statistics of the batch, and dropout is off.

    Examples
    --------
    >>> from layersize.nets import build_mlp
    >>> model = build_mlp(16, [32, 32], activation="silu")
    >>> result = near_score(model, torch.randn(100, 16), repetitions=4)
    >>> len(result.layers)  # three Linear outputs and two SiLU outputs
    5
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    _validate_arguments(repetitions, seed, incomplete)
    init_function = _resolve_init(init)
    target_device = _resolve_device(model, device)
    samples = _as_inputs(inputs, model)
    n_available = int(samples.shape[0])
    started = time.perf_counter()

    with _preserved_global_rng(target_device), torch.no_grad():
        working = _working_copy(model, target_device)
        capture = OutputCapture(working, select, trace=bool(trace))
        notes: list[str] = []
        plans, left_out = _plan_layers(capture, samples, target_device, notes)
        if not plans:
            raise ValueError(
                f"No layer output of {type(model).__name__} was selected with select={select!r}. "
                f"Check that the model has modules with weights or activations, or pass a "
                f"callable select(name, module)."
            )

        n_samples = max(plan.samples_needed for plan in plans.values())
        if n_samples > n_available:
            short = [name for name, plan in plans.items() if plan.samples_needed > n_available]
            message = _too_few_samples_message(plans, short, n_available)
            if incomplete == "raise":
                raise ValueError(message)
            logger.warning(message)
            notes.append(
                f"Layers {', '.join(map(repr, short))} are scored on fewer rows than their "
                f"width because inputs contain only {n_available} samples."
            )
            n_samples = n_available

        if init_function is None:
            unreset_modules = _modules_without_reset(working)
            if unreset_modules:
                notes.append(
                    f"Modules {', '.join(map(repr, unreset_modules))} have parameters but no "
                    f"reset_parameters, so they keep the model's weights in every repetition. "
                    f"Pass init to draw them afresh."
                )
        for note in notes:
            logger.info(note)
        logger.info(
            "Scoring %s: %d outputs, %d samples per repetition, %d repetitions, %s capture.",
            type(model).__name__, len(plans), n_samples, repetitions, capture.mode,
        )

        generator = torch.Generator().manual_seed(int(seed))
        with capture.hooks_attached():
            accumulator, points = _run_repetitions(
                capture, samples, n_samples, left_out, init_function, generator,
                target_device, repetitions, method, progress,
            )

    result = _collect(
        accumulator, points, repetitions, n_samples, capture.mode, int(seed), [*capture.notes, *notes]
    )
    logger.info(
        "NEAR score %.2f ± %.2f in %.2f s.", result.mean, result.stderr, time.perf_counter() - started
    )
    return result


def _run_repetitions(
    capture: OutputCapture,
    samples: torch.Tensor,
    n_samples: int,
    left_out: set[str],
    init: InitFunction | None,
    generator: torch.Generator,
    device: torch.device,
    repetitions: int,
    method: Method,
    progress: bool,
) -> tuple[_RankAccumulator, dict[str, CapturePoint]]:
    """Run the repetitions and return the effective ranks and the captured points."""
    accumulator = _RankAccumulator(method)
    points: dict[str, CapturePoint] = {}
    n_available = int(samples.shape[0])
    resets = _resettable_modules(capture.model) if init is None else []
    # Each repetition has its own generator, so that its weights, samples and block
    # positions do not depend on how many draws the layers of earlier repetitions made.
    repetition_seeds = torch.randint(2**62, (repetitions,), generator=generator).tolist()

    for repetition in tqdm(range(repetitions), desc="NEAR repetitions", disable=not progress):
        repetition_generator = torch.Generator().manual_seed(repetition_seeds[repetition])
        _reinitialise(capture.model, init, repetition_generator, device, resets)
        indices = torch.randperm(n_available, generator=repetition_generator)[:n_samples]
        batch = samples[indices.to(samples.device)].to(device)
        recent: dict[tuple[int, ...], int] = {}

        def process(point: CapturePoint, output: torch.Tensor) -> torch.Tensor | None:
            shape = tuple(output.shape)
            feature_dim = feature_dim_of(point.module, shape, recent)
            recent[shape] = feature_dim
            if point.name in left_out or output.ndim == 0 or shape[0] % n_samples != 0:
                return None
            return square_block(output, repetition_generator, feature_dim=feature_dim, n_samples=n_samples)

        for point, block in capture.run(batch, process):
            points.setdefault(point.name, point)
            accumulator.add(point.name, repetition, block)

    accumulator.flush()
    return accumulator, points


def _collect(
    accumulator: _RankAccumulator,
    points: dict[str, CapturePoint],
    repetitions: int,
    n_samples: int,
    mode: CaptureMode,
    seed: int,
    notes: list[str],
) -> NearScore:
    """Sum the per-layer effective ranks into per-repetition totals."""
    totals = np.zeros(repetitions, dtype=np.float64)
    layers: list[LayerRank] = []
    for name, point in points.items():
        entries = sorted(accumulator.ranks[name])
        ranks = np.array([rank for _, rank in entries], dtype=np.float64)
        for repetition, rank in entries:
            totals[repetition] += rank
        if len(entries) < repetitions:
            notes.append(f"{name!r} ran in {len(entries)} of {repetitions} repetitions.")
        rows, width = accumulator.shapes[name]
        n_constant = accumulator.constant_blocks.get(name, 0)
        if rows > 1 and entries and 2 * n_constant >= len(entries):
            notes.append(
                f"{name!r}: in {n_constant} of {len(entries)} repetitions all rows of the "
                f"square block were equal, so its effective rank was 1 and says little about "
                f"the network. For a feature map the block starts at its first position, which "
                f"is constant where the inputs are (blank image borders, say); for a dense "
                f"layer the samples gave identical outputs (identical input rows, say)."
            )
        layers.append(
            LayerRank(
                name=name,
                module_name=point.module_name,
                kind=point.kind,
                width=width,
                rows=rows,
                ranks=ranks,
                complete=accumulator.complete[name],
            )
        )
    return NearScore(
        mean=float(totals.mean()),
        stderr=_stderr(totals),
        totals=totals,
        layers=layers,
        repetitions=repetitions,
        n_samples=n_samples,
        capture=mode,
        seed=seed,
        notes=notes,
    )
