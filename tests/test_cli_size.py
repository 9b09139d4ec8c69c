"""End-to-end runs of ``near-size`` on a slice of the shipped S_N2 data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ase_io = pytest.importorskip("ase.io")

from layersize.cli.size import main  # noqa: E402

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "sn2.xyz"

# A sweep that fits the 692 atoms of the slice and keeps each run at a few
# seconds. With threshold 0.01 the estimates (about 38 and 56) lie inside it.
FAST = ["--widths", "4,8,16,24,32,48,64", "--repetitions", "50", "--threshold", "0.01",
        "--no-cache", "--no-progress"]


@pytest.fixture(scope="module")
def frames():
    if not DATA_FILE.exists():
        pytest.skip(f"{DATA_FILE} is missing; run 'python data/generate_sn2.py' to create it")
    return ase_io.read(DATA_FILE, index="::70")


@pytest.fixture(scope="module")
def slice_file(frames, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "slice.xyz"
    ase_io.write(path, frames)
    return path


def run(arguments):
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


@pytest.fixture(scope="module")
def two_layer_run(slice_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = run(["--data", slice_file, "--layers", 2, "--seed", 0, "--out", out, *FAST])
    return result, out


def test_run_prints_widths_and_writes_files(two_layer_run):
    result, out = two_layer_run
    assert result.exit_code == 0, result.output

    printed = [line for line in result.output.splitlines() if line.startswith("widths:")]
    widths = [int(item) for item in printed[0].split()[1:]]
    report = json.loads((out / "sizes.json").read_text())

    assert len(widths) == 2
    assert report["widths"] == widths
    assert sorted(path.name for path in out.iterdir()) == [
        "input.nn", "layer_1.png", "layer_2.png", "sizes.json",
    ]


def test_run_reports_data_and_settings(two_layer_run):
    result, out = two_layer_run
    report = json.loads((out / "sizes.json").read_text())

    assert "60 structures, 692 atoms, 153 descriptors per atom" in result.output
    assert report["data"]["n_structures"] == 60
    assert report["data"]["n_rows"] == 692
    assert report["settings"]["repetitions"] == 50
    assert report["settings"]["threshold"] == 0.01
    assert report["settings"]["seed"] == 0


def test_fit_details_agree_with_threshold_formula(two_layer_run):
    _, out = two_layer_run
    report = json.loads((out / "sizes.json").read_text())

    for layer in report["layers"]:
        fit = layer["fit"]
        expected = fit["threshold"] ** (1.0 / (fit["gamma"] - 1.0))
        assert fit["width"] == pytest.approx(expected, rel=1e-9)
        assert layer["width"] == math.ceil(fit["width"])  # rounded up to whole neurons
        assert [point["width"] for point in layer["sweep"]] == [4, 8, 16, 24, 32, 48, 64]


def test_second_layer_is_swept_on_the_first(two_layer_run):
    _, out = two_layer_run
    report = json.loads((out / "sizes.json").read_text())

    assert report["layers"][0]["fixed_widths"] == []
    assert report["layers"][1]["fixed_widths"] == [report["widths"][0]]


def test_input_nn_lines(two_layer_run):
    _, out = two_layer_run
    report = json.loads((out / "sizes.json").read_text())
    lines = [line for line in (out / "input.nn").read_text().splitlines() if not line.startswith("#")]

    assert lines == [
        "global_hidden_layers_short 2",
        f"global_nodes_short {report['widths'][0]} {report['widths'][1]}",
        "global_activation_short t t l",
    ]


def test_plots_are_png(two_layer_run):
    _, out = two_layer_run

    for name in ("layer_1.png", "layer_2.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_gives_identical_output(slice_file, two_layer_run, tmp_path):
    first_result, first_out = two_layer_run
    second = run(["--data", slice_file, "--layers", 2, "--seed", 0, "--out", tmp_path, *FAST])
    first_report = json.loads((first_out / "sizes.json").read_text())
    second_report = json.loads((tmp_path / "sizes.json").read_text())
    first_report.pop("seconds", None)
    second_report.pop("seconds", None)

    assert second.exit_code == 0, second.output
    assert second.output.replace(str(tmp_path), "OUT") == first_result.output.replace(str(first_out), "OUT")
    assert second_report == first_report
    assert (tmp_path / "layer_1.png").read_bytes() == (first_out / "layer_1.png").read_bytes()


def test_other_seed_agrees_within_uncertainty(slice_file, two_layer_run, tmp_path):
    _, first_out = two_layer_run
    second = run(["--data", slice_file, "--layers", 1, "--seed", 1, "--out", tmp_path, *FAST])
    first_fit = json.loads((first_out / "sizes.json").read_text())["layers"][0]["fit"]
    second_fit = json.loads((tmp_path / "sizes.json").read_text())["layers"][0]["fit"]
    combined = math.hypot(first_fit["width_stderr"], second_fit["width_stderr"])

    assert second.exit_code == 0, second.output
    assert second_fit["width"] != first_fit["width"]
    assert abs(second_fit["width"] - first_fit["width"]) <= 3 * combined


def test_element_sizes_one_element(slice_file, frames, tmp_path):
    n_carbon = sum(atoms.get_chemical_symbols().count("C") for atoms in frames)

    result = run(["--data", slice_file, "--layers", 1, "--element", "C", "--seed", 0,
                  "--out", tmp_path, *FAST])
    report = json.loads((tmp_path / "sizes.json").read_text())

    assert result.exit_code == 0, result.output
    assert f"{n_carbon} atoms of C" in result.output
    assert report["data"]["element"] == "C"
    assert report["data"]["n_rows"] == n_carbon


# --- bad input: a clear message and no output folder ----------------------------


def assert_failed_cleanly(result, out: Path, *fragments: str):
    assert result.exit_code != 0
    for fragment in fragments:
        assert fragment in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_missing_file(tmp_path):
    missing = tmp_path / "absent.xyz"

    result = run(["--data", missing, "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "not found", "absent.xyz")


def test_unreadable_file(tmp_path):
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("not a structure\nat all\n")

    result = run(["--data", garbage, "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "could not read", "garbage.xyz")


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.xyz"
    empty.write_text("")

    result = run(["--data", empty, "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "empty.xyz")


def test_file_without_atoms(tmp_path):
    no_atoms = tmp_path / "no_atoms.xyz"
    no_atoms.write_text('0\nProperties=species:S:1:pos:R:3 pbc="F F F"\n')

    result = run(["--data", no_atoms, "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "no structures")


def test_element_not_present(slice_file, tmp_path):
    result = run(["--data", slice_file, "--element", "Xe", "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "'Xe' is not present", "Cl")


def test_unknown_element_symbol(slice_file, tmp_path):
    result = run(["--data", slice_file, "--element", "Qq", "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "'Qq'")


def test_nan_position(frames, tmp_path):
    broken = [atoms.copy() for atoms in frames[:5]]
    broken[2].positions[1, 0] = np.nan
    path = tmp_path / "nan.xyz"
    ase_io.write(path, broken)

    result = run(["--data", path, "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "Atom 1 of structure 2", "NaN")


def test_widths_above_available_rows(frames, tmp_path):
    path = tmp_path / "tiny.xyz"
    ase_io.write(path, frames[:3])  # 18 atoms

    result = run(["--data", path, "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "64", "only 18", "Drop widths above 18")


@pytest.mark.parametrize(
    ("threshold", "advice"),
    [("0.0005", "add widths up to"), ("0.5", "add widths down to")],
)
def test_estimate_outside_sweep(slice_file, tmp_path, threshold, advice):
    arguments = ["--data", slice_file, "--layers", 1, "--out", tmp_path / "out", *FAST]
    arguments[arguments.index("--threshold") + 1] = threshold

    result = run(arguments)

    assert_failed_cleanly(result, tmp_path / "out", "does not support", advice)


@pytest.mark.parametrize(
    ("widths", "message"),
    [
        ("4,8,x", "not a comma-separated list"),
        ("4,8,16", "fewer than 4"),
        ("1,4,8,16", "contains the width 1"),
        ("-4,8,16", "contains the width -4"),
    ],
)
def test_invalid_widths(slice_file, tmp_path, widths, message):
    arguments = ["--data", slice_file, "--out", tmp_path / "out", *FAST]
    arguments[arguments.index("--widths") + 1] = widths

    result = run(arguments)

    assert_failed_cleanly(result, tmp_path / "out", message)


def test_module_entry_point_runs_near_size():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "layersize", "--help"],
                            capture_output=True, text=True, check=False)

    assert result.returncode == 0
    assert "Usage: near-size" in result.stdout or "Usage: python -m layersize" in result.stdout
    assert "--threshold" in result.stdout


# --- image files ----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    """Write 600 blurred random 12 × 12 'digits' as a gzip IDX file."""
    import gzip
    import struct

    rng = np.random.default_rng(0)
    strokes = rng.random((600, 12, 12)) < 0.15
    images = (strokes | np.roll(strokes, 1, axis=2)).astype(np.uint8) * 255
    path = tmp_path_factory.mktemp("images") / "digits-idx3-ubyte.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(struct.pack(">HBBIII", 0, 8, 3, 600, 12, 12))
        stream.write(images.tobytes())
    return path


def test_image_file_is_sized_without_potential_config(digits_file, tmp_path):
    result = run(["--data", digits_file, "--layers", 1, "--widths", "10,20,40,80,160",
                  "--repetitions", 5, "--allow-extrapolation", "--no-progress",
                  "--seed", 0, "--out", tmp_path])
    report = json.loads((tmp_path / "sizes.json").read_text())

    assert result.exit_code == 0, result.output
    assert "600 images, 144 pixels each (12×12)" in result.output
    assert report["data"]["kind"] == "images"
    assert report["settings"]["n_features"] == 144
    assert "potential_configs" not in report
    assert sorted(path.name for path in tmp_path.iterdir()) == ["layer_1.png", "sizes.json"]


def test_image_defaults_fit_the_number_of_images(digits_file, tmp_path):
    result = run(["--data", digits_file, "--layers", 1, "--repetitions", 3, "--no-progress",
                  "--allow-extrapolation", "--out", tmp_path])
    report = json.loads((tmp_path / "sizes.json").read_text())

    assert result.exit_code == 0, result.output
    assert report["settings"]["widths"] == [10, 20, 40, 80, 160, 320]


def test_element_with_image_file(digits_file, tmp_path):
    result = run(["--data", digits_file, "--element", "C", "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "image file", "Leave the element out")


def test_label_column_with_structure_file(slice_file, tmp_path):
    result = run(["--data", slice_file, "--label-column", "first", "--out", tmp_path / "out", *FAST])

    assert_failed_cleanly(result, tmp_path / "out", "label_column applies to CSV image files")


def test_no_anchor_fits_swept_points_only(slice_file, tmp_path):
    from layersize.fit import fit_power_law

    result = run(["--data", slice_file, "--layers", 1, "--no-anchor", "--seed", 0,
                  "--out", tmp_path, *FAST])
    report = json.loads((tmp_path / "sizes.json").read_text())
    layer = report["layers"][0]
    refit = fit_power_law([point["width"] for point in layer["sweep"]],
                          [point["relative_score"] for point in layer["sweep"]], threshold=0.01)

    assert result.exit_code == 0, result.output
    assert report["settings"]["anchor"] is False
    assert layer["fit"]["width"] == pytest.approx(refit.width, rel=1e-9)


def test_rerun_into_same_folder_removes_stale_files(slice_file, tmp_path):
    first = run(["--data", slice_file, "--layers", 2, "--seed", 0, "--out", tmp_path, *FAST])
    (tmp_path / "notes.txt").write_text("kept")
    second = run(["--data", slice_file, "--layers", 1, "--seed", 0, "--out", tmp_path, *FAST])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "input.nn", "layer_1.png", "notes.txt", "sizes.json",
    ]


def test_negative_seed_is_a_usage_error(slice_file, tmp_path):
    result = run(["--data", slice_file, "--seed", "-1", "--out", tmp_path / "out", *FAST])

    assert result.exit_code == 2
    assert "--seed" in result.output
    assert not (tmp_path / "out").exists()


def test_default_widths_on_too_few_atoms(frames, tmp_path):
    path = tmp_path / "one.xyz"
    ase_io.write(path, frames[:1])

    result = run(["--data", path, "--no-cache", "--no-progress", "--out", tmp_path / "out"])

    assert_failed_cleanly(result, tmp_path / "out", "only 6 sample rows", "larger data set")
