"""Tests of benchmark scoring, the results file, correlations, Dask runs and near-bench."""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from shared_data import SHARED_DATA

from layersize import bench
from layersize.bench import (
    RESULT_COLUMNS,
    AccuracyTable,
    ArchitectureResult,
    ResultsFile,
    correlate_with_accuracy,
    load_cifar_images,
    rank_correlation,
    score_architectures,
    select_indices,
)
from layersize.nas import all_architectures, arch_index, build_network, is_disconnected

CIFAR_SAMPLE = SHARED_DATA / "cifar10_test_1000.npz"

# Disconnected cells: no path of non-"none" edges leads from node 0 to node 3.
DISCONNECTED = (
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    # Dead ends without parameters.
    "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|none~0|none~1|none~2|",
    # Convolutions on dead ends from node 0, which the first cell never runs.
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",
    # Convolutions on nodes that receive only zeros but feed the output.
    "|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|",
)


def stub_scorer(model, inputs, repetitions, seed):
    """Score from one forward pass: depends on the seed, the weights and the inputs."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(inputs.shape[0], generator=generator)[:4]
    with torch.no_grad():
        output = model.eval()(inputs[rows])
    return SimpleNamespace(mean=float(output.abs().sum()) + repetitions, stderr=0.5)


def failing_scorer(model, inputs, repetitions, seed):
    raise RuntimeError("scorer exploded")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    rng = np.random.default_rng(3)
    return torch.from_numpy(rng.normal(size=(12, 3, 32, 32)).astype(np.float32))


def near_score_or_skip():
    score = pytest.importorskip("layersize.score", reason="layersize.score.near_score is not available")
    return score.near_score


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- Images --------------------------------------------------------------------


def test_load_images_layouts_agree(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "last.npz", images=pixels)
    np.savez(tmp_path / "first.npz", images=pixels.transpose(0, 3, 1, 2))
    channels_last = load_cifar_images(tmp_path / "last.npz")
    channels_first = load_cifar_images(tmp_path / "first.npz")
    assert channels_last.shape == (5, 3, 32, 32)
    assert channels_last.dtype == torch.float32
    torch.testing.assert_close(channels_last, channels_first)


def test_load_images_normalisation(tmp_path):
    pixels = np.empty((1, 32, 32, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 125, 123, 114
    np.savez(tmp_path / "grey.npz", images=pixels)
    normalised = load_cifar_images(tmp_path / "grey.npz")
    expected = torch.tensor([(125 - 125.3) / 63.0, 0.0, (114 - 113.9) / 66.7])
    torch.testing.assert_close(normalised[0, :, 0, 0], expected)
    unit = load_cifar_images(tmp_path / "grey.npz", normalise=None)
    torch.testing.assert_close(unit[0, :, 0, 0], torch.tensor([125, 123, 114]) / 255.0)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"pixels": np.zeros((2, 32, 32, 3), np.uint8)}, "has no 'images' array"),
        ({"images": np.zeros((2, 32, 32, 3), np.float32)}, "must be uint8"),
        ({"images": np.zeros((2, 32, 32), np.uint8)}, r"must have shape \(N, H, W, 3\)"),
        ({"images": np.zeros((2, 32, 32, 4), np.uint8)}, "RGB"),
        ({"images": np.zeros((2, 3, 8, 3), np.uint8)}, "ambiguous"),
    ],
)
def test_load_images_rejects_bad_archives(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_cifar_images(tmp_path / "bad.npz")


def test_load_images_reads_npy_array(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", pixels)
    np.savez(tmp_path / "images.npz", images=pixels)

    torch.testing.assert_close(load_cifar_images(tmp_path / "images.npy"),
                               load_cifar_images(tmp_path / "images.npz"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not an array\n", r"notes\.npz is not a NumPy \.npy file or \.npz archive\. Save the images"),
        (b"", r"notes\.npz is not a NumPy \.npy file or \.npz archive"),
        (b"PK\x03\x04broken zip", r"Reading .*notes\.npz as a NumPy \.npy or \.npz file failed"),
    ],
)
def test_load_images_non_numpy_file(tmp_path, content, message):
    path = tmp_path / "notes.npz"
    path.write_bytes(content)

    with pytest.raises(ValueError, match=message):
        load_cifar_images(path)


def test_load_images_damaged_members(tmp_path):
    raw = tmp_path / "raw.npz"
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("images.npy", b"not an array")
    objects = tmp_path / "objects.npz"
    np.savez(objects, images=np.array([object()], dtype=object))

    with pytest.raises(ValueError, match="Member 'images' of .*raw\\.npz is not a NumPy array"):
        load_cifar_images(raw)
    with pytest.raises(ValueError, match=r"Reading .*objects\.npz as a NumPy"):
        load_cifar_images(objects)


@pytest.mark.skipif(not CIFAR_SAMPLE.is_file(), reason=f"CIFAR-10 sample not found at {CIFAR_SAMPLE}")
def test_load_real_cifar_sample():
    images = load_cifar_images(CIFAR_SAMPLE)
    assert images.shape == (1000, 3, 32, 32)
    channel_means = images.mean(dim=(0, 2, 3))
    channel_stds = images.std(dim=(0, 2, 3))
    assert torch.all(channel_means.abs() < 0.1)
    assert torch.all((channel_stds - 1).abs() < 0.1)


# --- Selection -----------------------------------------------------------------


def test_sample_is_seeded_and_distinct():
    first = select_indices(sample=20, seed=5)
    assert first == select_indices(sample=20, seed=5)
    assert first != select_indices(sample=20, seed=6)
    assert len(set(first)) == 20
    expected = np.random.default_rng(5).choice(15625, size=20, replace=False).tolist()
    assert first == expected


def test_select_by_archs_and_indices():
    archs = all_architectures()
    assert select_indices(archs=[archs[284], archs[0]]) == [284, 0]
    assert select_indices(indices=[3, 3, 1]) == [3, 1]


def test_select_rejects_conflicts_and_range():
    with pytest.raises(ValueError, match="exactly one"):
        select_indices(sample=3, indices=[1])
    with pytest.raises(ValueError, match="out of range"):
        select_indices(indices=[15625])


def test_read_archs_file_names_bad_line(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_text(f"# two cells\n{all_architectures()[0]}\n\n|bad|\n")
    with pytest.raises(ValueError, match="line 4"):
        bench.read_archs_file(path)


# --- Scoring and the results file ------------------------------------------------


def test_score_rows_streamed(tmp_path, images):
    results_csv = tmp_path / "scores.csv"
    results = score_architectures([284, 0], images, results_csv, repetitions=2,
                                  scorer=stub_scorer, progress=False)
    assert [result.index for result in results] == [284, 0]
    assert [result.status for result in results] == ["ok", "ok"]
    assert [result.n_params for result in results] == [101_306, 129_306]

    rows = read_rows(results_csv)
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert [int(row["index"]) for row in rows] == [284, 0]
    assert float(rows[0]["near_mean"]) == results[0].near_mean


def test_scores_depend_on_seed_only(tmp_path, images):
    first = score_architectures([3, 284], images, tmp_path / "a.csv", seed=4, scorer=stub_scorer, progress=False)
    again = score_architectures([284, 3], images, tmp_path / "b.csv", seed=4, scorer=stub_scorer, progress=False)
    other = score_architectures([3, 284], images, tmp_path / "c.csv", seed=5, scorer=stub_scorer, progress=False)
    assert {r.index: r.near_mean for r in first} == {r.index: r.near_mean for r in again}
    assert first[0].near_mean != other[0].near_mean


def test_scorer_error_recorded(tmp_path, images):
    results = score_architectures([3], images, tmp_path / "scores.csv", scorer=failing_scorer, progress=False)
    assert results[0].status == "error"
    assert "RuntimeError: scorer exploded" in results[0].error
    assert math.isnan(results[0].near_mean)


def test_device_passed_only_when_given(tmp_path, images):
    devices: list[str | None] = []

    def device_scorer(model, inputs, repetitions, seed, device=None):
        devices.append(device)
        return SimpleNamespace(mean=1.0, stderr=0.0)

    score_architectures([3], images, tmp_path / "a.csv", scorer=device_scorer, progress=False)
    score_architectures([3], images, tmp_path / "b.csv", scorer=device_scorer, progress=False, device="cpu")
    assert devices == [None, "cpu"]


def test_resume_skips_finished_and_truncated_line(tmp_path, images):
    archs = all_architectures()
    results_csv = tmp_path / "scores.csv"
    finished = ArchitectureResult(0, archs[0], 12.5, 0.25, 129_306, 1.0, "ok")
    errored = ArchitectureResult(1, archs[1], math.nan, math.nan, -1, 0.5, "error", "ValueError: x")
    with ResultsFile(results_csv) as results_file:
        results_file.append(finished)
        results_file.append(errored)
    # A run killed while writing the row of index 2 leaves half a line.
    with results_csv.open("a") as handle:
        handle.write(f"2,{archs[2]},33.")

    calls: list[int] = []

    def counting_scorer(model, inputs, repetitions, seed):
        calls.append(arch_index(model.arch))
        return SimpleNamespace(mean=7.0, stderr=0.0)

    results = score_architectures([0, 1, 2, 3], images, results_csv, scorer=counting_scorer, progress=False)

    assert sorted(calls) == [1, 2, 3]
    assert results[0] == finished
    assert [result.status for result in results] == ["ok"] * 4
    lines = results_csv.read_text().splitlines()
    assert not any("33." in line for line in lines)
    assert len(read_rows(results_csv)) == 5  # index 0, the error row of 1, then 1, 2, 3
    assert ResultsFile(results_csv).read()[1].status == "ok"


def test_resume_rejects_other_file(tmp_path, images):
    results_csv = tmp_path / "scores.csv"
    results_csv.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a near-bench results file"):
        score_architectures([0], images, results_csv, scorer=stub_scorer, progress=False)


def test_resume_rejects_other_architecture(tmp_path, images):
    results_csv = tmp_path / "scores.csv"
    with ResultsFile(results_csv) as results_file:
        results_file.append(ArchitectureResult(0, all_architectures()[1], 1.0, 0.0, 1, 1.0, "ok"))
    with pytest.raises(ValueError, match="another search space or order"):
        score_architectures([0], images, results_csv, scorer=stub_scorer, progress=False)


def test_disconnected_cells_score_and_tie(images):
    near_score = near_score_or_skip()
    assert all(is_disconnected(arch) for arch in DISCONNECTED)
    scores = [near_score(build_network(arch), images, repetitions=2, seed=11) for arch in DISCONNECTED]
    for score in scores:
        assert math.isfinite(score.mean)
        assert all(np.isfinite(layer.ranks).all() for layer in score.layers)
        ranks = {layer.name: layer.mean for layer in score.layers}
        # Every layer between the stem and the classifier receives only zeros, and
        # the classifier outputs its bias for every image, a matrix of rank one.
        inner = [name for name in ranks if not name.startswith("stem") and name != "classifier"]
        assert inner
        assert all(ranks[name] == 0 for name in inner)
        assert ranks["classifier"] == pytest.approx(1.0)
    # The stem and the classifier draw the same weights in every network, so
    # the totals of each repetition are equal, not only close.
    for score in scores[1:]:
        assert np.array_equal(score.totals, scores[0].totals)

    connected = near_score(build_network(all_architectures()[284]), images, repetitions=1, seed=11)
    assert connected.mean > 10 * scores[0].mean


def test_disconnected_cells_tie_through_bench(tmp_path, images):
    near_score_or_skip()
    results = score_architectures(DISCONNECTED, images, tmp_path / "scores.csv", repetitions=2, seed=3,
                                  progress=False)
    assert [result.status for result in results] == ["ok"] * len(DISCONNECTED)
    assert len({result.n_params for result in results}) > 1
    assert all(math.isfinite(result.near_mean) for result in results)
    assert all(math.isfinite(result.near_stderr) for result in results)
    assert len({result.near_mean for result in results}) == 1
    assert len({result.near_stderr for result in results}) == 1


def test_without_classifier_one_image_per_repetition(images):
    near_score_or_skip()
    network = build_network(all_architectures()[284])
    full = bench._default_scorer(classifier=True)(network, images, repetitions=1, seed=2)
    cells = bench._default_scorer(classifier=False)(network, images, repetitions=1, seed=2)
    assert full.n_samples == 10
    assert cells.n_samples == 1
    assert [layer.name for layer in cells.layers] == [
        layer.name for layer in full.layers if layer.name != "classifier"
    ]


def test_without_classifier_single_image(tmp_path, images):
    near_score_or_skip()
    one_image = images[:1]
    with pytest.raises(ValueError, match="needs 10 images, but there are only 1.*--no-classifier"):
        score_architectures([284], one_image, tmp_path / "a.csv", repetitions=2, progress=False)
    assert not (tmp_path / "a.csv").exists()

    results = score_architectures([284, *DISCONNECTED[:2]], one_image, tmp_path / "b.csv", repetitions=2,
                                  progress=False, classifier=False)
    assert [result.status for result in results] == ["ok"] * 3
    assert all(math.isfinite(result.near_mean) for result in results)
    assert results[1].near_mean == results[2].near_mean
    assert results[0].near_mean > 10 * results[1].near_mean


def test_without_classifier_rejects_custom_scorer(tmp_path, images):
    with pytest.raises(ValueError, match="default scorer only"):
        score_architectures([0], images, tmp_path / "scores.csv", scorer=stub_scorer, progress=False,
                            classifier=False)
    assert not (tmp_path / "scores.csv").exists()


def other_scorer(model, inputs, repetitions, seed):
    return SimpleNamespace(mean=1.0, stderr=0.0)


def test_settings_recorded_and_checked_on_resume(tmp_path, images):
    results_csv = tmp_path / "scores.csv"
    score_architectures([0, 1], images, results_csv, repetitions=2, seed=3, scorer=stub_scorer, progress=False)
    record_path = bench.settings_path(results_csv)
    assert record_path.name == "scores.csv.settings.json"
    record = json.loads(record_path.read_text())
    assert record["repetitions"] == 2
    assert record["seed"] == 3
    assert record["classifier"] is True
    assert record["scorer"] == f"{stub_scorer.__module__}.stub_scorer"
    assert record["images_shape"] == [12, 3, 32, 32]
    assert record["images_dtype"] == "float32"

    changes = [
        ({"repetitions": 4}, "repetitions=2, but this run has repetitions=4.*--repetitions"),
        ({"seed": 5}, "seed=3, but this run has seed=5"),
        ({"images": images + 1}, "images of SHA-256 .*--images and --normalise"),
        ({"images": images.double()}, "images_dtype='float32', .* images_dtype='float64'"),
        ({"num_classes": 100}, "num_classes=10.*--num-classes"),
        ({"scorer": other_scorer}, "scorer='.*stub_scorer', but this run has scorer='.*other_scorer'"),
    ]
    for change, message in changes:
        options = {"images": images, "repetitions": 2, "seed": 3, "scorer": stub_scorer, **change}
        with pytest.raises(ValueError, match=message):
            score_architectures([0, 1, 2], results_csv=results_csv, progress=False, **options)
    assert len(read_rows(results_csv)) == 2
    assert json.loads(record_path.read_text()) == record

    # The same settings, given as a channels-last tensor, resume the file.
    resumed = score_architectures([0, 1, 2], images.contiguous(memory_format=torch.channels_last),
                                  results_csv, repetitions=2, seed=3, scorer=stub_scorer, progress=False)
    assert [result.status for result in resumed] == ["ok"] * 3
    assert len(read_rows(results_csv)) == 3


def test_settings_classifier_change_rejected(tmp_path, images, monkeypatch):
    monkeypatch.setattr(bench, "_default_scorer", lambda classifier=True: stub_scorer)
    results_csv = tmp_path / "scores.csv"
    score_architectures([0], images, results_csv, repetitions=2, progress=False)
    with pytest.raises(ValueError, match="classifier=True, but this run has classifier=False"):
        score_architectures([0, 1], images, results_csv, repetitions=2, progress=False, classifier=False)


def test_settings_default_scorer_named_with_keywords(images):
    near_score_or_skip()
    with_classifier = bench._run_settings(images, 2, 0, 10, True, None)["scorer"]
    without = bench._run_settings(images, 2, 0, 10, False, None)["scorer"]
    assert with_classifier == "layersize.score.near_score(trace=False)"
    assert without == ("layersize.score.near_score(select=layersize.bench._counts_without_classifier, "
                       "trace=False)")


def test_settings_free_without_scores(tmp_path, images):
    results_csv = tmp_path / "scores.csv"
    failed = score_architectures([0, 1], images, results_csv, repetitions=2, scorer=failing_scorer,
                                 progress=False)
    assert [result.status for result in failed] == ["error", "error"]
    assert not bench.settings_path(results_csv).exists()

    # Only error rows: no scores to mix, so other settings are accepted.
    results = score_architectures([0, 1], images, results_csv, repetitions=4, scorer=stub_scorer, progress=False)
    assert [result.status for result in results] == ["ok", "ok"]
    assert json.loads(bench.settings_path(results_csv).read_text())["repetitions"] == 4


def test_settings_record_missing_or_damaged(tmp_path, images, caplog):
    results_csv = tmp_path / "scores.csv"
    with ResultsFile(results_csv) as results_file:
        results_file.append(ArchitectureResult(0, all_architectures()[0], 1.0, 0.0, 1, 1.0, "ok"))

    # A run that scores nothing records nothing.
    with caplog.at_level("WARNING", logger="layersize.bench"):
        score_architectures([0], images, results_csv, repetitions=99, scorer=stub_scorer, progress=False)
    assert "no settings record" in caplog.text
    assert not bench.settings_path(results_csv).exists()

    score_architectures([0, 1], images, results_csv, scorer=stub_scorer, progress=False)
    assert json.loads(bench.settings_path(results_csv).read_text())["repetitions"] == 32

    for damaged, problem in (("[1, 2", "Expecting"), ("[1, 2]", "does not contain a JSON object")):
        bench.settings_path(results_csv).write_text(damaged)
        with pytest.raises(ValueError, match=f"Cannot read the settings record .*{problem}.*another output path"):
            score_architectures([0, 1, 2], images, results_csv, scorer=stub_scorer, progress=False)


def test_score_architecture_rejects_classifier_with_scorer(images):
    with pytest.raises(ValueError, match="default scorer only"):
        bench.score_architecture(0, all_architectures()[0], images, scorer=stub_scorer, classifier=False)


# --- Dask ------------------------------------------------------------------------


@pytest.mark.parametrize("classifier", [True, False])
def test_local_cluster_matches_serial(tmp_path, images, classifier):
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    near_score_or_skip()
    indices = select_indices(sample=2, seed=2)
    serial = score_architectures(indices, images, tmp_path / "serial.csv", repetitions=2, seed=9, progress=False,
                                 classifier=classifier)
    parallel = score_architectures(indices, images, tmp_path / "parallel.csv", repetitions=2, seed=9,
                                   workers=2, progress=False, classifier=classifier)
    assert [result.status for result in parallel] == ["ok"] * 2
    assert [result.near_mean for result in parallel] == [result.near_mean for result in serial]
    assert [result.near_stderr for result in parallel] == [result.near_stderr for result in serial]


@pytest.fixture()
def loopback_cluster():
    """A two-process cluster on 127.0.0.1 that lets a task's worker die once."""
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    import cloudpickle
    import dask
    from dask.distributed import LocalCluster

    # Worker processes cannot import this test module, so its scorers travel by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def make_dying_scorer(marker: Path, victim: int, always: bool):
    """Return a scorer that kills its worker process when it scores benchmark index ``victim``."""

    def scorer(model, inputs, repetitions, seed):
        index = arch_index(model.arch)
        if index == victim and (always or not marker.exists()):
            marker.touch()
            os._exit(1)
        return SimpleNamespace(mean=float(index), stderr=0.0)

    return scorer


