"""Tests of the NEAR score of whole models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layersize.nets import build_mlp
from layersize.score import NearScore, near_score


class MyTanh(nn.Module):
    def forward(self, x):
        return 1.7 * torch.tanh(x)


class MixedNet(nn.Module):
    """A user-defined activation module and a functional ReLU."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(6, 12)
        self.act = MyTanh()
        self.second = nn.Linear(12, 8)

    def forward(self, x):
        return F.relu(self.second(self.act(self.first(x))))


class BranchingNet(nn.Module):
    """A forward pass with data-dependent control flow, which torch.fx cannot trace."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(6, 12)
        self.act = nn.Tanh()
        self.second = nn.Linear(12, 4)

    def forward(self, x):
        hidden = self.first(x)
        if hidden.abs().sum() > 1e9:
            hidden = hidden * 0
        return self.second(torch.relu(self.act(hidden)))


def small_cnn() -> nn.Module:
    # 64 channels on 4x4 maps: 16 positions per sample, fewer than half the channels.
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 5),
    )


def _layers(result: NearScore) -> dict[str, object]:
    return {layer.name: layer for layer in result.layers}


def test_custom_and_functional_activations_counted():
    result = near_score(MixedNet(), torch.randn(40, 6), repetitions=2)
    layers = _layers(result)
    assert list(layers) == ["first", "act", "second", "relu()"]
    assert layers["act"].kind == "activation"
    assert layers["relu()"].kind == "activation"
    assert layers["relu()"].width == 8


def test_conv_inplace_relu_pre_and_post_differ():
    result = near_score(small_cnn(), torch.randn(30, 3, 4, 4), repetitions=4)
    layers = _layers(result)
    pre, post = layers["0"], layers["1"]
    assert pre.kind == "weights"
    assert post.kind == "activation"
    assert abs(pre.mean - post.mean) > 1.0


def test_cnn_blocks_are_full_width():
    result = near_score(small_cnn(), torch.randn(30, 3, 4, 4), repetitions=2)
    layers = _layers(result)
    for name in ("0", "1", "2"):
        assert layers[name].width == 64
        assert layers[name].rows == 64
        assert layers[name].complete
    # The Linear layer of width 5 needs 5 samples, the 64 x 64 blocks only 4.
    assert result.n_samples == 5


def test_zero_weights_score_zero():
    def zero_init(model, generator):
        for parameter in model.parameters():
            parameter.data.zero_()

    model = build_mlp(5, [8, 8], activation="relu")
    result = near_score(model, torch.randn(30, 5), repetitions=3, init=zero_init)
    assert result.mean == 0.0
    assert not np.isnan(result.totals).any()
    assert all(layer.mean == 0.0 for layer in result.layers)


def test_identity_network_exact_score():
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU())

    def identity_init(model, generator):
        model[0].weight.data.copy_(torch.eye(4))

    result = near_score(model, torch.eye(4), repetitions=3, init=identity_init)
    assert result.totals.tolist() == pytest.approx([8.0, 8.0, 8.0])
    assert result.stderr == pytest.approx(0.0)


def test_model_and_global_state_unchanged():
    model = small_cnn()
    model.train()
    model[2].eval()
    calls = []
    handle = model[0].register_forward_hook(lambda module, args, output: calls.append(1))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    modes = [module.training for module in model.modules()]
    hooks = [dict(module._forward_hooks) for module in model.modules()]
    pre_hooks = [dict(module._forward_pre_hooks) for module in model.modules()]
    inputs = torch.randn(20, 3, 4, 4)
    rng_state = torch.get_rng_state()

    near_score(model, inputs, repetitions=3)

    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert [module.training for module in model.modules()] == modes
    assert [dict(module._forward_hooks) for module in model.modules()] == hooks
    assert [dict(module._forward_pre_hooks) for module in model.modules()] == pre_hooks
    assert torch.equal(torch.get_rng_state(), rng_state)
    handle.remove()


def test_global_rng_unchanged_with_init_name():
    model, inputs = build_mlp(5, [8]), torch.randn(20, 5)
    rng_state = torch.get_rng_state()
    near_score(model, inputs, repetitions=2, init="stanh")
    assert torch.equal(torch.get_rng_state(), rng_state)


def test_tuple_outputs_scored():
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.attention = nn.MultiheadAttention(6, 2, batch_first=True)
            self.head = nn.Linear(6, 3)

        def forward(self, x):
            hidden, _ = self.lstm(x)
            attended, _ = self.attention(hidden, hidden, hidden)
            return self.head(attended[:, -1])

    select = lambda name, module: name in ("lstm", "attention", "head")  # noqa: E731
    result = near_score(Recurrent(), torch.randn(20, 5, 4), repetitions=2, select=select)
    layers = _layers(result)
    assert layers["lstm"].width == 6
    assert layers["attention"].width == 6
    assert layers["attention"].rows == 6
    assert layers["head"].width == 3


def test_too_few_samples_raise_naming_layer():
    model = build_mlp(5, [50, 20], activation="silu")
    with pytest.raises(ValueError, match=r"'0' has width 50 and needs 50 samples.*only 30 samples"):
        near_score(model, torch.randn(30, 5), repetitions=2)


def test_too_few_samples_one_sample_singular():
    model = build_mlp(5, [4], activation="silu")
    with pytest.raises(ValueError, match=r"inputs contain only 1 sample \(1 other layer needs more than 1 too\)\. Pass at least 4"):
        near_score(model, torch.randn(1, 5), repetitions=1)


def test_too_few_samples_conv_message():
    with pytest.raises(ValueError, match=r"64 channels on 16 positions.*needs 4 samples.*only 3"):
        near_score(small_cnn()[:3], torch.randn(3, 3, 4, 4), repetitions=1)


def test_too_few_samples_warn_marks_layers():
    model = build_mlp(5, [50, 20], activation="silu")
    result = near_score(model, torch.randn(30, 5), repetitions=2, incomplete="warn")
    layers = _layers(result)
    assert not layers["0"].complete
    assert layers["0"].rows == 30
    assert layers["2"].complete
    assert any("fewer rows than their width" in note for note in result.notes)
    assert "only 30 rows" in str(result)


def test_same_seed_same_score():
    model, inputs = MixedNet(), torch.randn(40, 6)
    first = near_score(model, inputs, repetitions=3, seed=7)
    second = near_score(model, inputs, repetitions=3, seed=7)
    other = near_score(model, inputs, repetitions=3, seed=8)
    assert np.array_equal(first.totals, second.totals)
    assert not np.array_equal(first.totals, other.totals)


def test_repetitions_differ():
    result = near_score(MixedNet(), torch.randn(40, 6), repetitions=4)
    assert len(set(result.totals.tolist())) == 4


def test_custom_init_called_every_repetition():
    model = build_mlp(5, [8], activation="tanh")
    seen = []

    def init(copy, generator):
        seen.append((copy, generator))
        for parameter in copy.parameters():
            parameter.data.normal_(generator=generator)

    near_score(model, torch.randn(20, 5), repetitions=5, init=init)
    assert len(seen) == 5
    assert all(copy is not model for copy, _ in seen)
    assert all(isinstance(generator, torch.Generator) for _, generator in seen)


def test_forward_error_leaves_no_hooks():
    class Failing(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(3, 3)

        def forward(self, x):
            self.layer(x)
            raise RuntimeError("forward failed on purpose")

    model = Failing()
    with pytest.raises(RuntimeError, match="on purpose"):
        near_score(model, torch.randn(10, 3), repetitions=1)
    assert all(len(module._forward_hooks) == 0 for module in model.modules())


def test_untraceable_model_scored_with_hooks():
    result = near_score(BranchingNet(), torch.randn(30, 6), repetitions=2)
    assert result.capture == "hooks"
    assert [layer.name for layer in result.layers] == ["first", "act", "second"]
    assert any("not counted" in note for note in result.notes)
    assert result.mean > 0


def test_stderr_of_totals():
    result = near_score(MixedNet(), torch.randn(40, 6), repetitions=5)
    expected = result.totals.std(ddof=1) / math.sqrt(5)
    assert result.stderr == pytest.approx(expected)
    assert result.mean == pytest.approx(result.totals.mean())
    single = near_score(MixedNet(), torch.randn(40, 6), repetitions=1)
    assert single.stderr == 0.0


def test_layer_means_sum_to_total():
    result = near_score(MixedNet(), torch.randn(40, 6), repetitions=3)
    assert sum(layer.mean for layer in result.layers) == pytest.approx(result.mean)


def test_numpy_inputs_and_dict_output():
    inputs = np.random.default_rng(0).normal(size=(30, 6))
    result = near_score(MixedNet(), inputs, repetitions=2)
    document = json.loads(json.dumps(result.to_dict()))
    assert document["repetitions"] == 2
    assert [layer["name"] for layer in document["layers"]] == ["first", "act", "second", "relu()"]
    assert "relu()" in str(result)


def test_invalid_arguments_raise():
    model, inputs = MixedNet(), torch.randn(20, 6)
    with pytest.raises(ValueError, match="repetitions"):
        near_score(model, inputs, repetitions=0)
    with pytest.raises(ValueError, match="'xavier'"):
        near_score(model, inputs, init="xavier")
    with pytest.raises(ValueError, match="NaN"):
        near_score(model, torch.full((20, 6), float("nan")))
    with pytest.raises(ValueError, match="No layer output"):
        near_score(nn.Sequential(nn.Flatten()), inputs)


def test_batchnorm_uses_batch_statistics():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh())
    model.eval()
    # Running statistics that saturate tanh at -1 in every entry (rank 1).
    model[1].running_mean.fill_(1e4)
    model[1].running_var.fill_(1e-4)
    result = near_score(model, torch.randn(30, 4), repetitions=2)
    assert _layers(result)["2"].mean > 2.5
    assert model[1].running_mean[0] == 1e4


def test_dropout_off():
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.9), nn.Tanh())
    select = lambda name, module: name in ("0", "1")  # noqa: E731
    result = near_score(model, torch.randn(30, 4), repetitions=3, select=select)
    layers = _layers(result)
    assert np.array_equal(layers["0"].ranks, layers["1"].ranks)


def test_shared_module_names_draw_same_weights():
    # The second network has two more layers between the same first and last layers.
    short = nn.Sequential()
    short.add_module("first", nn.Linear(6, 12))
    short.add_module("act", nn.Tanh())
    short.add_module("last", nn.Linear(12, 5))
    long = nn.Sequential()
    long.add_module("first", nn.Linear(6, 12))
    long.add_module("act", nn.Tanh())
    long.add_module("middle", nn.Linear(12, 12))
    long.add_module("act2", nn.Tanh())
    long.add_module("last", nn.Linear(12, 5))
    inputs = torch.randn(30, 6)
    short_layers = _layers(near_score(short, inputs, repetitions=3, seed=4))
    long_layers = _layers(near_score(long, inputs, repetitions=3, seed=4))
    assert np.array_equal(short_layers["first"].ranks, long_layers["first"].ranks)
    assert np.array_equal(short_layers["act"].ranks, long_layers["act"].ranks)
    assert not np.array_equal(short_layers["last"].ranks, long_layers["last"].ranks)


def test_trace_false_captures_modules_only():
    inputs = torch.randn(30, 6)
    hooks = near_score(MixedNet(), inputs, repetitions=2, trace=False)
    assert hooks.capture == "hooks"
    assert [layer.name for layer in hooks.layers] == ["first", "act", "second"]

    images = torch.randn(30, 3, 4, 4)
    traced = near_score(small_cnn(), images, repetitions=2, seed=1)
    untraced = near_score(small_cnn(), images, repetitions=2, seed=1, trace=False)
    assert traced.capture == "fx"
    assert np.array_equal(traced.totals, untraced.totals)


def test_blank_corner_gets_note():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 1, 12, 12, generator=generator)
    blank_top = images.clone()
    blank_top[:, :, :4] = 0.0  # the first rows of every image are blank, as on digit borders
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.Tanh(), nn.Flatten(), nn.Linear(6 * 10 * 10, 5))

    blank = near_score(model, blank_top, repetitions=3, seed=0)
    textured = near_score(model, images, repetitions=3, seed=0)

    conv = next(layer for layer in blank.layers if layer.name == "0")
    assert np.allclose(conv.ranks, 1.0)
    assert any(note.startswith("'0': in 3 of 3 repetitions all rows") for note in blank.notes)
    assert not any("all rows of the square block were equal" in note for note in textured.notes)
