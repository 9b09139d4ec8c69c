"""Capture the outputs of selected layers of a model during a forward pass.

NEAR scores a network from the outputs of its layers: the output of a layer with
weights is a pre-activation, the output of an activation a post-activation. This
module finds those outputs and turns each into a square matrix:

- :class:`OutputCapture` runs a model once and hands every selected output to a
  callback before the next operation can change it in place.
- :func:`square_block` cuts a width × width block of sample rows out of one
  output, for dense ``(N, width)`` and convolutional ``(N, C, *spatial)`` layouts.

Which outputs count
-------------------
``select="weights_and_activations"`` (the default) counts

1. every module with a tensor attribute ``weight``: Linear, ConvNd, Embedding and
   normalisation layers with an affine weight;
2. every instance of a class listed in ``torch.nn.modules.activation.__all__``
   (ReLU, SiLU, Tanh, GELU, Softmax, MultiheadAttention, ... and their subclasses);
3. every user-defined activation module: a module whose class is defined outside
   the ``torch`` package, that has no parameters and no submodules, and whose
   output has the same shape as its first tensor argument. Such a module is
   checked on every call, so ``class STanh(nn.Module)`` counts and a user-defined
   ``Flatten`` does not;
4. every elementwise activation applied as a function inside ``forward``
   (``F.relu``, ``torch.tanh``, ``x.sigmoid()``, ...; see
   :data:`FUNCTIONAL_ACTIVATIONS` and :data:`ACTIVATION_METHODS`). These are
   found by ``torch.fx`` symbolic tracing. A model that cannot be traced is
   captured with forward hooks on the selected modules alone, and a logged
   warning states that functional activations are then left out.

Rules 1 and 2 are the rule of the NEAR authors' reference code (Husistein,
Reiher and Eckhoff, 2024), whose scores the published correlations come from.
Rules 3 and 4 add what that code misses. ``select="weights"`` keeps rule 1 alone
and ``select="activations"`` rules 2 to 4. A callable ``select(name, module)``
decides by itself. It receives each module's qualified name and the module, and
for a functional activation the label of the call (such as ``"block.relu()"``)
and None.

The model itself is never selected when it has submodules, because its output is
the network's output, not a layer's. A module that is called several times in
one forward pass yields one output per call, labelled ``name``, ``name#2``, ...
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = [
    "ACTIVATION_METHODS",
    "FUNCTIONAL_ACTIVATIONS",
    "TORCH_ACTIVATIONS",
    "CaptureMode",
    "CapturePoint",
    "LayerKind",
    "OutputCapture",
    "Select",
    "feature_dim_of",
    "first_tensor",
    "is_user_activation",
    "output_rows",
    "square_block",
]

logger = logging.getLogger(__name__)

LayerKind = Literal["weights", "activation", "other"]
CaptureMode = Literal["fx", "hooks"]
SelectName = Literal["weights_and_activations", "activations", "weights"]
Select = Union[SelectName, Callable[[str, Union[nn.Module, None]], bool]]

SELECT_NAMES: tuple[str, ...] = ("weights_and_activations", "activations", "weights")

TORCH_ACTIVATIONS: tuple[type[nn.Module], ...] = tuple(
    getattr(nn, name) for name in nn.modules.activation.__all__ if hasattr(nn, name)
)


def _existing(namespace: Any, names: Sequence[str]) -> list[Callable]:
    return [getattr(namespace, name) for name in names if hasattr(namespace, name)]


FUNCTIONAL_ACTIVATIONS: frozenset[Callable] = frozenset(
    _existing(
        F,
        [
            "relu", "relu_", "relu6", "elu", "elu_", "selu", "celu", "leaky_relu",
            "leaky_relu_", "rrelu", "rrelu_", "prelu", "gelu", "silu", "mish",
            "hardswish", "hardsigmoid", "hardtanh", "hardtanh_", "softplus",
            "softsign", "softshrink", "hardshrink", "tanhshrink", "logsigmoid",
            "sigmoid", "tanh", "threshold", "threshold_",
        ],
    )
    + _existing(
        torch,
        [
            "relu", "relu_", "selu", "selu_", "celu", "celu_", "rrelu", "rrelu_",
            "prelu", "sigmoid", "sigmoid_", "tanh", "tanh_", "threshold", "threshold_",
        ],
    )
    + _existing(torch.special, ["expit"])
)
"""Elementwise activation functions that count when called inside ``forward``."""

ACTIVATION_METHODS: frozenset[str] = frozenset(
    {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_"}
)
"""Tensor methods that count as activations, as in ``x.relu()``."""

# Modules whose outputs are laid out (N, C, *spatial), channels in dimension 1.
_CHANNELS_FIRST = (_ConvNd, _BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LocalResponseNorm)

# Modules whose outputs have their features in the last dimension. Recurrent
# layers and attention put the batch first only with batch_first=True; otherwise
# their outputs are left out because dimension 0 does not grow with the batch.
_FEATURES_LAST = tuple(
    _existing(
        nn,
        [
            "Linear", "Bilinear", "LayerNorm", "RMSNorm", "Embedding", "MultiheadAttention",
            "RNNBase", "TransformerEncoderLayer", "TransformerDecoderLayer",
            "TransformerEncoder", "TransformerDecoder", "Transformer",
        ],
    )
)


@dataclass(frozen=True)
class CapturePoint:
    """A place in the forward pass whose output is captured.

    Attributes
    ----------
    name : str
        Label, unique within one forward pass: the module's qualified name,
        ``name#k`` for its k-th call, or ``scope.function()`` for a functional
        activation.
    module_name : str
        Qualified name of the module, or the fx node name of a functional call.
    kind : {"weights", "activation", "other"}
        ``"weights"`` for a module with weights (a pre-activation),
        ``"activation"`` for an activation (a post-activation), ``"other"`` for a
        module that only a callable ``select`` chose.
    module : torch.nn.Module or None
        The module, or None for a functional activation.
    """

    name: str
    module_name: str
    kind: LayerKind
    module: nn.Module | None


@dataclass(frozen=True)
class _ModuleTarget:
    kind: LayerKind
    check_shape: bool


def has_weight(module: nn.Module) -> bool:
    """Return whether ``module`` has a tensor attribute ``weight``."""
    return isinstance(getattr(module, "weight", None), torch.Tensor)


def is_user_activation(module: nn.Module) -> bool:
    """Return whether ``module`` may be a user-defined activation.

    True for a module whose class is defined outside the ``torch`` package and
    that has no parameters and no submodules. Whether it acts elementwise (keeps
    the shape of its input) can only be seen when it runs.
    """
    defined_in = type(module).__module__ or ""
    if defined_in == "torch" or defined_in.startswith("torch."):
        return False
    if next(module.children(), None) is not None:
        return False
    return next(module.parameters(recurse=False), None) is None


def first_tensor(value: Any) -> torch.Tensor | None:
    """Return ``value`` if it is a tensor, else the first tensor in a tuple or list.

    Modules such as ``nn.MultiheadAttention`` and ``nn.LSTM`` return tuples whose
    first element is the layer's output, so the later elements are ignored.
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for element in value:
            if isinstance(element, torch.Tensor):
                return element
    return None


