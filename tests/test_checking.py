"""Tests for training networks around an estimate of hidden-layer widths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from layersize.checking import (
    AtomicEnergyModel,
    CheckResult,
    RunResult,
    Variant,
    VariantResult,
    _EnergyTask,
    check_widths,
    make_variants,
    plot_check,
    split_indices,
    validate_factors,
    validate_split,
)
from layersize.data import AtomicFeatures
from layersize.descriptors import SN2_PARAMETERS
from layersize.images import ImageData
from layersize.report import check_document

# Small runs on one thread keep the whole file at a few seconds.
FAST = {"n_seeds": 1, "max_epochs": 2, "threads": 1}


def make_atomic(
    n_structures: int = 40,
    n_features: int = 6,
    seed: int = 0,
    constant_features: bool = False,
    missing_energies: int = 0,
) -> AtomicFeatures:
    """Build descriptor rows of random structures whose energy is a sum of atomic terms."""
    rng = np.random.default_rng(seed)
    atoms_per_structure = rng.integers(2, 6, size=n_structures)
    structure_index = np.repeat(np.arange(n_structures), atoms_per_structure)
    # Shuffle the rows, so that the code cannot rely on atoms sorted by structure.
    structure_index = rng.permutation(structure_index)
    n_atoms = structure_index.size
    features = rng.normal(size=(n_atoms, n_features)).astype(np.float32)
    if constant_features:
        features[:] = 0.0
    numbers = rng.choice([1, 6], size=n_atoms)
    atomic_energy = np.tanh(features[:, 0]) - 2.0 * (numbers == 6) + 0.1 * rng.normal(size=n_atoms)
    energies = np.bincount(structure_index, weights=atomic_energy, minlength=n_structures)
    energies[:missing_energies] = np.nan
    return AtomicFeatures(
        features=features,
        numbers=numbers,
        structure_index=structure_index,
        energies=energies,
        atoms_per_structure=atoms_per_structure,
        shift=np.zeros(n_features),
        scale=np.ones(n_features),
        element=None,
        source="synthetic",
        parameters=SN2_PARAMETERS,
    )


def make_images(n_images: int = 300, seed: int = 0) -> ImageData:
    """Build three well-separated Gaussian classes with the labels 3, 7 and 9."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.normal(size=(3, 8))
    classes = rng.integers(0, 3, size=n_images)
    features = (centres[classes] + rng.normal(size=(n_images, 8))).astype(np.float32)
    labels = np.array([3, 7, 9])[classes].astype(np.int64)
    return ImageData(features=features, labels=labels, shape=None, source=Path("synthetic.npz"))


# --- energy model -----------------------------------------------------------------


def first_feature_network(scale: float = 1.0) -> nn.Module:
    """Return a Linear(2, 1) whose output is ``scale`` times the first feature."""
    network = nn.Linear(2, 1)
    with torch.no_grad():
        network.weight.copy_(torch.tensor([[scale, 0.0]]))
        network.bias.zero_()
    return network


def test_energy_model_sums_atoms_per_structure():
    model = AtomicEnergyModel([first_feature_network()])
    # Atoms 0 and 2 belong to structure 0, atom 1 to structure 1.
    features = torch.tensor([[1.0, 5.0], [10.0, 5.0], [2.0, 5.0]])
    structure_index = torch.tensor([0, 1, 0])

    energies = model(features, structure_index, 2)

    assert energies.shape == (2,)
    assert energies.tolist() == [3.0, 10.0]


def test_energy_model_uses_each_elements_network():
    model = AtomicEnergyModel([first_feature_network(1.0), first_feature_network(100.0)])
    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    structure_index = torch.tensor([0, 0, 1])
    element_index = torch.tensor([0, 1, 1])

    energies = model(features, structure_index, 2, element_index)

    assert energies.tolist() == [201.0, 300.0]


def test_energy_model_without_element_index_raises():
    model = AtomicEnergyModel([first_feature_network(), first_feature_network()])
    with pytest.raises(ValueError, match="element_index"):
        model(torch.zeros(2, 2), torch.tensor([0, 0]), 1)


def test_energy_task_predicts_mean_atomic_output():
    """The per-structure prediction is Σ outputs / N_atoms, the unit of the targets."""
    atomic = make_atomic(n_features=2)
    task = _EnergyTask(atomic, (0.8, 0.1, 0.1), seed=0, networks="pooled")
    model = AtomicEnergyModel([first_feature_network()])
    structures = torch.tensor([0, 5, 7])

    predicted = task._predict(model, structures)

    for position, structure in enumerate(structures.tolist()):
        rows = atomic.structure_index == structure
        expected = atomic.features[rows, 0].sum() / atomic.atoms_per_structure[structure]
        assert predicted[position].item() == pytest.approx(expected, abs=1e-5)


