"""Tests of ``near-size --check`` on a slice of the shipped S_N2 data."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import pytest
from click.testing import CliRunner

from layersize.checking import make_variants
from layersize.cli.size import main

SN2 = Path(__file__).resolve().parent.parent / "data" / "sn2.xyz"

# A short sweep and a few epochs keep each end-to-end run at a few seconds.
FAST_ESTIMATE = ["--layers", "2", "--widths", "4,6,8,12,16", "--repetitions", "4",
                 "--allow-extrapolation", "--no-progress", "--no-cache"]
FAST_CHECK = ["--check", "--check-seeds", "2", "--check-max-epochs", "3", "--check-patience", "2"]


@pytest.fixture(scope="module")
def structures(tmp_path_factory) -> Path:
    """Write every 70th structure of data/sn2.xyz (60 structures, several reactions)."""
    frames = ase.io.read(SN2, index="::70")
    path = tmp_path_factory.mktemp("data") / "sn2_slice.xyz"
    ase.io.write(path, frames[:60])
    return path


def run(*arguments: str):
    return CliRunner().invoke(main, list(arguments))


@pytest.fixture(scope="module")
def checked(structures, tmp_path_factory):
    """Run the estimate and the check once and return the click result and the output folder."""
    out = tmp_path_factory.mktemp("check") / "out"
    result = run("--data", str(structures), *FAST_ESTIMATE, *FAST_CHECK, "--seed", "0", "--out", str(out))
    return result, out


def test_check_exits_cleanly(checked):
    result, _ = checked

    assert result.exit_code == 0, result.output


def test_check_writes_every_variant_to_sizes_json(checked):
    _, out = checked
    document = json.loads((out / "sizes.json").read_text())
    check = document["check"]
    expected = make_variants(document["widths"])

    assert check["estimate"] == document["widths"]
    assert [variant["widths"] for variant in check["variants"]] == [list(item.widths) for item in expected]
    assert [variant["label"] for variant in check["variants"]] == [item.label for item in expected]
    for variant in check["variants"]:
        assert len(variant["runs"]) == 2, variant["label"]
        assert variant["n_parameters"] > 0, variant["label"]
        assert variant["test_metric_mean"] is not None, variant["label"]
    assert check["forces_trained"] is False
    assert check["metric"] == {"name": "energy RMSE", "unit": "meV/atom"}
    assert check["settings"]["networks"] == "pooled"
    assert check["settings"]["max_epochs"] == 3
    assert check["settings"]["factors"] == [0.5, 1.0, 2.0]


def test_check_table_printed_and_stored(checked):
    result, out = checked
    document = json.loads((out / "sizes.json").read_text())
    table = document["check"]["table"]

    assert "RMSE meV/atom" in table[0]
    for variant in document["check"]["variants"]:
        assert any(row.startswith(variant["label"] + " ") for row in table), variant["label"]
    for row in table:
        assert row in result.output
    assert "forces are not trained" in result.output


def test_check_writes_plot(checked):
    _, out = checked
    plot = out / "check.png"

    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(path.name for path in out.iterdir()) == [
        "check.png", "input.nn", "layer_1.png", "layer_2.png", "sizes.json",
    ]


def test_check_fixed_seed_reproducible(structures, checked, tmp_path):
    _, first_out = checked
    result = run("--data", str(structures), *FAST_ESTIMATE, *FAST_CHECK, "--seed", "0",
                 "--out", str(tmp_path / "again"))

    assert result.exit_code == 0, result.output
    first = json.loads((first_out / "sizes.json").read_text())["check"]
    second = json.loads((tmp_path / "again" / "sizes.json").read_text())["check"]

    def scores(check):
        return [(run["test_loss"], run["test_metric"], run["epochs_run"])
                for variant in check["variants"] for run in variant["runs"]]

    assert scores(first) == scores(second)


def test_check_with_element_trains_per_element_networks(structures, tmp_path):
    out = tmp_path / "out"
    # One layer: the 170 carbon rows of the slice give too noisy a fit for a second.
    result = run("--data", str(structures), *FAST_ESTIMATE, "--layers", "1", "--element", "C", "--check",
                 "--check-factors", "1", "--check-seeds", "1", "--check-max-epochs", "2", "--out", str(out))

    assert result.exit_code == 0, result.output
    check = json.loads((out / "sizes.json").read_text())["check"]
    assert check["settings"]["networks"] == "per_element"
    assert len(check["settings"]["elements"]) > 1
    assert [variant["label"] for variant in check["variants"]] == ["estimate"]


def test_no_check_leaves_report_unchanged(structures, tmp_path):
    out = tmp_path / "out"
    result = run("--data", str(structures), *FAST_ESTIMATE, "--out", str(out))

    assert result.exit_code == 0, result.output
    assert "check" not in json.loads((out / "sizes.json").read_text())
    assert not (out / "check.png").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--check-factors", "0,1,2", "positive"),
        ("--check-factors", "-0.5,1", "positive"),
        ("--check-factors", "half,1", "comma-separated list of numbers"),
        ("--check-factors", ",", "at least one"),
        ("--check-split", "0.8,0.2,0", "no validation or no test"),
        ("--check-split", "0.8,0.2", "three non-negative fractions"),
        ("--check-seeds", "0", "x>=1"),
        ("--check-learning-rate", "0", "x>0"),
    ],
)
def test_check_invalid_option_rejected(structures, tmp_path, option, value, message):
    out = tmp_path / "out"
    result = run("--data", str(structures), *FAST_ESTIMATE, "--check", option, value, "--out", str(out))

    assert result.exit_code == 2, result.output
    assert option in result.output
    assert message in result.output
    assert not out.exists()


def test_check_option_without_check_rejected(structures, tmp_path):
    out = tmp_path / "out"
    result = run("--data", str(structures), *FAST_ESTIMATE, "--check-seeds", "5", "--out", str(out))

    assert result.exit_code == 2, result.output
    assert "--check-seeds applies only with --check" in result.output
    assert not out.exists()


def test_check_without_energies_fails_cleanly(structures, tmp_path):
    frames = ase.io.read(structures, index=":")
    for atoms in frames:
        atoms.calc = None
        atoms.info.pop("energy", None)
    bare = tmp_path / "no_energy.xyz"
    ase.io.write(bare, frames)
    out = tmp_path / "out"

    result = run("--data", str(bare), *FAST_ESTIMATE, *FAST_CHECK, "--out", str(out))

    assert result.exit_code == 1, result.output
    assert "0 structures with an energy" in result.output
    assert "no files were written" in result.output
    assert not out.exists()