def _validate_select(select: Select) -> None:
    if callable(select):
        return
    if select not in SELECT_NAMES:
        raise ValueError(
            f"select must be one of {', '.join(map(repr, SELECT_NAMES))} or a callable "
            f"(name, module) -> bool, got {select!r}."
        )


def _module_targets(model: nn.Module, select: Select) -> dict[str, _ModuleTarget]:
    """Choose the modules of ``model`` whose outputs count, by qualified name."""
    has_children = next(model.children(), None) is not None
    targets: dict[str, _ModuleTarget] = {}
    for name, module in model.named_modules():
        if name == "" and has_children:
            continue
        if has_weight(module):
            kind: LayerKind | None = "weights"
        elif isinstance(module, TORCH_ACTIVATIONS) or is_user_activation(module):
            kind = "activation"
        else:
            kind = None

        if callable(select):
            if select(name, module):
                targets[name] = _ModuleTarget(kind or "other", check_shape=False)
            continue
        if kind is None:
            continue
        if kind == "weights" and select == "activations":
            continue
        if kind == "activation" and select == "weights":
            continue
        check_shape = kind == "activation" and not isinstance(module, TORCH_ACTIVATIONS)
        targets[name] = _ModuleTarget(kind, check_shape)
    return targets


class _LeafTracer(torch.fx.Tracer):
    """Symbolic tracer that keeps the selected modules as single calls."""

    def __init__(self, leaf_names: set[str]) -> None:
        super().__init__()
        self._leaf_names = leaf_names

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self._leaf_names:
            return True
        return super().is_leaf_module(m, module_qualified_name)


class _FunctionalRecorder(nn.Module):
    """Pass a functional activation's output through, handing it to the capture first."""

    def __init__(self, capture: OutputCapture, point: CapturePoint) -> None:
        super().__init__()
        self._capture = capture
        self._point = point

    def forward(self, value):
        self._capture._record(self._point, value)
        return value


