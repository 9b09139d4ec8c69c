"""Named activation functions, weight initialisations and the MLP builder.

Every command of the package takes its activation and initialisation by the names
defined here, so that one name means the same thing everywhere.

Activations
-----------
``stanh``       sTanh(x) = 1.59223 tanh(x), the activation of lMLP potentials
``silu``        x sigmoid(x)
``relu``        max(0, x)
``tanh``        tanh(x)
``tanhshrink``  x - tanh(x)

Initialisations (weights W of shape (fan_out, fan_in, ...), biases b)
----------------------------------------------------------------------
``stanh``            W ~ N(0, 1/fan_in), b = 0. The lMLP code that sets up its
                     sTanh networks is not published, so this is a reading of it.
                     The factor 1.59223 makes sTanh of a unit-variance Gaussian
                     have unit variance, and N(0, 1/fan_in) keeps pre-activations
                     at unit variance. It is LeCun normal initialisation.
``kaiming_uniform``  W ~ U(-b, b) with b = sqrt(6/fan_in)
                     (``torch.nn.init.kaiming_uniform_`` with its defaults), b = 0
``xavier_uniform``   W ~ U(-b, b) with b = sqrt(6/(fan_in + fan_out)), b = 0
``uniform``          W ~ U(0, 1), b = 0: the default range of
                     ``torch.nn.init.uniform_``, so every weight is positive.
                     The NEAR paper (Husistein, Reiher and Eckhoff, 2024) names
                     this scheme only "uniform". The range is inferred from its
                     scores of about 9 to 13 for every uniform pair of a
                     784-200-200-47 MLP on balanced EMNIST.
                     U(0, 1) reproduces them: 9.5 to 14.4 on 5,000 MNIST digits
                     with a 784-200-200-10 MLP, whereas U(-1, 1) scores 367 to
                     476 (measured by examples/activation_init_mnist.py, see
                     docs/activation_init.md).
``pytorch``          W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the draw of
                     ``nn.Linear.reset_parameters`` and ``nn.Conv*d.reset_parameters``
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "INITIALIZATIONS",
    "STANH_SCALE",
    "Initialization",
    "STanh",
    "build_mlp",
    "get_activation",
    "get_initialization",
]

STANH_SCALE = 1.59223


class STanh(nn.Module):
    r"""Apply the scaled hyperbolic tangent elementwise.

    .. math::
        \text{sTanh}(x) = 1.59223 \tanh(x)

    The factor makes the output of a standard normal input have unit variance.

    Shape:
        - Input: :math:`(*)`, any shape.
        - Output: :math:`(*)`, same shape as the input.

    Examples::

        >>> activation = STanh()
        >>> output = activation(torch.zeros(3))
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return STANH_SCALE * torch.tanh(input)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "stanh": STanh,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "tanhshrink": nn.Tanhshrink,
}


def get_activation(name: str) -> nn.Module:
    """Create a new activation module from its name (case-insensitive).

    Raises
    ------
    ValueError
        If the name is not one of :data:`ACTIVATIONS`.
    """
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}. Choose one of: {', '.join(ACTIVATIONS)}."
        )
    return ACTIVATIONS[key]()


def _fans(weight_shape: Sequence[int]) -> tuple[int, int]:
    """Return (fan_in, fan_out) of a Linear or ConvNd weight shape."""
    if len(weight_shape) < 2:
        raise ValueError(f"A weight needs at least two dimensions, got shape {tuple(weight_shape)}.")
    receptive_field = math.prod(weight_shape[2:])
    return weight_shape[1] * receptive_field, weight_shape[0] * receptive_field


