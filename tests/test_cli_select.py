"""Tests of the near-select command."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from layersize.cli.select import main

PAIR_OPTIONS = ["--activations", "relu,tanh", "--inits", "kaiming_uniform,uniform"]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    # 300 random 8x8 greyscale images, without labels.
    np.save(tmp_path / "images.npy", rng.integers(0, 256, size=(300, 8, 8), dtype=np.uint8))
    # The same kind of images with labels of 4 classes.
    np.savez(
        tmp_path / "labelled.npz",
        images=rng.integers(0, 256, size=(300, 8, 8), dtype=np.uint8),
        labels=rng.integers(0, 4, size=300),
    )
    # A CSV file with a non-numeric cell in its second row.
    (tmp_path / "bad.csv").write_text("1,2,3,4,0\n1,2,x,4,1\n")
    return tmp_path


def _run(*arguments):
    return CliRunner().invoke(main, ["--no-progress", *arguments])


def test_cli_ranks_and_writes_outputs(workspace):
    result = _run("--data", "images.npy", "--hidden", "16,16", "--repetitions", "2", *PAIR_OPTIONS)
    assert result.exit_code == 0, result.output
    assert "64-16-16-10 MLP" in result.stdout
    for name in ("relu", "tanh", "kaiming_uniform", "uniform"):
        assert name in result.stdout

    document = json.loads((workspace / "near-select-out" / "selection.json").read_text())
    assert document["n_outputs"] == 10
    assert document["n_images"] == 300
    assert document["hidden_widths"] == [16, 16]
    pairs = [(pair["activation"], pair["init"]) for pair in document["pairs"]]
    assert sorted(pairs) == sorted((a, i) for a in ("relu", "tanh") for i in ("kaiming_uniform", "uniform"))
    assert [pair["init"] for pair in document["pairs"][-2:]] == ["uniform", "uniform"]

    png = (workspace / "near-select-out" / "selection.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reads_idx_gzip(workspace):
    images = np.random.default_rng(1).integers(0, 256, size=(120, 6, 6), dtype=np.uint8)
    header = bytes([0, 0, 0x08, 3]) + np.array(images.shape, dtype=">u4").tobytes()
    (workspace / "digits-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))

    result = _run(
        "--data", "digits-idx3-ubyte.gz", "--hidden", "12", "--repetitions", "2", "--activations", "relu",
        "--inits", "xavier_uniform", "--out", "idx-out",
    )

    assert result.exit_code == 0, result.output
    assert "36-12-10 MLP" in result.stdout
    document = json.loads((workspace / "idx-out" / "selection.json").read_text())
    assert document["n_images"] == 120


def test_cli_reads_csv_label_last(workspace):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, size=(60, 16))
    labels = np.arange(60) % 3
    rows = np.column_stack([pixels, labels])
    (workspace / "digits.csv").write_text("\n".join(",".join(map(str, row)) for row in rows) + "\n")

    result = _run(
        "--data", "digits.csv", "--label-column", "last", "--hidden", "8", "--repetitions", "2",
        "--activations", "tanh", "--inits", "stanh", "--out", "csv-out",
    )

    assert result.exit_code == 0, result.output
    assert "16-8-3 MLP" in result.stdout


def test_cli_outputs_default_to_label_count(workspace):
    result = _run(
        "--data", "labelled.npz", "--hidden", "8", "--repetitions", "1", "--activations", "silu",
        "--inits", "stanh", "--out", "labelled-out",
    )
    assert result.exit_code == 0, result.output
    document = json.loads((workspace / "labelled-out" / "selection.json").read_text())
    assert document["n_outputs"] == 4


def test_cli_outputs_option_overrides(workspace):
    result = _run(
        "--data", "labelled.npz", "--hidden", "8", "--outputs", "7", "--repetitions", "1",
        "--activations", "silu", "--inits", "stanh",
    )
    assert result.exit_code == 0, result.output
    assert "64-8-7 MLP" in result.stdout


def test_cli_same_seed_same_output(workspace):
    arguments = ["--data", "images.npy", "--hidden", "8,8", "--repetitions", "2", "--seed", "3", *PAIR_OPTIONS]
    first = _run(*arguments)
    second = _run(*arguments)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--data", "missing.npy", "--hidden", "16"], "does not exist"),
        (["--data", "images.npy", "--hidden", "200,abc"], "'200,abc' is not a list of layer widths"),
        (["--data", "images.npy", "--hidden", "16,0"], "not a list of layer widths"),
        (["--data", "images.npy", "--hidden", "16", "--activations", "relu,gelu"], "Unknown activation 'gelu'"),
        (["--data", "images.npy", "--hidden", "16", "--inits", "normal"], "Unknown initialisation 'normal'"),
        (["--data", "images.npy", "--hidden", "400"], "needs 400 images"),
        (["--data", "images.npy", "--hidden", "16", "--format", "csv"], "Reading images.npy failed"),
        (["--data", "bad.csv", "--hidden", "4"], "cannot read 'x' as a number"),
    ],
)
def test_cli_bad_input_exits_2_without_output(workspace, arguments, message):
    result = _run(*arguments)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (workspace / "near-select-out").exists()


def test_cli_help_explains_score():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "effective rank" in result.output
    assert "--hidden" in result.output