def test_energy_task_gathers_every_atom_once():
    atomic = make_atomic()
    task = _EnergyTask(atomic, (0.8, 0.1, 0.1), seed=0, networks="pooled")
    structures = torch.tensor([3, 0, 11])

    rows, position = task.gather(structures)

    assert rows.numel() == int(atomic.atoms_per_structure[[3, 0, 11]].sum())
    assert len(set(rows.tolist())) == rows.numel()
    for row, slot in zip(rows.tolist(), position.tolist()):
        # Rows index the task's copy, which is sorted by structure.
        owner = int(np.sort(atomic.structure_index, kind="stable")[row])
        assert owner == structures[slot].item()


def test_energy_targets_standardised_on_training_set():
    atomic = make_atomic(n_structures=60)
    task = _EnergyTask(atomic, (0.8, 0.1, 0.1), seed=0, networks="pooled", energy_reference="mean")
    train = task.splits["train"]

    per_atom = atomic.energies / atomic.atoms_per_structure
    assert task.reference_energies.tolist() == [0.0, 0.0]
    assert task.energy_mean == pytest.approx(per_atom[train.numpy()].mean())
    assert task.targets[train].mean().item() == pytest.approx(0.0, abs=1e-5)
    assert task.targets[train].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)


def test_energy_reference_fit_recovers_elements():
    atomic = make_atomic(n_structures=60)
    n_hydrogen = np.bincount(atomic.structure_index, weights=atomic.numbers == 1)
    n_carbon = np.bincount(atomic.structure_index, weights=atomic.numbers == 6)
    rng = np.random.default_rng(1)
    energies = -13.6 * n_hydrogen - 1030.0 * n_carbon + 0.01 * rng.normal(size=60)
    shifted = AtomicFeatures(**{**atomic.__dict__, "energies": energies})

    task = _EnergyTask(shifted, (0.8, 0.1, 0.1), seed=0, networks="pooled", energy_reference="elements")
    train = task.splits["train"]

    assert task.reference_energies == pytest.approx([-13.6, -1030.0], abs=0.02)
    # The residual is the noise divided by the atom count: centi-eV, not keV.
    assert task.energy_std < 0.01
    assert task.targets[train].mean().item() == pytest.approx(0.0, abs=1e-5)
    assert task.targets[train].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)


# --- splits -----------------------------------------------------------------------


def test_split_indices_disjoint_and_complete():
    train, validation, test = split_indices(103, (0.8, 0.1, 0.1), seed=4)

    assert (len(train), len(validation), len(test)) == (83, 10, 10)
    assert set(train).isdisjoint(validation)
    assert set(train).isdisjoint(test)
    assert set(validation).isdisjoint(test)
    assert sorted([*train, *validation, *test]) == list(range(103))


def test_split_indices_depend_on_seed():
    first = split_indices(100, seed=0)
    again = split_indices(100, seed=0)
    other = split_indices(100, seed=1)

    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[2], other[2])


def test_potential_split_keeps_structures_whole():
    atomic = make_atomic(n_structures=50, missing_energies=5)
    task = _EnergyTask(atomic, (0.8, 0.1, 0.1), seed=0, networks="pooled")
    parts = {name: set(indices.tolist()) for name, indices in task.splits.items()}

    assert parts["train"].isdisjoint(parts["validation"])
    assert parts["train"].isdisjoint(parts["test"])
    assert parts["validation"].isdisjoint(parts["test"])
    # The 5 structures without an energy are in no split.
    assert set().union(*parts.values()) == set(range(5, 50))
    sorted_owner = np.sort(atomic.structure_index, kind="stable")
    for name, structures in task.splits.items():
        rows, _ = task.gather(structures)
        owners = set(sorted_owner[rows.numpy()].tolist())
        assert owners == parts[name], name


@pytest.mark.parametrize("split", [(0.8, 0.2, 0.0), (0.8, 0.0, 0.2), (0.8, -0.1, 0.3), (0.5, 0.5)])
def test_split_indices_invalid_fractions_raise(split):
    with pytest.raises(ValueError, match="split"):
        split_indices(100, split)


def test_split_indices_too_few_items_raises():
    with pytest.raises(ValueError, match="at least 3"):
        split_indices(2)


# --- variants ---------------------------------------------------------------------