@dataclass(frozen=True)
class Initialization:
    """A named weight initialisation that can draw many weight sets at once.

    Parameters
    ----------
    name : str
        The name used on the command line.
    weight : {"normal", "uniform_symmetric", "uniform_positive"}
        The family of the weight distribution.
    description : str
        One line for help texts and reports.
    """

    name: str
    weight: str
    description: str

    def weight_bound(self, fan_in: int, fan_out: int) -> float:
        """Return the standard deviation (normal) or the half-width (uniform) of W."""
        if self.name == "stanh":
            return 1.0 / math.sqrt(fan_in)
        if self.name == "kaiming_uniform":
            return math.sqrt(6.0 / fan_in)
        if self.name == "xavier_uniform":
            return math.sqrt(6.0 / (fan_in + fan_out))
        if self.name == "pytorch":
            return 1.0 / math.sqrt(fan_in)
        return 1.0

    def sample_weights(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        fans: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Draw a tensor of weights.

        Parameters
        ----------
        shape : sequence of int
            The shape to draw. Without ``fans``, it is taken as a weight shape
            ``(fan_out, fan_in, *kernel)``.
        generator : torch.Generator, optional
            The source of randomness. Without it, torch's global generator is used.
        dtype : torch.dtype, default=torch.float32
        fans : (int, int), optional
            ``(fan_in, fan_out)`` when ``shape`` is a batch of weights rather than
            one weight, for example ``(repetitions, fan_in, fan_out)``.
        """
        fan_in, fan_out = fans if fans is not None else _fans(shape)
        bound = self.weight_bound(fan_in, fan_out)
        if self.weight == "normal":
            return torch.randn(*shape, generator=generator, dtype=dtype) * bound
        values = torch.rand(*shape, generator=generator, dtype=dtype)
        if self.weight == "uniform_positive":
            return values
        return (2.0 * values - 1.0) * bound

    def sample_biases(
        self,
        shape: Sequence[int],
        fan_in: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Draw biases: zero for every scheme except ``pytorch``."""
        if self.name != "pytorch":
            return torch.zeros(*shape, dtype=dtype)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return (2.0 * torch.rand(*shape, generator=generator, dtype=dtype) - 1.0) * bound

    @torch.no_grad()
    def __call__(self, module: nn.Module, generator: torch.Generator | None = None) -> None:
        """Re-initialise, in place, the weight and bias of every Linear and ConvNd in ``module``."""
        for submodule in module.modules():
            if not isinstance(submodule, (nn.Linear, nn.modules.conv._ConvNd)):
                continue
            weight = submodule.weight
            fan_in, _ = _fans(weight.shape)
            weight.copy_(self.sample_weights(weight.shape, generator, dtype=weight.dtype))
            if submodule.bias is not None:
                submodule.bias.copy_(
                    self.sample_biases(submodule.bias.shape, fan_in, generator, dtype=weight.dtype)
                )


INITIALIZATIONS: dict[str, Initialization] = {
    scheme.name: scheme
    for scheme in (
        Initialization("stanh", "normal", "W ~ N(0, 1/fan_in), zero bias (a reading of lMLP's sTanh scheme)"),
        Initialization("kaiming_uniform", "uniform_symmetric", "W ~ U(±sqrt(6/fan_in)), zero bias"),
        Initialization("xavier_uniform", "uniform_symmetric", "W ~ U(±sqrt(6/(fan_in+fan_out))), zero bias"),
        Initialization("uniform", "uniform_positive", "W ~ U(0, 1), zero bias"),
        Initialization("pytorch", "uniform_symmetric", "W, b ~ U(±1/sqrt(fan_in)), as nn.Linear.reset_parameters"),
    )
}


def get_initialization(name: str) -> Initialization:
    """Look up an initialisation by name (case-insensitive).

    Raises
    ------
    ValueError
        If the name is not one of :data:`INITIALIZATIONS`.
    """
    key = str(name).lower()
    if key not in INITIALIZATIONS:
        raise ValueError(
            f"Unknown initialisation {name!r}. Choose one of: {', '.join(INITIALIZATIONS)}."
        )
    return INITIALIZATIONS[key]


def build_mlp(
    n_inputs: int,
    hidden_widths: Sequence[int],
    activation: str = "stanh",
    n_outputs: int | None = 1,
) -> nn.Sequential:
    """Build a multi-layer perceptron: Linear, activation, ..., Linear.

    Parameters
    ----------
    n_inputs : int
        Number of input features (for a potential, descriptor values per atom).
    hidden_widths : sequence of int
        Width of each hidden layer.
    activation : str, default="stanh"
        Name of the activation after each hidden layer; see :data:`ACTIVATIONS`.
    n_outputs : int or None, default=1
        Width of the linear output layer; ``None`` leaves it out.
    """
    widths = [int(n_inputs), *(int(width) for width in hidden_widths)]
    if any(width < 1 for width in widths):
        raise ValueError(f"Every layer needs a width of at least 1, got {widths}.")
    if n_outputs is not None and int(n_outputs) < 1:
        raise ValueError(f"n_outputs must be at least 1, or None for no output layer; got {n_outputs}.")
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), get_activation(activation)]
    if n_outputs is not None:
        layers.append(nn.Linear(widths[-1], int(n_outputs)))
    return nn.Sequential(*layers)