def _is_functional_activation(node: torch.fx.Node) -> bool:
    if node.op == "call_function":
        try:
            return node.target in FUNCTIONAL_ACTIVATIONS
        except TypeError:  # an unhashable target
            return False
    return node.op == "call_method" and node.target in ACTIVATION_METHODS


def _functional_label(node: torch.fx.Node) -> str:
    scopes = node.meta.get("nn_module_stack") or {}
    scope = next(reversed(scopes), "") if scopes else ""
    return f"{scope}.{node.name}()" if scope else f"{node.name}()"


def _clone_output(point: CapturePoint, output: torch.Tensor) -> torch.Tensor:
    return output.detach().clone()


class OutputCapture:
    """Run a model and capture the outputs of its selected layers.

    The capture is made for a model that the caller owns and may change, such as
    a deep copy. :meth:`run` registers forward hooks on it for the length of one
    forward pass, or :meth:`hooks_attached` for a block of runs. The hooks are
    removed afterwards, also when a forward pass raises.

    Parameters
    ----------
    model : torch.nn.Module
        The model. Its ``forward`` takes one tensor.
    select : {"weights_and_activations", "activations", "weights"} or callable, \
default="weights_and_activations"
        Which outputs count; see the module documentation.
    trace : bool, default=True
        Try ``torch.fx`` symbolic tracing to find functional activations. With
        False, or when tracing fails, only modules are captured, with hooks.

    Attributes
    ----------
    mode : {"fx", "hooks"}
        ``"fx"`` when a traced copy of the forward pass runs, ``"hooks"`` when the
        model's own forward runs.
    notes : list of str
        Remarks for the caller's report, such as why tracing failed.
    """

    def __init__(self, model: nn.Module, select: Select = "weights_and_activations", trace: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        _validate_select(select)
        self.model = model
        self.select = select
        self.notes: list[str] = []
        self._targets = _module_targets(model, select)
        self._graph_module: torch.fx.GraphModule | None = None
        self._verified = False
        self._records: list[tuple[CapturePoint, Any]] | None = None
        self._process: Callable[[CapturePoint, torch.Tensor], Any] = _clone_output
        self._calls: dict[str, int] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] | None = None
        if trace and next(model.children(), None) is not None:
            self._graph_module = self._trace()
        self.mode: CaptureMode = "fx" if self._graph_module is not None else "hooks"

    # --- tracing -------------------------------------------------------------------

    def _trace(self) -> torch.fx.GraphModule | None:
        tracer = _LeafTracer(set(self._targets))
        try:
            graph = tracer.trace(self.model)
        except Exception as error:  # symbolic tracing fails in many ways: TraceError, TypeError, ...
            self._fall_back_to_hooks(f"torch.fx could not trace it ({type(error).__name__}: {error})")
            return None

        # NOTE: the graph module shares the model's submodules and parameters. A
        # re-initialisation that replaces a parameter object instead of writing
        # into it is not seen where the traced code reads that parameter directly.
        graph_module = torch.fx.GraphModule(tracer.root, graph)
        n_recorders = 0
        for node in list(graph_module.graph.nodes):
            if not _is_functional_activation(node):
                continue
            label = _functional_label(node)
            if callable(self.select):
                if not self.select(label, None):
                    continue
            elif self.select == "weights":
                continue
            point = CapturePoint(label, node.name, "activation", None)
            recorder_name = f"_layersize_recorder_{n_recorders}"
            graph_module.add_submodule(recorder_name, _FunctionalRecorder(self, point))
            # The recorder runs right after the activation, before any later node
            # can change the activation's output in place.
            with graph_module.graph.inserting_after(node):
                graph_module.graph.call_module(recorder_name, (node,))
            n_recorders += 1
        graph_module.recompile()
        logger.debug("Traced %s with torch.fx: %d functional activations found.", type(self.model).__name__, n_recorders)
        return graph_module

    def _fall_back_to_hooks(self, reason: str) -> None:
        message = (
            f"Capturing {type(self.model).__name__} with forward hooks because {reason}. "
            f"Activations applied as functions inside forward (F.relu, torch.tanh, ...) "
            f"are not counted."
        )
        logger.warning(message)
        self.notes.append(message)
        self._graph_module = None
        self.mode = "hooks"

    # --- running -------------------------------------------------------------------

    def run(
        self,
        inputs: torch.Tensor,
        process: Callable[[CapturePoint, torch.Tensor], Any] | None = None,
    ) -> list[tuple[CapturePoint, Any]]:
        """Run one forward pass and return the processed outputs in the order they ran.

        Parameters
        ----------
        inputs : torch.Tensor of shape (N, ...)
            The batch passed to the model.
        process : callable, optional
            ``process(point, output)`` is called with each selected output as soon
            as it is computed, before later operations can change it in place, so
            it must copy what it keeps. A None result drops the output. By default
            the output is cloned.

        Returns
        -------
        list of (CapturePoint, object)
            One entry per selected output, in execution order.

        Notes
        -----
        If the first forward pass through the traced model raises but the model's
        own forward does not, the capture falls back to hooks for good. Errors of
        the model's own forward pass propagate.
        """
        process = process if process is not None else _clone_output
        if self._graph_module is None:
            return self._run_once(self.model, inputs, process)
        if self._verified:
            return self._run_once(self._graph_module, inputs, process)

        try:
            records = self._run_once(self._graph_module, inputs, process)
        except Exception as traced_error:  # any failure of the traced code; the model's own forward is tried next
            # An error of the model's own forward pass propagates from here, and
            # the capture stays traced.
            records = self._run_once(self.model, inputs, process)
            self._fall_back_to_hooks(
                f"its traced forward pass failed ({type(traced_error).__name__}: {traced_error})"
            )
            return records
        self._verified = True
        return records

    @contextlib.contextmanager
    def hooks_attached(self) -> Iterator[OutputCapture]:
        """Keep the forward hooks registered across the :meth:`run` calls inside the block.

        By default every :meth:`run` registers and removes one hook per selected
        module, which costs a noticeable share of a small model's forward pass.
        Inside this block the hooks stay registered, and they do nothing outside
        a run. They are removed on exit, also when a run raises.
        """
        if self._handles is not None:
            yield self
            return
        self._handles = self._register_hooks()
        try:
            yield self
        finally:
            handles, self._handles = self._handles, None
            for handle in handles:
                handle.remove()

    def _register_hooks(self) -> list[torch.utils.hooks.RemovableHandle]:
        modules = dict(self.model.named_modules())
        handles = []
        try:
            for name, target in self._targets.items():
                handles.append(modules[name].register_forward_hook(self._make_hook(name, target)))
        except BaseException:
            for handle in handles:
                handle.remove()
            raise
        return handles

    def _run_once(self, runner: nn.Module, inputs: torch.Tensor, process) -> list[tuple[CapturePoint, Any]]:
        handles = []
        self._records = []
        self._process = process
        self._calls = {}
        try:
            if self._handles is None:
                handles = self._register_hooks()
            runner(inputs)
            return self._records
        finally:
            for handle in handles:
                handle.remove()
            self._records = None
            self._process = _clone_output

    def _make_hook(self, name: str, target: _ModuleTarget):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is None:
                return
            if target.check_shape:
                argument = first_tensor(args)
                if argument is None or argument.shape != tensor.shape:
                    return
            calls = self._calls.get(name, 0) + 1
            self._calls[name] = calls
            label = name or type(module).__name__
            if calls > 1:
                label = f"{label}#{calls}"
            self._record(CapturePoint(label, name, target.kind, module), tensor)

        return hook

    def _record(self, point: CapturePoint, output: Any) -> None:
        if self._records is None:
            return
        tensor = first_tensor(output)
        if tensor is None:
            return
        result = self._process(point, tensor)
        if result is not None:
            self._records.append((point, result))


