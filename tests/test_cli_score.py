"""Tests of the near-score command."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from layersize.cli.score import main

FACTORIES = textwrap.dedent(
    """
    import torch
    from torch import nn


    def mlp():
        return nn.Sequential(nn.Linear(6, 10), nn.SiLU(), nn.Linear(10, 3))


    def cnn():
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4)
        )


    def not_a_model():
        return 42


    def broken():
        raise RuntimeError("factory failed on purpose")
    """
)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    module_name = f"near_cli_factories_{tmp_path.name}"
    (tmp_path / f"{module_name}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "inputs.npy", np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32))
    return tmp_path, module_name


def _run(*arguments):
    return CliRunner().invoke(main, list(arguments))


def test_cli_scores_npy_and_writes_json(workspace):
    folder, module = workspace
    result = _run(
        "--model", f"{module}:mlp", "--data", "inputs.npy", "--repetitions", "3", "--json", "out/score.json"
    )
    assert result.exit_code == 0, result.output
    assert "NEAR score" in result.output
    assert "total" in result.output
    document = json.loads((folder / "out" / "score.json").read_text())
    assert document["repetitions"] == 3
    assert document["model"] == f"{module}:mlp"
    assert [layer["name"] for layer in document["layers"]] == ["0", "1", "2"]
    assert len(document["totals"]) == 3


def test_cli_same_seed_same_output(workspace):
    _, module = workspace
    arguments = ["--model", f"{module}:mlp", "--data", "inputs.npy", "--repetitions", "2", "--seed", "5"]
    assert _run(*arguments).output == _run(*arguments).output


def test_cli_npz_and_pt_inputs(workspace):
    folder, module = workspace
    values = np.load(folder / "inputs.npy")
    np.savez(folder / "inputs.npz", labels=np.zeros(40), X=values)
    torch.save(torch.from_numpy(values), folder / "inputs.pt")
    outputs = []
    for name in ("inputs.npy", "inputs.npz", "inputs.pt"):
        result = _run("--model", f"{module}:mlp", "--data", name, "--repetitions", "2")
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1] == outputs[2]


def test_cli_input_shape_for_cnn(workspace):
    folder, module = workspace
    np.save(folder / "flat.npy", np.random.default_rng(1).normal(size=(12, 16)).astype(np.float32))
    result = _run("--model", f"{module}:cnn", "--data", "flat.npy", "--input-shape", "1,4,4", "--repetitions", "2")
    assert result.exit_code == 0, result.output
    assert "weights" in result.output


def test_cli_flat_rows_into_cnn_suggest_input_shape(workspace):
    folder, module = workspace
    np.save(folder / "flat.npy", np.random.default_rng(1).normal(size=(12, 16)).astype(np.float32))

    result = _run("--model", f"{module}:cnn", "--data", "flat.npy", "--repetitions", "2")

    assert result.exit_code == 1
    assert "--input-shape" in result.output
    assert "Traceback" not in result.output


def test_cli_input_shape_mismatch(workspace):
    _, module = workspace
    result = _run("--model", f"{module}:mlp", "--data", "inputs.npy", "--input-shape", "1,4,4")
    assert result.exit_code == 2
    assert "6 values" in result.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon_here", "package.module:factory"),
        ("module_that_does_not_exist_xyz:build", "Importing module"),
        ("{module}:missing", "has no attribute"),
        ("{module}:not_a_model", "returned an object of type int"),
        ("{module}:broken", "factory failed on purpose"),
    ],
)
def test_cli_bad_factory_is_usage_error(workspace, spec, message):
    _, module = workspace
    result = _run("--model", spec.format(module=module), "--data", "inputs.npy")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_too_few_samples_fails_cleanly(workspace):
    folder, module = workspace
    np.save(folder / "few.npy", np.zeros((4, 6), dtype=np.float32))
    result = _run("--model", f"{module}:mlp", "--data", "few.npy")
    assert result.exit_code == 1
    assert "needs 10 samples" in result.output
    assert "Traceback" not in result.output


def test_cli_image_csv_through_load_images(workspace):
    pytest.importorskip("layersize.images")
    folder, module = workspace
    rng = np.random.default_rng(2)
    header = "label," + ",".join(f"p{index}" for index in range(16))
    rows = [",".join([str(index % 3), *map(str, rng.integers(0, 256, 16))]) for index in range(30)]
    (folder / "images.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    result = _run(
        "--model", f"{module}:cnn", "--data", "images.csv", "--input-shape", "1,4,4", "--repetitions", "2"
    )
    assert result.exit_code == 0, result.output
    assert "NEAR score" in result.output


def test_cli_format_reads_renamed_csv(workspace):
    folder, module = workspace
    rng = np.random.default_rng(3)
    header = "label," + ",".join(f"p{index}" for index in range(16))
    rows = [",".join([str(index % 3), *map(str, rng.integers(0, 256, 16))]) for index in range(30)]
    (folder / "digits.txt").write_text(header + "\n" + "\n".join(rows) + "\n")
    arguments = ("--model", f"{module}:cnn", "--data", "digits.txt", "--input-shape", "1,4,4",
                 "--repetitions", "2")

    unnamed = _run(*arguments)
    named = _run(*arguments, "--format", "csv")

    assert unnamed.exit_code == 2
    assert "--format" in unnamed.output
    assert named.exit_code == 0, named.output
    assert "NEAR score" in named.output


def test_cli_json_below_file_rejected(workspace):
    folder, module = workspace
    (folder / "afile").write_text("keep me\n")

    result = _run("--model", f"{module}:mlp", "--data", "inputs.npy", "--repetitions", "2",
                  "--json", "afile/score.json")

    assert result.exit_code == 2
    assert "is a file" in result.output
    assert "NEAR score" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (folder / "afile").read_text() == "keep me\n"


def test_cli_integer_pixels_become_float(workspace):
    folder, module = workspace
    pixels = np.random.default_rng(4).integers(0, 256, size=(30, 1, 4, 4), dtype=np.uint8)
    np.save(folder / "pixels.npy", pixels)

    result = _run("--model", f"{module}:cnn", "--data", "pixels.npy", "--repetitions", "2",
                  "--json", "pixels.json")

    assert result.exit_code == 0, result.output
    assert json.loads((folder / "pixels.json").read_text())["repetitions"] == 2


@pytest.mark.parametrize("json_path", ["", "subdir", "dangling/score.json"])
def test_cli_json_path_rejected_before_scoring(workspace, json_path):
    folder, module = workspace
    (folder / "subdir").mkdir()
    (folder / "dangling").symlink_to(folder / "missing")

    result = _run("--model", f"{module}:mlp", "--data", "inputs.npy", "--repetitions", "2",
                  "--json", json_path)

    assert result.exit_code == 2
    assert "NEAR score" not in result.output


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.npy", b"", "is not a NumPy .npy file or .npz archive"),
        ("text.npz", b"not numpy\n", "is not a NumPy .npy file or .npz archive"),
        ("short.npy", b"\x93NUMPY", "as a NumPy .npy or .npz file failed"),
        ("empty.pt", b"", "torch.load failed"),
    ],
)
def test_cli_damaged_data_rejected(workspace, name, content, message):
    folder, module = workspace
    (folder / name).write_bytes(content)

    result = _run("--model", f"{module}:mlp", "--data", name, "--repetitions", "2")

    assert result.exit_code == 2
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_raw_member_rejected(workspace):
    import zipfile

    folder, module = workspace
    with zipfile.ZipFile(folder / "raw.npz", "w") as archive:
        archive.writestr("inputs.npy", b"not an array")

    result = _run("--model", f"{module}:mlp", "--data", "raw.npz", "--repetitions", "2")

    assert result.exit_code == 2
    assert "is not a NumPy array" in result.output


def test_cli_format_npy_reads_any_name(workspace):
    folder, module = workspace
    (folder / "inputs.npy").rename(folder / "inputs.bin")

    result = _run("--model", f"{module}:mlp", "--data", "inputs.bin", "--format", "npy", "--repetitions", "2")

    assert result.exit_code == 0, result.output
    assert "NEAR score" in result.output
