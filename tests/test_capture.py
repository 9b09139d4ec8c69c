"""Tests of layer-output capture and of square blocks from layer outputs."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layersize.capture import (
    OutputCapture,
    feature_dim_of,
    first_tensor,
    is_user_activation,
    output_rows,
    square_block,
)
from layersize.nets import STanh


class MyTanh(nn.Module):
    def forward(self, x):
        return 1.7 * torch.tanh(x)


class MyFlatten(nn.Module):
    def forward(self, x):
        return x.flatten(1)


class CustomActivationNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(6, 10)
        self.act = MyTanh()
        self.second = nn.Linear(10, 4)

    def forward(self, x):
        return F.relu(self.second(self.act(self.first(x))))


class BranchingNet(nn.Module):
    """A forward pass with data-dependent control flow, which torch.fx cannot trace."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(6, 10)
        self.act = nn.Tanh()
        self.second = nn.Linear(10, 4)

    def forward(self, x):
        hidden = self.first(x)
        if hidden.sum() > 1e9:
            hidden = hidden * 0
        return self.second(torch.relu(self.act(hidden)))


class FailingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(6, 10)
        self.second = nn.Linear(10, 4)

    def forward(self, x):
        hidden = self.first(x)
        raise RuntimeError("forward failed on purpose")


def _hook_counts(model: nn.Module) -> list[int]:
    return [len(module._forward_hooks) for module in model.modules()]


def _names(records) -> list[str]:
    return [point.name for point, _ in records]


# --- selection ---------------------------------------------------------------------------


def test_custom_activation_module_counted():
    records = OutputCapture(CustomActivationNet()).run(torch.randn(5, 6))
    kinds = {point.name: point.kind for point, _ in records}
    assert kinds["act"] == "activation"
    assert kinds["first"] == "weights"


def test_functional_relu_counted():
    capture = OutputCapture(CustomActivationNet())
    records = capture.run(torch.randn(5, 6))
    assert capture.mode == "fx"
    assert _names(records) == ["first", "act", "second", "relu()"]
    relu_output = records[-1][1]
    assert relu_output.shape == (5, 4)
    assert bool((relu_output >= 0).all())


def test_stanh_from_nets_is_user_activation():
    assert is_user_activation(STanh())
    assert not is_user_activation(nn.ReLU())
    assert not is_user_activation(nn.Linear(2, 2))


def test_shape_changing_user_module_not_counted():
    model = nn.Sequential(nn.Conv2d(1, 3, 3), MyFlatten(), nn.Linear(3 * 4 * 4, 5))
    records = OutputCapture(model).run(torch.randn(2, 1, 6, 6))
    assert _names(records) == ["0", "2"]


def test_select_weights_and_activations():
    model = CustomActivationNet()
    weights = OutputCapture(model, select="weights").run(torch.randn(5, 6))
    activations = OutputCapture(model, select="activations").run(torch.randn(5, 6))
    assert _names(weights) == ["first", "second"]
    assert _names(activations) == ["act", "relu()"]


def test_select_callable():
    chosen = []

    def select(name, module):
        chosen.append((name, module))
        return name in ("second", "relu()")

    records = OutputCapture(CustomActivationNet(), select=select).run(torch.randn(5, 6))
    assert _names(records) == ["second", "relu()"]
    assert ("relu()", None) in chosen


def test_select_invalid_name_raises():
    with pytest.raises(ValueError, match="'everything'"):
        OutputCapture(CustomActivationNet(), select="everything")


def test_repeated_module_calls_labelled():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Linear(4, 4)
            self.second = nn.Linear(4, 4)
            self.act = nn.SiLU()

        def forward(self, x):
            return self.act(self.second(self.act(self.first(x))))

    records = OutputCapture(Shared()).run(torch.randn(3, 4))
    assert _names(records) == ["first", "act", "second", "act#2"]


def test_single_module_model_captured():
    records = OutputCapture(nn.Linear(3, 5)).run(torch.randn(4, 3))
    assert _names(records) == ["Linear"]


# --- capture mechanics -------------------------------------------------------------------


def test_inplace_relu_keeps_conv_output():
    model = nn.Sequential(nn.Conv2d(2, 8, 3), nn.ReLU(inplace=True))
    records = OutputCapture(model).run(torch.randn(4, 2, 6, 6))
    conv_output, relu_output = records[0][1], records[1][1]
    assert bool((conv_output < 0).any())
    assert torch.equal(relu_output, conv_output.clamp_min(0))


def test_inplace_functional_relu_keeps_conv_output():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 8, 3)

        def forward(self, x):
            return F.relu(self.conv(x), inplace=True)

    records = OutputCapture(Net()).run(torch.randn(4, 2, 6, 6))
    assert _names(records) == ["conv", "relu()"]
    conv_output, relu_output = records[0][1], records[1][1]
    assert bool((conv_output < 0).any())
    assert torch.equal(relu_output, conv_output.clamp_min(0))


def test_tuple_output_takes_first_tensor():
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            output, _ = self.attention(x, x, x)
            return output

    records = OutputCapture(Attention()).run(torch.randn(3, 5, 8))
    assert _names(records) == ["attention"]
    assert records[0][1].shape == (3, 5, 8)


def test_first_tensor_of_nested_values():
    tensor = torch.ones(2)
    assert first_tensor(tensor) is tensor
    assert first_tensor((None, tensor, torch.zeros(1))) is tensor
    assert first_tensor({"output": tensor}) is None


def test_untraceable_model_falls_back_to_hooks(caplog):
    with caplog.at_level(logging.WARNING, logger="layersize.capture"):
        capture = OutputCapture(BranchingNet())
    records = capture.run(torch.randn(5, 6))
    assert capture.mode == "hooks"
    assert _names(records) == ["first", "act", "second"]
    assert "not counted" in caplog.text
    assert any("not counted" in note for note in capture.notes)