# --- matrices from outputs --------------------------------------------------------------


def feature_dim_of(
    module: nn.Module | None,
    shape: Sequence[int],
    recent: dict[tuple[int, ...], int] | None = None,
) -> int:
    """Return the dimension of an output that indexes its features (channels).

    Parameters
    ----------
    module : torch.nn.Module or None
        The module that produced the output, or None for a functional call.
    shape : sequence of int
        The output's shape.
    recent : dict, optional
        Feature dimension of the latest earlier output of each shape in the same
        forward pass. An activation or an unknown module keeps the layout of the
        latest output of its shape, which is usually its input.

    Returns
    -------
    int
        1 for (N, width) outputs and for channels-first ``(N, C, *spatial)``
        outputs, ``len(shape) - 1`` for features in the last dimension.
    """
    ndim = len(shape)
    if ndim <= 2:
        return 1 if ndim == 2 else 0
    if isinstance(module, _CHANNELS_FIRST):
        return 1
    if isinstance(module, _FEATURES_LAST):
        return ndim - 1
    if recent is not None and tuple(shape) in recent:
        return recent[tuple(shape)]
    # PyTorch's convention for batched data of more than two dimensions.
    return 1


def output_rows(output: torch.Tensor, feature_dim: int = 1) -> torch.Tensor:
    """Flatten an output to a matrix with one row per sample position.

    Parameters
    ----------
    output : torch.Tensor of shape (N, ...)
        A layer output; dimension 0 is the batch.
    feature_dim : int, default=1
        The dimension of the features (channels).

    Returns
    -------
    torch.Tensor of shape (N * positions, width)
        Row ``i * positions + j`` contains the features of sample ``i`` at spatial
        position ``j`` (row-major over the other dimensions), so the rows of one
        sample are contiguous. A view where the layout allows one.
    """
    if output.ndim == 0:
        raise ValueError("A layer output must have a batch dimension, got a 0-dimensional tensor.")
    if output.ndim == 1:
        return output.reshape(-1, 1)
    feature_dim = feature_dim % output.ndim
    if feature_dim == 0:
        raise ValueError(
            f"feature_dim must not be the batch dimension 0, got {feature_dim} for an "
            f"output of shape {tuple(output.shape)}."
        )
    moved = output.movedim(feature_dim, -1) if feature_dim != output.ndim - 1 else output
    return moved.reshape(-1, output.shape[feature_dim])


