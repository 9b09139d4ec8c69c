"""Tests for the named activations, initialisations and the MLP builder."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from torch import nn

from layersize.nets import (
    ACTIVATIONS,
    INITIALIZATIONS,
    STANH_SCALE,
    STanh,
    build_mlp,
    get_activation,
    get_initialization,
)

# Relative tolerance on a sample standard deviation. With 120,000 weights its
# standard error is below 0.3 %, with 25,600 below 0.7 %.
STD_RTOL = 0.03


def expected_weight_distribution(name: str, fan_in: int, fan_out: int) -> dict[str, float]:
    """Return the support and moments of W that the nets module documents for a scheme."""
    if name == "stanh":
        std = 1.0 / math.sqrt(fan_in)
        return {"low": -math.inf, "high": math.inf, "mean": 0.0, "std": std}
    if name == "uniform":
        return {"low": 0.0, "high": 1.0, "mean": 0.5, "std": 1.0 / math.sqrt(12.0)}
    bounds = {
        "kaiming_uniform": math.sqrt(6.0 / fan_in),
        "xavier_uniform": math.sqrt(6.0 / (fan_in + fan_out)),
        "pytorch": 1.0 / math.sqrt(fan_in),
    }
    bound = bounds[name]
    return {"low": -bound, "high": bound, "mean": 0.0, "std": bound / math.sqrt(3.0)}


def assert_matches_distribution(weights: torch.Tensor, expected: dict[str, float]) -> None:
    values = weights.detach().double()
    mean_tolerance = 5.0 * expected["std"] / math.sqrt(values.numel())

    assert values.min().item() >= expected["low"]
    assert values.max().item() <= expected["high"]
    assert abs(values.mean().item() - expected["mean"]) < mean_tolerance
    assert values.std().item() == pytest.approx(expected["std"], rel=STD_RTOL)
    if math.isfinite(expected["high"]):
        # A uniform sample of this size reaches close to both ends of its range.
        width = expected["high"] - expected["low"]
        assert values.min().item() < expected["low"] + 0.01 * width
        assert values.max().item() > expected["high"] - 0.01 * width


# --- activations ------------------------------------------------------------------


def test_stanh_values():
    inputs = torch.tensor([-3.0, -1.0, -0.25, 0.0, 0.5, 2.0], dtype=torch.float64)

    outputs = STanh()(inputs)

    torch.testing.assert_close(outputs, 1.59223 * torch.tanh(inputs))
    assert STANH_SCALE == 1.59223


def test_stanh_unit_variance_sampled():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(1_000_000, generator=generator, dtype=torch.float64)

    variance = STanh()(inputs).var().item()

    assert variance == pytest.approx(1.0, abs=0.01)


def test_stanh_unit_variance_quadrature():
    # Gauss-Hermite quadrature for the standard normal weight exp(-x²/2).
    nodes, weights = np.polynomial.hermite_e.hermegauss(100)
    weights = weights / weights.sum()

    variance = float(weights @ (STANH_SCALE * np.tanh(nodes)) ** 2)

    assert variance == pytest.approx(1.0, abs=1e-3)


# Each activation written out from its definition, independently of torch.nn.
ACTIVATION_FORMULAS = {
    "stanh": lambda x: 1.59223 * torch.tanh(x),
    "silu": lambda x: x / (1.0 + torch.exp(-x)),
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "tanh": torch.tanh,
    "tanhshrink": lambda x: x - torch.tanh(x),
}


def test_activation_formulas_cover_every_activation():
    assert set(ACTIVATION_FORMULAS) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_values(name):
    inputs = torch.linspace(-4.0, 4.0, 33, dtype=torch.float64)

    outputs = get_activation(name)(inputs)

    torch.testing.assert_close(outputs, ACTIVATION_FORMULAS[name](inputs))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_build_mlp_applies_activation(name):
    generator = torch.Generator().manual_seed(10)
    network = build_mlp(6, [5, 4], activation=name, n_outputs=3).double()
    get_initialization("pytorch")(network, generator)
    first, _, second, _, output = network
    inputs = torch.randn(7, 6, generator=generator, dtype=torch.float64)
    formula = ACTIVATION_FORMULAS[name]

    expected = output(formula(second(formula(first(inputs)))))

    torch.testing.assert_close(network(inputs), expected)


@pytest.mark.parametrize(
    ("name", "module_type"),
    [("stanh", STanh), ("silu", nn.SiLU), ("relu", nn.ReLU), ("tanh", nn.Tanh), ("tanhshrink", nn.Tanhshrink)],
)
def test_get_activation_types(name, module_type):
    first = get_activation(name)
    second = get_activation(name)

    assert isinstance(first, module_type)
    assert first is not second


def test_get_activation_case_insensitive():
    assert isinstance(get_activation("SiLU"), nn.SiLU)
    assert isinstance(get_activation("STANH"), STanh)


def test_get_activation_unknown_name():
    with pytest.raises(ValueError, match="Unknown activation 'gelu'") as error:
        get_activation("gelu")

    for name in ACTIVATIONS:
        assert name in str(error.value)


# --- initialisations --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(INITIALIZATIONS))
def test_initialization_linear(name):
    layer = nn.Linear(400, 300)
    generator = torch.Generator().manual_seed(1)

    get_initialization(name)(layer, generator)

    assert_matches_distribution(layer.weight, expected_weight_distribution(name, 400, 300))
    if name == "pytorch":
        bound = 1.0 / math.sqrt(400)
        assert layer.bias.abs().max().item() <= bound
        assert torch.count_nonzero(layer.bias).item() == 300
    else:
        assert torch.count_nonzero(layer.bias).item() == 0


@pytest.mark.parametrize("name", sorted(INITIALIZATIONS))
def test_initialization_conv2d(name):
    # fan_in = 16 · 5 · 5 = 400 and fan_out = 64 · 5 · 5 = 1600, as torch counts them.
    layer = nn.Conv2d(16, 64, kernel_size=5)
    generator = torch.Generator().manual_seed(2)

    get_initialization(name)(layer, generator)

    assert_matches_distribution(layer.weight, expected_weight_distribution(name, 400, 1600))
    if name == "pytorch":
        assert layer.bias.abs().max().item() <= 1.0 / math.sqrt(400)
        assert torch.count_nonzero(layer.bias).item() == 64
    else:
        assert torch.count_nonzero(layer.bias).item() == 0


def test_initialization_whole_network():
    network = build_mlp(20, [30, 40], activation="relu")

    get_initialization("stanh")(network, torch.Generator().manual_seed(3))

    for layer in network:
        if isinstance(layer, nn.Linear):
            assert torch.count_nonzero(layer.bias).item() == 0


@pytest.mark.parametrize("name", sorted(INITIALIZATIONS))
def test_sample_weights_batched_fans(name):
    scheme = get_initialization(name)
    generator = torch.Generator().manual_seed(4)

    weights = scheme.sample_weights((10, 400, 300), generator, fans=(400, 300))

    assert weights.shape == (10, 400, 300)
    assert weights.dtype == torch.float32
    assert_matches_distribution(weights, expected_weight_distribution(name, 400, 300))


@pytest.mark.parametrize("name", ["kaiming_uniform", "xavier_uniform"])
def test_bound_matches_torch_init(name):
    # The same schemes as torch.nn.init with its default arguments.
    reference = torch.empty(300, 400)
    torch_init = {"kaiming_uniform": nn.init.kaiming_uniform_, "xavier_uniform": nn.init.xavier_uniform_}
    torch_init[name](reference, generator=torch.Generator().manual_seed(5))

    bound = get_initialization(name).weight_bound(400, 300)

    assert reference.abs().max().item() <= bound
    assert reference.abs().max().item() > 0.99 * bound


def test_uniform_matches_torch_uniform_default():
    # "uniform" is torch.nn.init.uniform_ with its default range, U(0, 1).
    defaults = inspect.signature(nn.init.uniform_).parameters
    reference = nn.init.uniform_(torch.empty(400, 300), generator=torch.Generator().manual_seed(11))
    layer = nn.Linear(300, 400)

    get_initialization("uniform")(layer, torch.Generator().manual_seed(11))

    assert defaults["a"].default == 0.0
    assert defaults["b"].default == 1.0
    assert reference.min().item() >= 0.0
    assert layer.weight.min().item() >= 0.0
    assert layer.weight.max().item() <= 1.0
    assert layer.weight.mean().item() == pytest.approx(reference.mean().item(), abs=0.005)
    assert layer.weight.std().item() == pytest.approx(reference.std().item(), rel=STD_RTOL)


def test_pytorch_bound_matches_linear_default():
    torch.manual_seed(6)
    reference = nn.Linear(400, 300)

    bound = get_initialization("pytorch").weight_bound(400, 300)

    assert reference.weight.abs().max().item() <= bound
    assert reference.weight.abs().max().item() > 0.99 * bound
    assert reference.bias.abs().max().item() <= bound


@pytest.mark.parametrize("name", sorted(INITIALIZATIONS))
def test_seeded_initialization_repeats(name):
    first = nn.Linear(50, 40)
    second = nn.Linear(50, 40)

    get_initialization(name)(first, torch.Generator().manual_seed(7))
    get_initialization(name)(second, torch.Generator().manual_seed(7))

    torch.testing.assert_close(first.weight, second.weight, rtol=0, atol=0)
    torch.testing.assert_close(first.bias, second.bias, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(INITIALIZATIONS))
def test_seeded_initialization_keeps_global_rng(name):
    layer = nn.Conv2d(3, 8, kernel_size=3)
    scheme = get_initialization(name)
    state_before = torch.get_rng_state()

    scheme(layer, torch.Generator().manual_seed(8))
    scheme.sample_weights((4, 30, 20), torch.Generator().manual_seed(9), fans=(30, 20))

    assert torch.equal(torch.get_rng_state(), state_before)


def test_get_initialization_case_insensitive():
    assert get_initialization("Kaiming_Uniform") is INITIALIZATIONS["kaiming_uniform"]
    assert get_initialization("PYTORCH") is INITIALIZATIONS["pytorch"]


def test_get_initialization_unknown_name():
    with pytest.raises(ValueError, match="Unknown initialisation 'orthogonal'") as error:
        get_initialization("orthogonal")

    for name in INITIALIZATIONS:
        assert name in str(error.value)


# --- build_mlp --------------------------------------------------------------------


def test_build_mlp_layers():
    network = build_mlp(10, [32, 16], activation="silu")

    linear_shapes = [(layer.in_features, layer.out_features) for layer in network if isinstance(layer, nn.Linear)]

    assert len(network) == 5
    assert linear_shapes == [(10, 32), (32, 16), (16, 1)]
    assert isinstance(network[1], nn.SiLU)
    assert isinstance(network[3], nn.SiLU)
    assert network(torch.zeros(7, 10)).shape == (7, 1)


def test_build_mlp_default_stanh():
    network = build_mlp(4, [8])

    assert isinstance(network[1], STanh)


def test_build_mlp_without_output_layer():
    network = build_mlp(10, [32, 16], activation="relu", n_outputs=None)

    assert len(network) == 4
    assert isinstance(network[-1], nn.ReLU)
    assert network(torch.zeros(3, 10)).shape == (3, 16)


@pytest.mark.parametrize(("n_inputs", "hidden_widths"), [(10, [32, 0]), (0, [8]), (10, [-4])])
def test_build_mlp_rejects_small_width(n_inputs, hidden_widths):
    with pytest.raises(ValueError, match="width of at least 1"):
        build_mlp(n_inputs, hidden_widths)


def test_build_mlp_rejects_zero_outputs():
    with pytest.raises(ValueError, match="at least 1"):
        build_mlp(10, [16], n_outputs=0)


def test_build_mlp_unknown_activation():
    with pytest.raises(ValueError, match="Unknown activation"):
        build_mlp(10, [16], activation="swish")
