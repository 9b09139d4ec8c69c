"""NAS-Bench-201 (NATS-Bench topology search space) cells and networks.

A cell is a directed acyclic graph on four nodes. Node 0 is the cell input,
node j (j = 1, 2, 3) is the sum of op_ij(node i) over every i < j, and node 3
is the cell output. Each of the six edges carries one of five operations, so
the space contains 5⁶ = 15,625 cells:

``none``          zeros of the input's shape (the edge contributes nothing)
``skip_connect``  identity
``nor_conv_1x1``  ReLU → Conv2d 1×1 (no bias) → BatchNorm2d (affine)
``nor_conv_3x3``  ReLU → Conv2d 3×3, padding 1 (no bias) → BatchNorm2d (affine)
``avg_pool_3x3``  AvgPool2d 3×3, stride 1, padding 1, padding not counted

A cell is written as an architecture string that lists the inputs of nodes
1, 2 and 3 as ``op~source`` entries between bars, with ``+`` between nodes::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

The network around the cell (C channels, N cells per stage, C = 16, N = 5 in
the benchmark) is: stem Conv2d 3×3 (3 → C, no bias) + BatchNorm2d; N cells at
C channels; a residual reduction block C → 2C; N cells at 2C; a reduction block
2C → 4C; N cells at 4C; BatchNorm2d + ReLU, global average pooling and a
Linear classifier. The reduction block adds a branch (ReLU → Conv2d 3×3 stride
2 → BN, then ReLU → Conv2d 3×3 → BN) to a shortcut (AvgPool2d 2×2 stride 2 →
Conv2d 1×1, no bias). With 10 classes this gives 129,306 parameters for
benchmark index 0 and 101,306 for index 284, the counts the benchmark reports.

Benchmark order: the benchmark lists the cells in the order of Python's
``random.Random(88).shuffle`` applied to the product enumeration of the six
edges (edge order 1←0, 2←0, 2←1, 3←0, 3←1, 3←2; operation order as in
:data:`OPERATIONS`). Reference: X. Dong and Y. Yang, "NAS-Bench-201: Extending
the Scope of Reproducible Neural Architecture Search", ICLR 2020, and the
generation script of their AutoDL-Projects repository.
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = [
    "EDGES",
    "N_ARCHITECTURES",
    "OPERATIONS",
    "CellArchitecture",
    "all_architectures",
    "arch_index",
    "build_network",
    "count_parameters",
    "is_disconnected",
    "parse_arch",
]

#: Operation names, in the order the benchmark enumerates them.
OPERATIONS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: The six edges as (target node, source node), in architecture-string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

N_NODES = 4
N_ARCHITECTURES = len(OPERATIONS) ** len(EDGES)

# Seed of the shuffle that fixed the benchmark's index order.
_BENCHMARK_SHUFFLE_SEED = 88


@dataclass(frozen=True)
class CellArchitecture:
    """One NAS-Bench-201 cell: an operation name for each edge of :data:`EDGES`.

    Parameters
    ----------
    operations : tuple of str, length 6
        Operation of edges 1←0, 2←0, 2←1, 3←0, 3←1, 3←2.
    """

    operations: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.operations) != len(EDGES):
            raise ValueError(
                f"A cell needs one operation for each of its {len(EDGES)} edges, "
                f"got {len(self.operations)}: {self.operations!r}."
            )
        for operation in self.operations:
            if operation not in OPERATIONS:
                raise ValueError(
                    f"Unknown operation {operation!r}. Choose one of: {', '.join(OPERATIONS)}."
                )

    def edges(self) -> list[tuple[int, int, str]]:
        """Return the edges as (target node, source node, operation) triples."""
        return [(target, source, op) for (target, source), op in zip(EDGES, self.operations)]

    def __str__(self) -> str:
        groups: list[list[str]] = [[] for _ in range(N_NODES - 1)]
        for target, source, op in self.edges():
            groups[target - 1].append(f"{op}~{source}")
        return "+".join("|" + "|".join(group) + "|" for group in groups)


def parse_arch(arch: str | CellArchitecture) -> CellArchitecture:
    """Parse an architecture string into a :class:`CellArchitecture`.

    Parameters
    ----------
    arch : str or CellArchitecture
        A string such as ``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|``
        with the inputs of nodes 1, 2 and 3. Within a node the entries may come
        in any order, but each earlier node must appear exactly once. A
        :class:`CellArchitecture` is returned unchanged.

    Returns
    -------
    CellArchitecture

    Raises
    ------
    ValueError
        If the string does not have three ``+``-separated node groups, a group
        is not enclosed in bars, an entry is not ``op~source``, an operation is
        unknown, or a node's sources are not exactly 0 … j−1.
    """
    if isinstance(arch, CellArchitecture):
        return arch
    if not isinstance(arch, str):
        raise TypeError(f"An architecture must be a string, got {type(arch).__name__}: {arch!r}.")

    text = arch.strip()
    groups = text.split("+")
    if len(groups) != N_NODES - 1:
        raise ValueError(
            f"Invalid architecture {arch!r}: expected {N_NODES - 1} node groups separated by '+', "
            f"got {len(groups)}. Example: |nor_conv_3x3~0|+|none~0|skip_connect~1|+"
            f"|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
        )

    operation_of: dict[tuple[int, int], str] = {}
    for target, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise ValueError(
                f"Invalid architecture {arch!r}: the group of node {target}, {group!r}, "
                f"must start and end with '|'."
            )
        entries = group[1:-1].split("|")
        if len(entries) != target:
            raise ValueError(
                f"Invalid architecture {arch!r}: node {target} needs {target} inputs "
                f"(one from each earlier node), got {len(entries)} in {group!r}."
            )
        for entry in entries:
            operation, separator, source_text = entry.partition("~")
            if not separator or not source_text.isdigit():
                raise ValueError(
                    f"Invalid architecture {arch!r}: entry {entry!r} of node {target} "
                    f"must read 'operation~source', for example 'nor_conv_3x3~0'."
                )
            if operation not in OPERATIONS:
                raise ValueError(
                    f"Invalid architecture {arch!r}: unknown operation {operation!r}. "
                    f"Choose one of: {', '.join(OPERATIONS)}."
                )
            source = int(source_text)
            if source >= target:
                raise ValueError(
                    f"Invalid architecture {arch!r}: node {target} cannot take input from "
                    f"node {source}; its sources are 0 to {target - 1}."
                )
            if (target, source) in operation_of:
                raise ValueError(
                    f"Invalid architecture {arch!r}: node {target} lists source {source} twice."
                )
            operation_of[(target, source)] = operation

    return CellArchitecture(tuple(operation_of[edge] for edge in EDGES))


def is_disconnected(arch: str | CellArchitecture) -> bool:
    """Tell whether no path of non-``none`` edges leads from node 0 to node 3.

    Such a cell outputs zeros for every input, so every activation after the
    first cell of the network is zero.
    """
    cell = parse_arch(arch)
    reachable = {0}
    # EDGES is sorted by target, so each node's sources are settled before it.
    for target, source, op in cell.edges():
        if op != "none" and source in reachable:
            reachable.add(target)
    return N_NODES - 1 not in reachable


def _nodes_feeding_output(cell: CellArchitecture) -> frozenset[int]:
    """Return the nodes from which a path of non-``none`` edges leads to node 3 (node 3 included)."""
    live = {N_NODES - 1}
    # Walk the edges from the last target back, so each target is settled before its sources.
    for target, source, op in reversed(cell.edges()):
        if op != "none" and target in live:
            live.add(source)
    return frozenset(live)


def _product_order() -> list[str]:
    return [str(CellArchitecture(ops)) for ops in itertools.product(OPERATIONS, repeat=len(EDGES))]


@functools.lru_cache(maxsize=1)
def _benchmark_order() -> tuple[str, ...]:
    architectures = _product_order()
    # NOTE: this reproduces the benchmark order only as long as CPython's
    # Mersenne Twister and random.shuffle algorithm stay as they are (checked on
    # CPython 3.11 against all 15,625 rows of the benchmark's table).
    random.Random(_BENCHMARK_SHUFFLE_SEED).shuffle(architectures)
    return tuple(architectures)


@functools.lru_cache(maxsize=1)
def _index_of() -> dict[str, int]:
    return {arch: index for index, arch in enumerate(_benchmark_order())}


def all_architectures(order: Literal["benchmark", "product"] = "benchmark") -> list[str]:
    """List the 15,625 architecture strings of the space.

    Parameters
    ----------
    order : {"benchmark", "product"}, default="benchmark"
        ``"benchmark"``: position i is the cell of benchmark index i.
        ``"product"``: the product enumeration of the edges in :data:`EDGES`
        order, with operations in :data:`OPERATIONS` order (the last edge
        varies fastest).
    """
    if order == "benchmark":
        return list(_benchmark_order())
    if order == "product":
        return _product_order()
    raise ValueError(f"order must be 'benchmark' or 'product', got {order!r}.")


def arch_index(arch: str | CellArchitecture) -> int:
    """Return the benchmark index (0 … 15,624) of an architecture."""
    return _index_of()[str(parse_arch(arch))]


# --- Network modules ---------------------------------------------------------


class ReLUConvBN(nn.Sequential):
    """ReLU, then Conv2d without bias, then BatchNorm2d with affine parameters."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                      padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels, affine=True),
        )