def square_block(
    output: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    feature_dim: int = 1,
    n_samples: int | None = None,
) -> torch.Tensor:
    """Cut a width × width block of rows out of a layer output.

    The rows are those of :func:`output_rows`. A dense output ``(N, width)`` gives
    its first ``width`` rows. An output with P > 1 positions per sample (a feature
    map) gives the ``width`` rows that start at the first position of sample s,
    where s is drawn uniformly among the samples from which ``width`` rows fit
    inside the batch. When one sample has fewer positions than ``width``, the block
    runs on into the rows of the samples that follow.

    Parameters
    ----------
    output : torch.Tensor of shape (N, ...)
        A layer output, such as (N, width) or (N, C, *spatial).
    generator : torch.Generator, optional
        Source of the starting sample. Without it, torch's global generator is
        used. Its device must be the CPU.
    feature_dim : int, default=1
        The dimension of the features; see :func:`feature_dim_of`.
    n_samples : int, optional
        Number of samples in the batch. By default ``output.shape[0]``. Give it
        when dimension 0 has several entries per sample, such as (N * T, width).

    Returns
    -------
    torch.Tensor of shape (width, width), or (rows, width) with rows < width
        A contiguous copy that later in-place operations do not change. It has
        fewer than ``width`` rows only when the whole batch has fewer rows.

    Raises
    ------
    ValueError
        If ``output`` has no batch dimension, or its dimension 0 is not a multiple
        of ``n_samples``.

    Examples
    --------
    >>> feature_map = torch.randn(8, 64, 4, 4)  # 16 positions per sample
    >>> square_block(feature_map, torch.Generator().manual_seed(0)).shape
    torch.Size([64, 64])
    """
    if output.ndim == 0:
        raise ValueError("A layer output must have a batch dimension, got a 0-dimensional tensor.")
    if output.ndim == 1:
        output = output.reshape(-1, 1)
        feature_dim = 1
    n_samples = int(output.shape[0]) if n_samples is None else int(n_samples)
    width, entries_per_sample, samples_spanned, last_start, rows_per_sample = _block_layout(
        tuple(output.shape), feature_dim, n_samples
    )
    if rows_per_sample > 1 and last_start > 0:
        start = int(torch.randint(last_start + 1, (1,), generator=generator))
    else:
        start = 0

    piece = output.narrow(0, start * entries_per_sample, samples_spanned * entries_per_sample)
    rows = output_rows(piece, feature_dim)
    return rows[:width].clone(memory_format=torch.contiguous_format)


@functools.lru_cache(maxsize=4096)
def _block_layout(shape: tuple[int, ...], feature_dim: int, n_samples: int) -> tuple[int, int, int, int, int]:
    """Return width, entries per sample, samples spanned, latest start sample and rows per sample.

    Cached because :func:`square_block` cuts blocks of the same shapes many times.
    """
    if n_samples < 1 or shape[0] % n_samples != 0:
        raise ValueError(
            f"Dimension 0 of an output of shape {shape} must be a positive "
            f"multiple of n_samples={n_samples}. Pass the number of samples in the batch."
        )
    width = int(shape[feature_dim])
    entries_per_sample = shape[0] // n_samples
    rows_per_sample = math.prod(shape) // max(n_samples * width, 1)

    # Samples whose rows the block touches, and the latest sample it can start at.
    samples_spanned = min(max(math.ceil(width / max(rows_per_sample, 1)), 1), n_samples)
    last_start = n_samples - samples_spanned
    return width, entries_per_sample, samples_spanned, last_start, rows_per_sample