def test_forward_error_removes_hooks():
    model = FailingNet()
    capture = OutputCapture(model, trace=False)
    with pytest.raises(RuntimeError, match="on purpose"):
        capture.run(torch.randn(3, 6))
    assert _hook_counts(model) == [0] * len(_hook_counts(model))


def test_traced_forward_error_removes_hooks():
    model = FailingNet()
    capture = OutputCapture(model)
    with pytest.raises(RuntimeError, match="on purpose"):
        capture.run(torch.randn(3, 6))
    assert _hook_counts(model) == [0] * len(_hook_counts(model))


def test_user_hooks_kept_after_run():
    model = CustomActivationNet()
    calls = []
    handle = model.first.register_forward_hook(lambda module, args, output: calls.append(1))
    OutputCapture(model).run(torch.randn(2, 6))
    assert len(model.first._forward_hooks) == 1
    assert len(calls) == 1
    handle.remove()


def test_hooks_attached_across_runs():
    model = CustomActivationNet()
    capture = OutputCapture(model)
    with capture.hooks_attached():
        attached = _hook_counts(model)
        first = capture.run(torch.randn(2, 6))
        second = capture.run(torch.randn(2, 6))
        assert _hook_counts(model) == attached
    assert sum(attached) == 3  # first, act and second; relu() is recorded by the traced graph
    assert _names(first) == _names(second) == ["first", "act", "second", "relu()"]
    assert _hook_counts(model) == [0] * len(attached)


def test_hooks_attached_removed_after_error():
    model = FailingNet()
    capture = OutputCapture(model, trace=False)
    with pytest.raises(RuntimeError, match="on purpose"), capture.hooks_attached():
        capture.run(torch.randn(3, 6))
    assert _hook_counts(model) == [0] * len(_hook_counts(model))


def test_process_none_drops_output():
    records = OutputCapture(CustomActivationNet()).run(
        torch.randn(2, 6), process=lambda point, output: None if point.kind == "weights" else output.clone()
    )
    assert _names(records) == ["act", "relu()"]


# --- layouts and square blocks -----------------------------------------------------------


def test_feature_dim_of_layouts():
    assert feature_dim_of(nn.Linear(3, 4), (5, 4)) == 1
    assert feature_dim_of(nn.Conv2d(3, 4, 1), (5, 4, 6, 6)) == 1
    assert feature_dim_of(nn.Linear(3, 4), (5, 7, 4)) == 2
    assert feature_dim_of(nn.ReLU(), (5, 7, 4), recent={(5, 7, 4): 2}) == 2
    assert feature_dim_of(nn.ReLU(), (5, 7, 4)) == 1


def test_output_rows_sample_major():
    output = torch.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    rows = output_rows(output)
    assert rows.shape == (8, 3)
    assert rows[0].tolist() == output[0, :, 0, 0].tolist()
    assert rows[3].tolist() == output[0, :, 1, 1].tolist()
    assert rows[4].tolist() == output[1, :, 0, 0].tolist()


def test_square_block_dense_first_rows():
    output = torch.randn(50, 20)
    block = square_block(output, torch.Generator().manual_seed(0))
    assert torch.equal(block, output[:20])


def test_square_block_wide_conv_full():
    # 64 channels on 4x4 maps: 16 positions per sample, so a block spans 4 samples.
    output = torch.randn(10, 64, 4, 4)
    block = square_block(output, torch.Generator().manual_seed(0))
    assert block.shape == (64, 64)


def test_square_block_starts_at_sample_boundary():
    n_samples, channels = 10, 64
    # Every entry is its sample index * 100 + position.
    positions = torch.arange(16).reshape(1, 1, 4, 4)
    samples = torch.arange(n_samples).reshape(-1, 1, 1, 1) * 100
    output = (samples + positions).expand(n_samples, channels, 4, 4).float()
    starts = set()
    generator = torch.Generator().manual_seed(1)
    for _ in range(40):
        block = square_block(output, generator)
        first = int(block[0, 0])
        start_sample, start_position = divmod(first, 100)
        assert start_position == 0
        assert start_sample <= n_samples - 4
        expected = [(start_sample + row // 16) * 100 + row % 16 for row in range(channels)]
        assert block[:, 0].long().tolist() == expected
        starts.add(start_sample)
    assert len(starts) > 1


def test_square_block_conv1d_and_conv3d():
    generator = torch.Generator().manual_seed(0)
    assert square_block(torch.randn(6, 12, 5), generator).shape == (12, 12)
    assert square_block(torch.randn(6, 40, 2, 2, 2), generator).shape == (40, 40)


def test_square_block_too_few_rows():
    block = square_block(torch.randn(2, 64, 2, 2), torch.Generator().manual_seed(0))
    assert block.shape == (8, 64)


def test_square_block_is_a_copy():
    output = torch.randn(30, 10)
    block = square_block(output)
    output.zero_()
    assert bool(block.abs().sum() > 0)


def test_square_block_features_last_with_rows_per_entry():
    # (N * T, width) rows from reshaping (N, T, width): 3 rows per sample.
    output = torch.randn(8 * 3, 6)
    block = square_block(output, torch.Generator().manual_seed(0), n_samples=8)
    assert block.shape == (6, 6)
    start = int(torch.nonzero((output == block[0]).all(dim=1))[0])
    assert start % 3 == 0


def test_square_block_rejects_mismatched_samples():
    with pytest.raises(ValueError, match="n_samples=4"):
        square_block(torch.randn(10, 3), n_samples=4)