def test_worker_death_retried_or_failed(tmp_path, images, loopback_cluster):
    address = loopback_cluster.scheduler_address
    victim = 5
    once = make_dying_scorer(tmp_path / "died", victim, always=False)
    results = score_architectures([4, victim, 6], images, tmp_path / "retried.csv", scheduler=address,
                                  scorer=once, progress=False)
    assert (tmp_path / "died").exists()
    assert [result.status for result in results] == ["ok", "ok", "ok"]
    assert results[1].near_mean == victim

    always = make_dying_scorer(tmp_path / "died", victim, always=True)
    results = score_architectures([victim], images, tmp_path / "failed.csv", scheduler=address,
                                  scorer=always, progress=False)
    assert results[0].status == "failed"
    assert "KilledWorker" in results[0].error
    assert read_rows(tmp_path / "failed.csv")[0]["status"] == "failed"


# --- Correlation -------------------------------------------------------------------


def test_correlation_of_monotone_relation():
    scores = np.arange(40, dtype=float)
    correlation = rank_correlation(scores, scores**3 + 5, n_bootstrap=50, seed=1)
    assert correlation.kendall_tau == pytest.approx(1.0)
    assert correlation.spearman_rho == pytest.approx(1.0)
    assert correlation.kendall_interval == pytest.approx((1.0, 1.0))
    assert correlation.n == 40

    reversed_correlation = rank_correlation(scores, -scores, n_bootstrap=0)
    assert reversed_correlation.kendall_tau == pytest.approx(-1.0)
    assert math.isnan(reversed_correlation.kendall_interval[0])