def test_variants_three_layers_default_factors():
    variants = make_variants([52, 58, 60])

    assert len(variants) == 7
    assert variants[0].widths == (52, 58, 60)
    assert variants[0].label == "estimate"
    assert [variant.widths for variant in variants[1:]] == [
        (26, 58, 60), (104, 58, 60), (52, 29, 60), (52, 116, 60), (52, 58, 30), (52, 58, 120),
    ]
    assert variants[2].label == "layer 1 ×2"


def test_variants_duplicate_widths_trained_once():
    # 0.5 · 1 rounds to 1, which is the estimate again.
    variants = make_variants([1, 4], factors=(0.5, 2))

    assert [variant.widths for variant in variants] == [(1, 4), (2, 4), (1, 2), (1, 8)]


def test_variants_estimate_first_without_factor_one():
    variants = make_variants([10], factors=(3,))

    assert [variant.widths for variant in variants] == [(10,), (30,)]


@pytest.mark.parametrize("factors", [(0.5, 0.0, 2.0), (-1.0, 2.0), (float("nan"),), (float("inf"),)])
def test_variants_invalid_factors_raise(factors):
    with pytest.raises(ValueError, match="factor"):
        make_variants([8, 8], factors)


def test_check_invalid_factors_raise_before_training():
    with pytest.raises(ValueError, match="positive"):
        check_widths(make_atomic(), [4, 4], factors=(0, 1), **FAST)


@pytest.mark.parametrize("widths", [[], [4, 0], [4, 2.5]])
def test_variants_invalid_widths_raise(widths):
    with pytest.raises(ValueError, match="width"):
        make_variants(widths)


# --- training ---------------------------------------------------------------------


def test_check_table_lists_every_variant():
    result = check_widths(make_atomic(), [6, 5, 4], **FAST)
    table = result.format_table()
    rows = table.splitlines()

    assert len(result.variants) == 7
    for variant in result.variants:
        assert any(row.startswith(variant.variant.label + " ") for row in rows), variant.variant.label
    assert "6-5-4" in table
    assert "12-5-4" in table
    assert "6-5-2" in table
    assert "RMSE meV/atom" in rows[0]


def test_check_reports_potential_fields():
    result = check_widths(make_atomic(), [6, 5], **FAST)
    document = result.to_dict()

    assert document["task"] == "potential"
    assert document["forces_trained"] is False
    assert document["settings"]["networks"] == "pooled"
    assert document["settings"]["elements"] == ["H", "C"]
    assert document["metric"] == {"name": "energy RMSE", "unit": "meV/atom"}
    assert document["settings"]["energy_reference"] == "elements"
    assert set(document["settings"]["reference_energies_ev"]) == {"H", "C"}
    estimate = document["variants"][0]
    assert estimate["widths"] == [6, 5]
    # 6 inputs -> 6 -> 5 -> 1, weights and biases.
    assert estimate["n_parameters"] == 6 * 6 + 6 + 6 * 5 + 5 + 5 + 1
    assert estimate["runs"][0]["epochs_run"] == 2
    assert math.isfinite(estimate["test_metric_mean"])
    # The RMSE in meV/atom is the root of the standardised MSE times σ_r.
    run = estimate["runs"][0]
    scale = 1000.0 * document["settings"]["residual_per_atom_std_ev"]
    assert run["test_metric"] == pytest.approx(scale * math.sqrt(run["test_loss"]))


def test_check_per_element_counts_all_networks():
    result = check_widths(make_atomic(), [6, 5], networks="per_element", **FAST)

    assert result.settings["networks"] == "per_element"
    assert result.estimate_result.n_parameters == 2 * (6 * 6 + 6 + 6 * 5 + 5 + 5 + 1)


def test_check_fixed_seed_reproducible():
    options = {"n_seeds": 2, "max_epochs": 3, "threads": 1}
    first = check_widths(make_atomic(), [6, 5], seed=3, **options)
    second = check_widths(make_atomic(), [6, 5], seed=3, **options)
    other = check_widths(make_atomic(), [6, 5], seed=4, **options)

    def scores(result):
        return [(run.test_loss, run.test_metric, run.epochs_run) for variant in result.variants for run in variant.runs]

    assert scores(first) == scores(second)
    assert scores(first) != scores(other)


def test_check_early_stopping_stops_after_patience():
    # Inputs that are all zero leave the network a constant output, which starts
    # at the training mean of the targets, so the validation loss soon stops falling.
    atomic = make_atomic(n_structures=60, constant_features=True)
    result = check_widths(atomic, [4], factors=(1,), n_seeds=2, max_epochs=200, patience=3, threads=1)

    for run in result.estimate_result.runs:
        assert run.stopped_early
        assert run.epochs_run < 200
        assert run.epochs_run == run.best_epoch + 3


