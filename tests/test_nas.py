"""Tests of the NAS-Bench-201 cells, networks and benchmark order."""

from __future__ import annotations

import csv

import pytest
import torch
from shared_data import SHARED_DATA

from layersize.nas import (
    N_ARCHITECTURES,
    OPERATIONS,
    all_architectures,
    arch_index,
    build_network,
    count_parameters,
    is_disconnected,
    parse_arch,
)

ACCURACY_CSV = SHARED_DATA / "nats_bench_tss_accuracy.csv"

# Rows of the NATS-Bench-TSS accuracy table, so that these tests run without it.
BENCHMARK_ROWS = {
    0: "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    1: "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    3: "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|",
    284: "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|",
}


@pytest.mark.parametrize(
    ("index", "expected"),
    [(0, 129_306), (284, 101_306)],
)
def test_parameter_count_matches_benchmark(index, expected):
    network = build_network(BENCHMARK_ROWS[index], num_classes=10)
    assert count_parameters(network) == expected


def test_parameter_count_scales_with_classes():
    ten = count_parameters(build_network(BENCHMARK_ROWS[284], num_classes=10))
    hundred = count_parameters(build_network(BENCHMARK_ROWS[284], num_classes=100))
    # The classifier is Linear(64, classes): 65 parameters per class.
    assert hundred - ten == 90 * 65


def test_network_output_shape_and_tracing():
    network = build_network(BENCHMARK_ROWS[1]).eval()
    images = torch.randn(2, 3, 32, 32)
    traced = torch.fx.symbolic_trace(network)
    with torch.no_grad():
        logits = network(images)
        traced_logits = traced(images)
    assert logits.shape == (2, 10)
    torch.testing.assert_close(traced_logits, logits)


def test_parse_round_trip():
    for arch in BENCHMARK_ROWS.values():
        assert str(parse_arch(arch)) == arch


def test_parse_accepts_any_entry_order():
    reordered = "|nor_conv_3x3~0|+|avg_pool_3x3~1|nor_conv_3x3~0|+|skip_connect~2|skip_connect~0|nor_conv_3x3~1|"
    assert str(parse_arch(reordered)) == BENCHMARK_ROWS[1]


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("|nor_conv_3x3~0|+|none~0|none~1|", "3 node groups"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv_5x5'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs"),
        ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "lists source 0 twice"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "cannot take input from node 2"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "'operation~source'"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end with '|'"),
    ],
)
def test_parse_rejects_malformed(arch, message):
    with pytest.raises(ValueError, match=message.replace("|", r"\|")):
        parse_arch(arch)


def test_parse_rejects_non_string():
    with pytest.raises(TypeError, match="must be a string"):
        parse_arch(17)


def test_disconnected_count():
    archs = all_architectures("product")
    assert len(archs) == N_ARCHITECTURES == len(OPERATIONS) ** 6
    assert sum(is_disconnected(arch) for arch in archs) == 341


def test_disconnected_cases():
    assert is_disconnected("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    # Node 1 is reached but the output takes nothing from it.
    assert is_disconnected("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert not is_disconnected("|none~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|")
    assert not is_disconnected(BENCHMARK_ROWS[3])


def test_disconnected_network_outputs_zero_cells():
    network = build_network("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|").eval()
    with torch.no_grad():
        cell_output = network.cells[0](torch.randn(2, 16, 32, 32))
    assert torch.count_nonzero(cell_output) == 0


def test_dead_end_operations_not_run():
    # Nodes 1 and 2 feed nothing that reaches node 3, which takes node 0 through a skip.
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"
    network = build_network(arch).eval()
    cell = network.cells[0]
    calls = []
    for key, operation in cell.edge_operations.items():
        operation.register_forward_hook(lambda module, args, output, key=key: calls.append(key))
    inputs = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        output = cell(inputs)
    assert calls == ["node3_from0"]
    torch.testing.assert_close(output, inputs)
    # The dead-end convolutions keep their parameters: 3x3 (2304 + 32), 1x1 (256 + 32), 3x3 again.
    assert count_parameters(cell) == 2 * (16 * 16 * 9 + 32) + 16 * 16 + 32


def test_benchmark_order_known_rows():
    archs = all_architectures()
    assert len(archs) == N_ARCHITECTURES
    assert len(set(archs)) == N_ARCHITECTURES
    for index, arch in BENCHMARK_ROWS.items():
        assert archs[index] == arch
        assert arch_index(arch) == index


@pytest.mark.skipif(not ACCURACY_CSV.is_file(), reason=f"benchmark accuracy table not found at {ACCURACY_CSV}")
def test_benchmark_order_matches_table():
    with ACCURACY_CSV.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["index"]) for row in rows] == list(range(N_ARCHITECTURES))
    assert [row["arch"] for row in rows] == all_architectures()


def test_build_network_rejects_bad_sizes():
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        build_network(BENCHMARK_ROWS[0], channels=0)