def test_correlation_interval_contains_estimate():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200)
    accuracy = scores + rng.normal(size=200)
    correlation = rank_correlation(scores, accuracy, n_bootstrap=200, seed=3)
    low, high = correlation.spearman_interval
    assert low < correlation.spearman_rho < high
    assert correlation == rank_correlation(scores, accuracy, n_bootstrap=200, seed=3)


def test_correlation_drops_nan_and_needs_three_pairs():
    correlation = rank_correlation([1, 2, np.nan, 4], [1, 2, 3, 4], n_bootstrap=10)
    assert correlation.n == 3
    with pytest.raises(ValueError, match="at least 3 complete pairs"):
        rank_correlation([1, 2], [2, 1])


def test_accuracy_table_names_bad_cell(tmp_path):
    path = tmp_path / "accuracy.csv"
    path.write_text(f"index,arch,acc\n0,{all_architectures()[0]},91.5\n1,{all_architectures()[1]},n/a\n")
    with pytest.raises(ValueError, match="line 3: acc value 'n/a' is not a number"):
        bench.read_accuracy_table(path)


def test_correlate_with_accuracy_joins_on_index():
    archs = all_architectures()
    results = [ArchitectureResult(index, archs[index], float(index), 0.0, 1000 - index, 1.0, "ok")
               for index in range(6)]
    results.append(ArchitectureResult(6, archs[6], math.nan, math.nan, -1, 1.0, "error", "x"))
    table = AccuracyTable(
        index=np.arange(7)[::-1].copy(),
        arch=[archs[index] for index in range(7)][::-1],
        columns={"acc": 10.0 * np.arange(7)[::-1]},  # accuracy of index i is 10 i
    )
    summary = correlate_with_accuracy(results, table, n_bootstrap=20)
    assert summary["n_joined"] == 6
    assert summary["correlations"]["acc"]["near"]["kendall_tau"] == pytest.approx(1.0)
    assert summary["correlations"]["acc"]["n_params"]["kendall_tau"] == pytest.approx(-1.0)

    wrong = AccuracyTable(index=np.array([0]), arch=[archs[1]], columns={"acc": np.array([1.0])})
    with pytest.raises(ValueError, match="benchmark index order"):
        correlate_with_accuracy(results, wrong)