def _make_operation(name: str, channels: int) -> nn.Module:
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"Unknown operation {name!r}. Choose one of: {', '.join(OPERATIONS)}.")


class Cell(nn.Module):
    """A NAS-Bench-201 cell that keeps channels and spatial size.

    Edges with the ``none`` operation get no module: they add zeros, so the
    node sums skip them, and a node without other inputs is
    ``torch.zeros_like`` of the cell input. This gives the benchmark's values
    and parameter count, and no layer-capturing code mistakes the zero
    operation for an activation function.

    Nodes 1 and 2 are computed only when a path of non-``none`` edges leads
    from them to node 3. The operations of a dead-end node keep their modules,
    so the parameter count stays the benchmark's, but they never run. Their
    output cannot change the cell's output, so skipping them changes no value,
    and it keeps them out of layer-capturing scores such as NEAR.

    Shape: input and output (batch, channels, height, width).
    """

    def __init__(self, arch: str | CellArchitecture, channels: int) -> None:
        super().__init__()
        self.arch = parse_arch(arch)
        self.edge_operations = nn.ModuleDict()
        inputs: list[tuple[tuple[str, int], ...]] = [() for _ in range(N_NODES)]
        for target, source, op in self.arch.edges():
            if op == "none":
                continue
            key = f"node{target}_from{source}"
            self.edge_operations[key] = _make_operation(op, channels)
            inputs[target] = (*inputs[target], (key, source))
        # (module key, source node) of the non-"none" inputs of each node; fixed
        # at construction, so torch.fx traces the loop in forward.
        self._node_inputs = tuple(inputs)
        self._live_nodes = _nodes_feeding_output(self.arch)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [input]
        for target in range(1, N_NODES):
            if target not in self._live_nodes:
                nodes.append(None)
                continue
            terms = [self.edge_operations[key](nodes[source]) for key, source in self._node_inputs[target]]
            if not terms:
                nodes.append(torch.zeros_like(input))
                continue
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            nodes.append(total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """Residual block that halves the spatial size and changes the channels.

    Shape: input (batch, in_channels, H, W), output (batch, out_channels, H/2, W/2)
    for even H and W.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, stride=2)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3, stride=1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(input)) + self.shortcut(input)


class CellNetwork(nn.Module):
    """The NAS-Bench-201 macro skeleton around one cell architecture.

    Shape: input (batch, 3, H, W) images, output (batch, num_classes) logits.
    """

    def __init__(self, arch: str | CellArchitecture, num_classes: int = 10,
                 channels: int = 16, cells_per_stage: int = 5) -> None:
        super().__init__()
        self.arch = parse_arch(arch)
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

        stages: list[nn.Module] = []
        stage_channels = channels
        for stage in range(3):
            if stage > 0:
                stages.append(ResidualReduction(stage_channels, 2 * stage_channels))
                stage_channels *= 2
            stages.extend(Cell(self.arch, stage_channels) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*stages)

        self.head = nn.Sequential(nn.BatchNorm2d(stage_channels), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(stage_channels, num_classes)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        features = self.head(self.cells(self.stem(input)))
        return self.classifier(torch.flatten(self.pool(features), 1))


def build_network(arch: str | CellArchitecture, num_classes: int = 10, channels: int = 16,
                  cells_per_stage: int = 5) -> CellNetwork:
    """Build the benchmark network of one cell architecture.

    Parameters
    ----------
    arch : str or CellArchitecture
        The cell, as an architecture string or parsed.
    num_classes : int, default=10
        Output width of the classifier (10 for CIFAR-10, 100 for CIFAR-100,
        120 for ImageNet16-120).
    channels : int, default=16
        Channels of the first stage; the later stages use 2× and 4× as many.
    cells_per_stage : int, default=5
        Cells in each of the three stages.

    Returns
    -------
    CellNetwork
        A module in training mode with PyTorch's default initialisation. It
        maps images of shape (batch, 3, H, W) to logits of shape
        (batch, num_classes); H and W must be divisible by 4.
    """
    for name, value in (("num_classes", num_classes), ("channels", channels),
                        ("cells_per_stage", cells_per_stage)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return CellNetwork(arch, int(num_classes), int(channels), int(cells_per_stage))


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters (BatchNorm running statistics excluded)."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)