def test_check_epoch_limit_reported():
    result = check_widths(make_atomic(), [4], factors=(1,), n_seeds=1, max_epochs=2, patience=50, threads=1)
    run = result.estimate_result.runs[0]

    assert run.epochs_run == 2
    assert not run.stopped_early
    assert "reached the epoch limit (2)" in result.format_table()


def test_check_training_lowers_test_error():
    atomic = make_atomic(n_structures=80)
    short = check_widths(atomic, [8], factors=(1,), n_seeds=1, max_epochs=1, threads=1)
    longer = check_widths(atomic, [8], factors=(1,), n_seeds=1, max_epochs=40, threads=1)

    assert longer.estimate_result.test_metric[0] < short.estimate_result.test_metric[0]


def test_check_classification_learns_classes():
    result = check_widths(make_images(), [16], factors=(0.5, 1), n_seeds=2, max_epochs=30, threads=1)

    assert result.task == "classification"
    assert result.settings["n_classes"] == 3
    assert [variant.variant.widths for variant in result.variants] == [(16,), (8,)]
    # 8 inputs -> 16 -> 3 classes.
    assert result.estimate_result.n_parameters == 8 * 16 + 16 + 16 * 3 + 3
    accuracy, _ = result.estimate_result.test_metric
    assert accuracy > 90.0
    assert "accuracy %" in result.format_table()


def test_check_images_without_labels_raise():
    images = make_images()
    unlabelled = ImageData(features=images.features, labels=None, shape=None, source=images.source)
    with pytest.raises(ValueError, match="no labels"):
        check_widths(unlabelled, [4], **FAST)


def test_check_forces_not_implemented():
    with pytest.raises(NotImplementedError, match="forces"):
        check_widths(make_atomic(), [4], forces=True, **FAST)


def test_check_single_element_features_raise():
    atomic = make_atomic()
    carbon = AtomicFeatures(**{**atomic.__dict__, "element": "C"})
    with pytest.raises(ValueError, match="every atom"):
        check_widths(carbon, [4], **FAST)


def test_check_restores_thread_count():
    before = torch.get_num_threads()
    check_widths(make_atomic(), [4], factors=(1,), n_seeds=1, max_epochs=1, threads=1)

    assert torch.get_num_threads() == before


def test_check_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_widths(make_atomic(), [4], factors=(1,), n_seeds=1, max_epochs=1, threads=1)

    assert torch.equal(torch.rand(3), expected)


def test_plot_check_writes_image(tmp_path):
    result = check_widths(make_atomic(), [4, 3], n_seeds=2, max_epochs=1, threads=1)
    path = plot_check(result, tmp_path / "check.png")

    assert path == tmp_path / "check.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [item.name for item in tmp_path.iterdir()] == ["check.png"]


# --- validation of options and data -------------------------------------------------


def test_validate_split_divides_by_sum():
    assert validate_split((8, 1, 1)) == pytest.approx((0.8, 0.1, 0.1))


def test_validate_factors_drops_repeats():
    assert validate_factors([2, 0.5, 2.0, 1]) == (2.0, 0.5, 1.0)


@pytest.mark.parametrize("factors", [(), ("half",)])
def test_validate_factors_empty_or_text_raise(factors):
    with pytest.raises(ValueError, match="factor"):
        validate_factors(factors)


def test_check_without_energies_raises():
    atomic = make_atomic(n_structures=10, missing_energies=8)
    with pytest.raises(ValueError, match="2 structures with an energy"):
        check_widths(atomic, [4], **FAST)


def test_check_runs_on_one_thread_by_default():
    result = check_widths(make_atomic(), [4], factors=(1,), n_seeds=1, max_epochs=1)

    assert result.settings["threads"] == 1


def test_check_document_replaces_nan_with_null():
    diverged = RunResult(seed=1, test_loss=float("nan"), test_metric=float("nan"), validation_loss=float("nan"),
                         epochs_run=3, best_epoch=0, stopped_early=True, seconds=0.1)
    result = CheckResult(
        task="potential", estimate=(4,),
        variants=(VariantResult(variant=Variant((4,)), n_parameters=10, runs=(diverged, diverged)),),
        metric_name="energy RMSE", metric_unit="meV/atom", settings={"max_epochs": 3},
    )

    document = check_document(result)
    text = json.dumps(document, allow_nan=False)

    assert document["variants"][0]["test_loss_mean"] is None
    assert document["variants"][0]["runs"][0]["test_metric"] is None
    assert document["table"][0].startswith("variant")
    assert "NaN" not in text