# --- near-bench ------------------------------------------------------------------------


def write_bench_inputs(tmp_path: Path, n_images: int = 12) -> tuple[Path, Path]:
    """Write random uint8 images and an accuracy table of indices 0 to 7, and return both paths."""
    pixels = np.random.default_rng(1).integers(0, 256, size=(n_images, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "images.npz", images=pixels)
    archs = all_architectures()
    with (tmp_path / "accuracy.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "arch", "cifar10_test_acc"])
        for index in range(8):
            writer.writerow([index, archs[index], 80 + index])
    return tmp_path / "images.npz", tmp_path / "accuracy.csv"


def test_near_bench_runs_and_resumes(tmp_path, monkeypatch):
    from layersize.cli.bench import main

    monkeypatch.setattr(bench, "_default_scorer", lambda classifier=True: stub_scorer)
    images, accuracy = write_bench_inputs(tmp_path)
    arguments = ["--indices", "0,1,2,3,284", "--images", str(images), "--accuracy", str(accuracy),
                 "--out", str(tmp_path / "out"), "--repetitions", "2", "--bootstrap", "20", "--no-progress"]

    first = CliRunner().invoke(main, arguments)
    assert first.exit_code == 0, first.output
    assert "0 already scored, 5 scored now" in first.output
    assert "Kendall tau" in first.output
    assert (tmp_path / "out" / "near_vs_accuracy.png").stat().st_size > 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_joined"] == 4  # index 284 has no accuracy row

    second = CliRunner().invoke(main, arguments)
    assert second.exit_code == 0, second.output
    assert "5 already scored, 0 scored now" in second.output

    other = CliRunner().invoke(main, [*arguments, "--repetitions", "3"])
    assert other.exit_code == 1
    assert "repetitions=2, but this run has repetitions=3" in other.output


def test_near_bench_no_classifier(tmp_path, monkeypatch):
    from layersize.cli.bench import main

    requested: list[bool] = []

    def default_scorer(classifier=True):
        requested.append(classifier)
        return stub_scorer

    monkeypatch.setattr(bench, "_default_scorer", default_scorer)
    images, _ = write_bench_inputs(tmp_path, n_images=4)
    result = CliRunner().invoke(main, ["--indices", "0,1", "--images", str(images),
                                       "--out", str(tmp_path / "out"), "--repetitions", "2",
                                       "--no-classifier", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert requested
    assert set(requested) == {False}
    assert json.loads((tmp_path / "out" / "scores.csv.settings.json").read_text())["classifier"] is False


def test_near_bench_rejects_bad_device(tmp_path):
    from layersize.cli.bench import main

    images, _ = write_bench_inputs(tmp_path)
    result = CliRunner().invoke(main, ["--indices", "0", "--images", str(images), "--out", str(tmp_path / "out"),
                                       "--repetitions", "2", "--device", "banana", "--no-progress"])
    assert result.exit_code == 1
    assert "device='banana' is not usable here" in result.output
    assert not (tmp_path / "out" / "scores.csv").exists()


def test_near_bench_all_failed_exits_nonzero(tmp_path, monkeypatch):
    from layersize.cli.bench import main

    monkeypatch.setattr(bench, "_default_scorer", lambda classifier=True: failing_scorer)
    images, _ = write_bench_inputs(tmp_path)
    result = CliRunner().invoke(main, ["--indices", "0,1", "--images", str(images), "--out", str(tmp_path / "out"),
                                       "--repetitions", "2", "--no-progress"])
    assert result.exit_code == 1
    assert "0 ok, 2 error" in result.output
    assert "No architecture was scored" in result.output


def test_near_bench_table_checked_first(tmp_path, monkeypatch):
    from layersize.cli.bench import main

    calls: list[int] = []

    def counting_scorer(model, inputs, repetitions, seed):
        calls.append(1)
        return SimpleNamespace(mean=1.0, stderr=0.0)

    monkeypatch.setattr(bench, "_default_scorer", lambda classifier=True: counting_scorer)
    images, accuracy = write_bench_inputs(tmp_path)
    lines = accuracy.read_text().splitlines()
    lines[1] = lines[1].replace(all_architectures()[0], all_architectures()[5])
    accuracy.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["--indices", "0,1", "--images", str(images), "--accuracy", str(accuracy),
                                       "--out", str(tmp_path / "out"), "--repetitions", "2", "--no-progress"])
    assert result.exit_code == 1
    assert "The table must use the benchmark's index order" in result.output
    assert calls == []
    assert not (tmp_path / "out").exists()


def test_near_bench_removes_stale_summary(tmp_path, monkeypatch):
    from layersize.cli.bench import main

    monkeypatch.setattr(bench, "_default_scorer", lambda classifier=True: stub_scorer)
    images, accuracy = write_bench_inputs(tmp_path)
    common = ["--images", str(images), "--out", str(tmp_path / "out"), "--repetitions", "2",
              "--bootstrap", "20", "--no-progress"]
    first = CliRunner().invoke(main, ["--indices", "0,1,2,3", "--accuracy", str(accuracy), *common])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "out" / "summary.json").is_file()

    second = CliRunner().invoke(main, ["--indices", "4", *common])
    assert second.exit_code == 0, second.output
    assert not (tmp_path / "out" / "summary.json").exists()
    assert not (tmp_path / "out" / "near_vs_accuracy.png").exists()
    assert len(read_rows(tmp_path / "out" / "scores.csv")) == 5


def test_device_checked_locally_unless_scheduler(tmp_path, images, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this torch build reaches CUDA, so 'cuda' is a usable device")
    for device in ("cuda", "meta", "banana"):
        with pytest.raises(ValueError, match=f"device='{device}' is not usable here"):
            score_architectures([0], images, tmp_path / "a.csv", scorer=stub_scorer, progress=False,
                                device=device)

    # A running scheduler's workers may have the device, so the check is theirs.
    sent: list[dict] = []

    def fake_cluster(pending, options, workers, scheduler, retries, record):
        sent.append(options)
        for index, arch in pending:
            record(ArchitectureResult(index, arch, 1.0, 0.0, 1, 0.1, "ok"))

    monkeypatch.setattr(bench, "_score_on_cluster", fake_cluster)
    score_architectures([0], images, tmp_path / "b.csv", scorer=stub_scorer, progress=False,
                        scheduler="tcp://127.0.0.1:1", device="cuda")
    assert sent[0]["device"] == "cuda"


def test_scorer_name_without_memory_address():
    bound = functools.partial(stub_scorer, rng=np.random.default_rng(0))
    name = bench._scorer_name(bound)
    assert "0x" not in name
    assert name == bench._scorer_name(functools.partial(stub_scorer, rng=np.random.default_rng(0)))


def test_table_order_checks_requested_rows_only(tmp_path):
    archs = all_architectures()
    table = AccuracyTable(index=np.array([0, 1]), arch=[archs[0], archs[7]], columns={"acc": np.array([1.0, 2.0])})
    bench._check_table_order(table, [0], tmp_path / "acc.csv")
    with pytest.raises(ValueError, match=r"acc\.csv has architecture .* at index 1, but the benchmark has"):
        bench._check_table_order(table, [0, 1], tmp_path / "acc.csv")

    invalid = AccuracyTable(index=np.array([2]), arch=["garbage"], columns={"acc": np.array([1.0])})
    with pytest.raises(ValueError, match=r"acc\.csv has an invalid architecture at index 2"):
        bench._check_table_order(invalid, [2], tmp_path / "acc.csv")


def test_near_bench_keeps_foreign_summary(tmp_path, monkeypatch):
    from layersize.cli.bench import main

    monkeypatch.setattr(bench, "_default_scorer", lambda classifier=True: stub_scorer)
    images, accuracy = write_bench_inputs(tmp_path)
    out = tmp_path / "out"
    common = ["--images", str(images), "--out", str(out), "--repetitions", "2", "--bootstrap", "20",
              "--no-progress"]
    out.mkdir()
    (out / "summary.json").write_text('{"mine": 1}')
    result = CliRunner().invoke(main, ["--indices", "0", *common])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text()) == {"mine": 1}

    # A rerun that scores nothing new leaves a valid summary in place.
    with_table = CliRunner().invoke(main, ["--indices", "0,1,2,3", "--accuracy", str(accuracy), *common])
    assert with_table.exit_code == 0, with_table.output
    again = CliRunner().invoke(main, ["--indices", "0,1", *common])
    assert again.exit_code == 0, again.output
    assert (out / "summary.json").is_file()
    assert (out / "near_vs_accuracy.png").is_file()


def test_near_bench_rejects_empty_indices(tmp_path):
    from layersize.cli.bench import main

    images, _ = write_bench_inputs(tmp_path)
    result = CliRunner().invoke(main, ["--indices", ",", "--images", str(images), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "expected at least one index" in result.output


def test_near_bench_needs_one_selection(tmp_path):
    from layersize.cli.bench import main

    np.savez(tmp_path / "images.npz", images=np.zeros((12, 32, 32, 3), np.uint8))
    result = CliRunner().invoke(main, ["--images", str(tmp_path / "images.npz")])
    assert result.exit_code == 2
    assert "exactly one of --sample, --indices and --archs" in result.output


def test_cli_quiets_dask_info_logs():
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    import logging

    from layersize.cli.bench import _quiet_dask_logs

    dask_logger = logging.getLogger("distributed")
    previous = dask_logger.level
    dask_logger.setLevel(logging.INFO)
    try:
        _quiet_dask_logs()
        level = dask_logger.level
    finally:
        dask_logger.setLevel(previous)

    assert level == logging.WARNING
