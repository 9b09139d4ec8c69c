"""Check an estimate of hidden-layer widths by training networks around it.

The estimate w = (w_1, …, w_L) is one variant. For each layer k and each
factor f ≠ 1 (by default 0.5 and 2), one more variant sets layer k to
round(f · w_k) and keeps the other layers at their estimates. Variants with the
same widths are trained once, so three layers and the factors 0.5, 1 and 2 give
7 variants. Every variant is trained from several seeds on one seeded
train/validation/test split, with Adam, mini-batches and early stopping on the
validation loss, and is then scored on the test set with the weights of its best
validation epoch.

Potentials
----------
An atomic network maps the descriptors G_i of atom i to a contribution y_i, and
the contributions of a structure's atoms are summed with ``index_add``. Before
fitting, each structure's energy E_s (eV) is reduced by reference energies ε_Z
of its elements and divided by its number of atoms N_s:

    r_s = (E_s − Σ_Z n_Z,s ε_Z) / N_s,    t_s = (r_s − r̄) / σ_r,

with r̄ and σ_r the mean and standard deviation over the training structures.
With ``energy_reference="elements"`` (the default) the ε_Z are fitted by least
squares, E_s ≈ Σ_Z n_Z,s ε_Z, on the training structures. The energy per atom of
a data set with many compositions varies mostly with composition (7.3 eV/atom
standard deviation in the S_N2 set, 0.23 eV/atom after the fit), so this keeps
the networks from spending their capacity on it. With ``"mean"`` all ε_Z are 0
and r̄ is the mean energy per atom.

The loss is the mean squared error of (Σ_{i∈s} y_i) / N_s against t_s, so the
predicted energy in eV is E_pred,s = Σ_Z n_Z,s ε_Z + N_s · r̄ + σ_r · Σ_{i∈s} y_i:
each atomic output is its atom's energy, less ε_Z and r̄, divided by σ_r. The
test error is reported as the energy RMSE in meV/atom, σ_r · √MSE. Forces are
not trained, because the package does not compute derivatives of the
descriptors with respect to atomic positions.

``networks="pooled"`` trains one network for all atoms, the setting that
``near-size`` sizes by default. ``networks="per_element"`` trains one network
per element present (Behler–Parrinello style), all with the same widths, and
re-standardises each element's descriptor columns over that element's atoms, as
``near-size --element`` does. A total energy needs every atom, so both settings
take the descriptors of all atoms.

Classification
--------------
A network with one output per class is trained with cross-entropy on rows of
image pixels, and the test loss and accuracy are reported.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from tqdm.auto import tqdm

from layersize.atomic import atomic_path
from layersize.data import AtomicFeatures
from layersize.images import ImageData
from layersize.layer_score import seed_for
from layersize.nets import build_mlp, get_activation, get_initialization

__all__ = [
    "DEFAULT_BATCH_SAMPLES",
    "DEFAULT_BATCH_STRUCTURES",
    "DEFAULT_FACTORS",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_MAX_EPOCHS",
    "DEFAULT_N_SEEDS",
    "DEFAULT_PATIENCE",
    "DEFAULT_SPLIT",
    "AtomicEnergyModel",
    "CheckResult",
    "RunResult",
    "Variant",
    "VariantResult",
    "check_widths",
    "make_variants",
    "plot_check",
    "split_indices",
    "validate_factors",
    "validate_split",
]

logger = logging.getLogger(__name__)

DEFAULT_FACTORS: tuple[float, ...] = (0.5, 1.0, 2.0)
DEFAULT_N_SEEDS = 3
DEFAULT_SPLIT: tuple[float, float, float] = (0.8, 0.1, 0.1)
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_PATIENCE = 10
DEFAULT_MAX_EPOCHS = 60
"""Epoch limit per run. It keeps the 21 runs of a three-layer check of the
S_N2 set (about 4,000 structures) at several minutes on a CPU; see docs/check.md
for the measured times. Runs that have not stopped early report it as a hit limit."""
DEFAULT_BATCH_STRUCTURES = 32
DEFAULT_BATCH_SAMPLES = 128

# Rows per forward pass when a whole split is evaluated, to bound memory.
_EVALUATION_CHUNK_ROWS = 65536

NetworkMode = Literal["pooled", "per_element"]
NETWORK_MODES: tuple[str, ...] = ("pooled", "per_element")
EnergyReference = Literal["elements", "mean"]
ENERGY_REFERENCES: tuple[str, ...] = ("elements", "mean")


# --- variants and splits ----------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One set of hidden-layer widths to train.

    Attributes
    ----------
    widths : tuple of int
        Width of each hidden layer.
    layer : int or None
        1-based index of the layer changed from the estimate, None for the
        estimate itself.
    factor : float
        Factor applied to the estimate of ``layer`` (1.0 for the estimate).
    """

    widths: tuple[int, ...]
    layer: int | None = None
    factor: float = 1.0

    @property
    def label(self) -> str:
        if self.layer is None:
            return "estimate"
        return f"layer {self.layer} ×{self.factor:g}"


def _validate_widths(widths: Sequence[int]) -> tuple[int, ...]:
    values = tuple(widths)
    if not values:
        raise ValueError("widths is empty. Give the width of at least one hidden layer, e.g. [52, 58, 60].")
    for value in values:
        if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
            raise ValueError(f"Every width must be a positive integer, got {list(values)}.")
    return tuple(int(value) for value in values)


def validate_factors(factors: Sequence[float]) -> tuple[float, ...]:
    """Check multiples of an estimate and drop repeats.

    Parameters
    ----------
    factors : sequence of float

    Returns
    -------
    tuple of float
        The factors as floats, in the given order, each once.

    Raises
    ------
    ValueError
        If ``factors`` is empty or a factor is not a positive finite number.
    """
    values: list[float] = []
    for factor in factors:
        try:
            value = float(factor)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"Every factor must be a positive finite number, got {factor!r} in "
                f"{list(factors)}. Use multiples of the estimate such as 0.5, 1, 2."
            )
        if value not in values:
            values.append(value)
    if not values:
        raise ValueError("factors is empty. Give at least one multiple of the estimate, such as 0.5, 1, 2.")
    return tuple(values)


def make_variants(widths: Sequence[int], factors: Sequence[float] = DEFAULT_FACTORS) -> list[Variant]:
    """List the estimate and its one-layer variants, without duplicate widths.

    Parameters
    ----------
    widths : sequence of int
        The estimated width of each hidden layer.
    factors : sequence of float, default=(0.5, 1.0, 2.0)
        Multiples of a layer's estimate. A varied width is round(f · w_k), at
        least 1. The factor 1 gives the estimate, which is always the first
        variant whether or not 1 is listed.

    Returns
    -------
    list of Variant
        The estimate, then layer 1 with each factor ≠ 1 in the given order,
        then layer 2, and so on. A variant whose widths equal an earlier one's
        (for example 0.5 · 1 rounding to 1) is left out.

    Raises
    ------
    ValueError
        If a width is not a positive integer or a factor is not positive.
    """
    estimate = _validate_widths(widths)
    checked = validate_factors(factors)
    variants = [Variant(estimate)]
    seen = {estimate}
    for layer, width in enumerate(estimate, start=1):
        for factor in checked:
            if factor == 1.0:
                continue
            changed = list(estimate)
            changed[layer - 1] = max(1, math.floor(factor * width + 0.5))
            candidate = tuple(changed)
            if candidate in seen:
                logger.info("Skipping layer %d ×%g: widths %s are already a variant", layer, factor, candidate)
                continue
            seen.add(candidate)
            variants.append(Variant(candidate, layer=layer, factor=factor))
    return variants


def validate_split(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Check train, validation and test shares and divide them by their sum.

    Parameters
    ----------
    fractions : (float, float, float)

    Returns
    -------
    (float, float, float)
        The shares, summing to 1.

    Raises
    ------
    ValueError
        If there are not three shares, a share is negative or not finite, or
        the validation or test share is zero.
    """
    try:
        shares = np.asarray(fractions, dtype=float)
    except (TypeError, ValueError):
        shares = np.full(3, np.nan)
    if shares.shape != (3,) or not np.isfinite(shares).all() or (shares < 0).any() or shares.sum() <= 0:
        raise ValueError(
            f"split must be three non-negative fractions (train, validation, test), "
            f"got {tuple(fractions)}. Use for example (0.8, 0.1, 0.1), or --check-split "
            f"0.8,0.1,0.1 on the command line."
        )
    if shares[1] == 0 or shares[2] == 0:
        raise ValueError(
            f"split {tuple(fractions)} leaves no validation or no test data, which early "
            f"stopping and the test score need. Give both a positive share."
        )
    shares = shares / shares.sum()
    return float(shares[0]), float(shares[1]), float(shares[2])


def split_indices(
    n_items: int, fractions: Sequence[float] = DEFAULT_SPLIT, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``range(n_items)`` with a seed and cut it into train, validation and test.

    Parameters
    ----------
    n_items : int
        Number of items to split, at least 3 (structures for a potential,
        images for a classifier).
    fractions : (float, float, float), default=(0.8, 0.1, 0.1)
        Shares of train, validation and test; they are divided by their sum.
    seed : int, default=0

    Returns
    -------
    train, validation, test : numpy.ndarray of int64
        Disjoint, sorted indices that together cover ``range(n_items)``.
        Validation and test get round(share · n) items, at least 1 each, and
        train the rest.

    Raises
    ------
    ValueError
        If there are fewer than 3 items or a fraction is negative or not finite,
        or the validation or test share is zero.
    """
    n_items = int(n_items)
    shares = np.asarray(validate_split(fractions))
    if n_items < 3:
        raise ValueError(
            f"A train/validation/test split needs at least 3 items, got {n_items}. Use more data."
        )
    n_validation = max(1, round(shares[1] * n_items))
    n_test = max(1, round(shares[2] * n_items))
    n_train = n_items - n_validation - n_test
    if n_train < 1:
        raise ValueError(
            f"split {tuple(fractions)} of {n_items} items leaves no training data. "
            f"Use more data or a larger training share."
        )
    order = np.random.default_rng(seed_for(seed, 0)).permutation(n_items)
    train = np.sort(order[:n_train])
    validation = np.sort(order[n_train:n_train + n_validation])
    test = np.sort(order[n_train + n_validation:])
    return train.astype(np.int64), validation.astype(np.int64), test.astype(np.int64)


# --- models -----------------------------------------------------------------------


class AtomicEnergyModel(nn.Module):
    """Sum of atomic network outputs per structure.

    Parameters
    ----------
    networks : sequence of nn.Module
        One network for all atoms, or one per element. Each maps
        (n_atoms, n_features) to (n_atoms, 1).

    Shape:
        - features: (n_atoms, n_features)
        - structure_index: (n_atoms,), int64 in [0, n_structures)
        - element_index: (n_atoms,), int64 in [0, len(networks)); needed with
          more than one network
        - output: (n_structures,), the sum of the outputs of each structure's
          atoms, in the units of the network output
    """

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(networks) < 1:
            raise ValueError("AtomicEnergyModel needs at least one network.")
        self.networks = nn.ModuleList(networks)

    def atomic_outputs(self, features: torch.Tensor, element_index: torch.Tensor | None = None) -> torch.Tensor:
        """Return the output of each atom's network, shape (n_atoms,)."""
        if len(self.networks) == 1:
            return self.networks[0](features).squeeze(-1)
        if element_index is None:
            raise ValueError(
                f"element_index is missing: the model has {len(self.networks)} element "
                f"networks and needs to know which one each atom uses."
            )
        outputs = features.new_zeros(features.shape[0])
        for element, network in enumerate(self.networks):
            rows = torch.nonzero(element_index == element).squeeze(-1)
            if rows.numel():
                outputs = outputs.index_put((rows,), network(features[rows]).squeeze(-1))
        return outputs

    def forward(
        self,
        features: torch.Tensor,
        structure_index: torch.Tensor,
        n_structures: int,
        element_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        atomic = self.atomic_outputs(features, element_index)
        return atomic.new_zeros(int(n_structures)).index_add(0, structure_index, atomic)


def _count_parameters(model: nn.Module) -> int:
    return int(sum(parameter.numel() for parameter in model.parameters()))


# --- training tasks ---------------------------------------------------------------


class _EnergyTask:
    """Structures, per-atom energy targets and batching for an atomic potential."""

    kind = "potential"
    metric_name = "energy RMSE"
    metric_unit = "meV/atom"
    lower_metric_is_better = True

    def __init__(
        self,
        atomic: AtomicFeatures,
        split: Sequence[float],
        seed: int,
        networks: str,
        energy_reference: str = "elements",
    ) -> None:
        structure_index = np.asarray(atomic.structure_index, dtype=np.int64)
        energies = np.asarray(atomic.energies, dtype=np.float64)
        atoms_per_structure = np.asarray(atomic.atoms_per_structure, dtype=np.int64)
        rows_per_structure = np.bincount(structure_index, minlength=energies.size)
        if rows_per_structure.size != energies.size or not np.array_equal(rows_per_structure, atoms_per_structure):
            raise ValueError(
                f"The descriptor rows of {atomic.source!r} do not cover every atom of every "
                f"structure, so total energies cannot be formed. Pass the output of "
                f"load_atomic_features without element."
            )

        usable = np.flatnonzero(np.isfinite(energies))
        if usable.size < 3:
            raise ValueError(
                f"{atomic.source!r} has {usable.size} structures with an energy, and the "
                f"check needs at least 3 for a train/validation/test split. Give a structure "
                f"file whose structures carry total energies (an 'energy' entry or a calculator result)."
            )
        if usable.size < energies.size:
            logger.warning(
                "%d of %d structures of %s have no energy and are left out of the check",
                energies.size - usable.size, energies.size, atomic.source,
            )
        train, validation, test = (usable[part] for part in split_indices(usable.size, split, seed))

        numbers = np.asarray(atomic.numbers)
        self.elements = [int(number) for number in np.unique(numbers)]
        element_index = np.searchsorted(self.elements, numbers)
        composition = np.zeros((energies.size, len(self.elements)))
        np.add.at(composition, (structure_index, element_index), 1.0)
        self.energy_reference = energy_reference
        self.reference_energies = _fit_reference_energies(
            composition, energies, train, energy_reference, [_symbol(number) for number in self.elements]
        )

        residual = (energies - composition @ self.reference_energies) / atoms_per_structure
        self.energy_mean = float(residual[train].mean())
        self.energy_std = float(residual[train].std())
        if self.energy_std <= 1e-12 * max(1.0, float(np.abs(residual[train]).max())):
            logger.warning(
                "The training energies are fitted exactly by the reference energies; scaling targets by 1 eV"
            )
            self.energy_std = 1.0
        targets = (residual - self.energy_mean) / self.energy_std

        # Atoms sorted by structure, so that a structure's atoms are one slice.
        order = np.argsort(structure_index, kind="stable")
        features = np.asarray(atomic.features, dtype=np.float32)[order]
        element_index = element_index[order]
        if networks == "per_element":
            features = _standardise_per_element(features, element_index, len(self.elements))

        self.networks = networks
        self.features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.element_index = torch.from_numpy(element_index.astype(np.int64))
        self.targets = torch.from_numpy(targets.astype(np.float32))
        self.counts = torch.from_numpy(atoms_per_structure)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(atoms_per_structure)[:-1]]).astype(np.int64))
        self.splits = {
            "train": torch.from_numpy(train),
            "validation": torch.from_numpy(validation),
            "test": torch.from_numpy(test),
        }
        self.n_inputs = int(self.features.shape[1])

    def describe(self) -> dict[str, Any]:
        return {
            "networks": self.networks,
            "elements": [_symbol(number) for number in self.elements],
            "forces_trained": False,
            "energy_reference": self.energy_reference,
            "reference_energies_ev": {
                _symbol(number): float(value) for number, value in zip(self.elements, self.reference_energies)
            },
            "residual_per_atom_mean_ev": self.energy_mean,
            "residual_per_atom_std_ev": self.energy_std,
            "split_unit": "structures",
            "split_sizes": {name: int(part.numel()) for name, part in self.splits.items()},
        }

    def build_model(self, widths: Sequence[int], activation: str, init: str, generator: torch.Generator) -> nn.Module:
        count = 1 if self.networks == "pooled" else len(self.elements)
        initialise = get_initialization(init)
        members = []
        for _ in range(count):
            network = _build_without_global_rng(self.n_inputs, widths, activation, 1)
            initialise(network, generator)
            members.append(network)
        return AtomicEnergyModel(members)

    def gather(self, structures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the atom rows of ``structures`` and each row's position in ``structures``."""
        counts = self.counts[structures]
        position = torch.repeat_interleave(torch.arange(structures.numel()), counts)
        first_row = torch.cumsum(counts, 0) - counts
        rows = self.offsets[structures][position] + torch.arange(position.numel()) - first_row[position]
        return rows, position

    def _predict(self, model: nn.Module, structures: torch.Tensor) -> torch.Tensor:
        """Return the standardised per-atom energy of each structure, shape (n_structures,)."""
        rows, position = self.gather(structures)
        sums = model(self.features[rows], position, structures.numel(), self.element_index[rows])
        return sums / self.counts[structures]

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        train = self.splits["train"]
        order = train[torch.randperm(train.numel(), generator=generator)]
        yield from torch.split(order, batch_size)

    def loss(self, model: nn.Module, structures: torch.Tensor) -> torch.Tensor:
        return functional.mse_loss(self._predict(model, structures), self.targets[structures])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> tuple[float, float]:
        """Return the MSE of standardised per-atom energies and the RMSE in meV/atom."""
        structures = self.splits[split]
        mean_atoms = max(1.0, float(self.counts[structures].float().mean()))
        chunk = max(1, int(_EVALUATION_CHUNK_ROWS / mean_atoms))
        squared_error = 0.0
        for part in torch.split(structures, chunk):
            error = self._predict(model, part) - self.targets[part]
            squared_error += float((error.double() ** 2).sum())
        mse = squared_error / structures.numel()
        return mse, 1000.0 * self.energy_std * math.sqrt(mse)


class _ClassificationTask:
    """Labelled rows and batching for a classifier."""

    kind = "classification"
    metric_name = "accuracy"
    metric_unit = "%"
    lower_metric_is_better = False

    def __init__(self, features: np.ndarray, labels: np.ndarray, split: Sequence[float], seed: int) -> None:
        rows = np.asarray(features, dtype=np.float32)
        if rows.ndim != 2:
            raise ValueError(f"features must have shape (n_samples, n_features), got shape {rows.shape}.")
        if not np.isfinite(rows).all():
            raise ValueError("features contain NaN or infinite values. Check the input data.")
        values = np.asarray(labels)
        if values.shape != (rows.shape[0],):
            raise ValueError(
                f"labels must have shape ({rows.shape[0]},), one per row of features, got shape {values.shape}."
            )
        self.classes, encoded = np.unique(values, return_inverse=True)
        if self.classes.size < 2:
            raise ValueError(f"A classifier needs at least 2 classes, got {self.classes.size}.")
        train, validation, test = split_indices(rows.shape[0], split, seed)
        self.features = torch.from_numpy(np.ascontiguousarray(rows))
        self.labels = torch.from_numpy(encoded.reshape(-1).astype(np.int64))
        self.splits = {
            "train": torch.from_numpy(train),
            "validation": torch.from_numpy(validation),
            "test": torch.from_numpy(test),
        }
        self.n_inputs = int(rows.shape[1])

    def describe(self) -> dict[str, Any]:
        return {
            "n_classes": int(self.classes.size),
            "split_unit": "samples",
            "split_sizes": {name: int(part.numel()) for name, part in self.splits.items()},
        }

    def build_model(self, widths: Sequence[int], activation: str, init: str, generator: torch.Generator) -> nn.Module:
        network = _build_without_global_rng(self.n_inputs, widths, activation, int(self.classes.size))
        get_initialization(init)(network, generator)
        return network

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        train = self.splits["train"]
        order = train[torch.randperm(train.numel(), generator=generator)]
        yield from torch.split(order, batch_size)

    def loss(self, model: nn.Module, rows: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(model(self.features[rows]), self.labels[rows])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> tuple[float, float]:
        """Return the mean cross-entropy and the accuracy in per cent."""
        indices = self.splits[split]
        total_loss = 0.0
        correct = 0
        for part in torch.split(indices, _EVALUATION_CHUNK_ROWS):
            logits = model(self.features[part])
            total_loss += float(functional.cross_entropy(logits, self.labels[part], reduction="sum"))
            correct += int((logits.argmax(dim=1) == self.labels[part]).sum())
        return total_loss / indices.numel(), 100.0 * correct / indices.numel()


def _fit_reference_energies(
    composition: np.ndarray, energies: np.ndarray, train: np.ndarray, reference: str, symbols: list[str]
) -> np.ndarray:
    """Return the reference energy of each element in eV, shape (n_elements,).

    ``"elements"`` fits E_s ≈ Σ_Z n_Z,s ε_Z by least squares over the training
    structures. ``"mean"`` returns zeros, which leaves the mean energy per atom
    as the only shift.
    """
    if reference == "mean":
        return np.zeros(composition.shape[1])
    absent = [symbol for symbol, count in zip(symbols, composition[train].sum(axis=0)) if count == 0]
    if absent:
        # NOTE: least squares sets the reference of an element without training
        # atoms to 0 eV, so structures with it are predicted with a large offset.
        logger.warning(
            "No training structure contains %s, so the reference energy of %s is 0 eV",
            ", ".join(absent), "it" if len(absent) == 1 else "them",
        )
    solution, _, rank, _ = np.linalg.lstsq(composition[train], energies[train], rcond=None)
    if rank < composition.shape[1]:
        logger.info(
            "The training compositions determine only %d of %d element reference energies; "
            "using the least-norm solution",
            rank, composition.shape[1],
        )
    return solution


def _build_without_global_rng(n_inputs: int, widths: Sequence[int], activation: str, n_outputs: int) -> nn.Module:
    """Build an MLP and restore torch's global generator, which ``nn.Linear`` draws its default weights from.

    The caller overwrites those weights from its own generator.
    """
    with torch.random.fork_rng(devices=[]):
        return build_mlp(n_inputs, widths, activation, n_outputs=n_outputs)


def _standardise_per_element(features: np.ndarray, element_index: np.ndarray, n_elements: int) -> np.ndarray:
    """Give each descriptor column zero mean and unit standard deviation over each element's atoms.

    A column that is constant for an element keeps scale 1, the rule of
    :func:`layersize.descriptors.scale_descriptors`.
    """
    result = np.empty_like(features, dtype=np.float64)
    for element in range(n_elements):
        rows = element_index == element
        values = features[rows].astype(np.float64)
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std = np.where(std <= 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0, std)
        result[rows] = (values - mean) / std
    return result.astype(np.float32)


def _symbol(number: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(number)]


# --- training ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One training run of one variant from one seed.

    Attributes
    ----------
    seed : int
        Seed of the weight initialisation and the batch order.
    test_loss : float
        Test loss with the best-validation weights: MSE of standardised
        per-atom energies for a potential, mean cross-entropy for a classifier.
    test_metric : float
        Energy RMSE in meV/atom for a potential, accuracy in per cent for a
        classifier.
    validation_loss : float
        Best validation loss.
    epochs_run : int
        Epochs trained before early stopping or the epoch limit.
    best_epoch : int
        Epoch whose weights were tested; 0 means no epoch improved on the
        initial weights.
    stopped_early : bool
        False when the run reached the epoch limit before ``patience`` epochs
        without improvement.
    seconds : float
        Wall time of training and testing.
    """

    seed: int
    test_loss: float
    test_metric: float
    validation_loss: float
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "test_loss": self.test_loss,
            "test_metric": self.test_metric,
            "validation_loss": self.validation_loss,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
        }


def _train_once(
    task: _EnergyTask | _ClassificationTask,
    widths: Sequence[int],
    seed: int,
    *,
    activation: str,
    init: str,
    learning_rate: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[RunResult, int]:
    """Train one network with early stopping, test it, and return the result and its parameter count.

    ``on_epoch(epoch, validation_loss)`` is called after every epoch, for progress display.
    """
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    model = task.build_model(widths, activation, init, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

    model.eval()
    best_loss, _ = task.evaluate(model, "validation")
    best_state = copy.deepcopy(model.state_dict())
    best_epoch = 0
    epochs_run = 0
    stopped_early = False
    for epoch in range(1, max_epochs + 1):
        model.train()
        for batch in task.batches(batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss(model, batch)
            loss.backward()
            optimizer.step()
        model.eval()
        validation_loss, _ = task.evaluate(model, "validation")
        epochs_run = epoch
        if on_epoch is not None:
            on_epoch(epoch, validation_loss)
        # A NaN loss never compares as smaller, so a diverged run counts as
        # not improving and stops after `patience` epochs.
        if validation_loss < best_loss:
            best_loss = validation_loss
            best_state = copy.deepcopy(model.state_dict())
            best_epoch = epoch
        elif epoch - best_epoch >= patience:
            stopped_early = True
            break

    model.load_state_dict(best_state)
    model.eval()
    test_loss, test_metric = task.evaluate(model, "test")
    result = RunResult(
        seed=seed,
        test_loss=test_loss,
        test_metric=test_metric,
        validation_loss=best_loss,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - started,
    )
    return result, _count_parameters(model)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count inside the block and restore it afterwards."""
    if threads is None:
        yield
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads}. Leave it as None to keep torch's setting.")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --- results ----------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Return the mean and the sample standard deviation (NaN for one value)."""
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return float(array.mean()), float("nan")
    return float(array.mean()), float(array.std(ddof=1))


@dataclass(frozen=True)
class VariantResult:
    """All runs of one variant."""

    variant: Variant
    n_parameters: int
    runs: tuple[RunResult, ...]

    @property
    def test_loss(self) -> tuple[float, float]:
        """Mean and sample standard deviation of the test loss over seeds."""
        return _mean_std([run.test_loss for run in self.runs])

    @property
    def test_metric(self) -> tuple[float, float]:
        """Mean and sample standard deviation of the test metric over seeds."""
        return _mean_std([run.test_metric for run in self.runs])

    @property
    def mean_epochs(self) -> float:
        return float(np.mean([run.epochs_run for run in self.runs]))

    @property
    def seconds(self) -> float:
        return float(sum(run.seconds for run in self.runs))

    @property
    def all_stopped_early(self) -> bool:
        return all(run.stopped_early for run in self.runs)

    def to_dict(self) -> dict[str, Any]:
        loss_mean, loss_std = self.test_loss
        metric_mean, metric_std = self.test_metric
        return {
            "label": self.variant.label,
            "layer": self.variant.layer,
            "factor": self.variant.factor,
            "widths": list(self.variant.widths),
            "n_parameters": self.n_parameters,
            "test_loss_mean": loss_mean,
            "test_loss_std": _none_if_nan(loss_std),
            "test_metric_mean": metric_mean,
            "test_metric_std": _none_if_nan(metric_std),
            "mean_epochs": self.mean_epochs,
            "seconds": self.seconds,
            "runs": [run.to_dict() for run in self.runs],
        }


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class CheckResult:
    """Test scores of networks trained at and around an estimate of hidden-layer widths.

    Attributes
    ----------
    task : {"potential", "classification"}
    estimate : tuple of int
        The checked widths.
    variants : tuple of VariantResult
        The estimate first, then the one-layer variants (see :func:`make_variants`).
    metric_name, metric_unit : str
        "energy RMSE" in "meV/atom" for a potential, "accuracy" in "%" for a
        classifier.
    settings : dict
        Training settings, split sizes and, for a potential, the network mode,
        elements, ``forces_trained`` (always False) and the energy scaling.
    seconds : float
        Wall time of the whole check.
    """

    task: str
    estimate: tuple[int, ...]
    variants: tuple[VariantResult, ...]
    metric_name: str
    metric_unit: str
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def forces_trained(self) -> bool:
        return False

    @property
    def estimate_result(self) -> VariantResult:
        return self.variants[0]

    def relative_change(self, variant: VariantResult) -> float:
        """Return the change of the headline score from the estimate to ``variant``, as a fraction.

        The headline score is the energy RMSE for a potential and the test loss
        for a classifier, so a negative value means the variant is better.
        """
        reference = self._headline(self.estimate_result)
        return (self._headline(variant) - reference) / reference if reference else float("nan")

    def _headline(self, variant: VariantResult) -> float:
        return variant.test_metric[0] if self.task == "potential" else variant.test_loss[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "estimate": list(self.estimate),
            "metric": {"name": self.metric_name, "unit": self.metric_unit},
            "forces_trained": self.forces_trained,
            "settings": self.settings,
            "seconds": self.seconds,
            "variants": [
                {**variant.to_dict(), "relative_change": _none_if_nan(self.relative_change(variant))}
                for variant in self.variants
            ],
        }

    def format_table(self) -> str:
        """Format one row per variant as a plain-text table, with a line on the units."""
        headline = "RMSE meV/atom" if self.task == "potential" else "accuracy %"
        loss_name = "test MSE" if self.task == "potential" else "test CE"
        rows = []
        for variant in self.variants:
            loss_mean, loss_std = variant.test_loss
            metric_mean, metric_std = variant.test_metric
            change = self.relative_change(variant)
            rows.append([
                variant.variant.label,
                "-".join(str(width) for width in variant.variant.widths),
                str(variant.n_parameters),
                _format_spread(loss_mean, loss_std, 4),
                _format_spread(metric_mean, metric_std, 2),
                "" if variant.variant.layer is None else f"{100 * change:+.1f}%",
                f"{variant.mean_epochs:.0f}{'' if variant.all_stopped_early else '*'}",
                f"{variant.seconds:.0f}",
            ])
        header = ["variant", "widths", "params", loss_name, headline, "change", "epochs", "time s"]
        sizes = [max(len(header[column]), *(len(row[column]) for row in rows)) for column in range(len(header))]

        def line(cells: list[str]) -> str:
            first = cells[0].ljust(sizes[0])
            rest = [cell.rjust(size) for cell, size in zip(cells[1:], sizes[1:])]
            return "  ".join([first, *rest])

        lines = [line(header), "-" * len(line(header)), *(line(row) for row in rows)]
        n_seeds = len(self.estimate_result.runs)
        compared = "energy RMSE" if self.task == "potential" else "test loss"
        lines.append(
            f"mean ± sample std over {n_seeds} seed{'s' if n_seeds != 1 else ''}; change: {compared} "
            f"relative to the estimate; epochs: mean per run; time: all seeds"
        )
        if not all(variant.all_stopped_early for variant in self.variants):
            lines.append(
                f"*: at least one run reached the epoch limit ({self.settings.get('max_epochs')}) "
                f"before early stopping, so its score may still improve with more epochs"
            )
        if self.task == "potential":
            lines.append("test MSE: standardised per-atom energy; trained on energies only, not forces")
        return "\n".join(lines)


def _format_spread(mean: float, std: float, digits: int) -> str:
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


# --- entry point ------------------------------------------------------------------


def check_widths(
    data: AtomicFeatures | ImageData,
    widths: Sequence[int],
    *,
    factors: Sequence[float] = DEFAULT_FACTORS,
    n_seeds: int = DEFAULT_N_SEEDS,
    seed: int = 0,
    split: Sequence[float] = DEFAULT_SPLIT,
    activation: str = "stanh",
    init: str = "stanh",
    learning_rate: float = DEFAULT_LEARNING_RATE,
    batch_size: int | None = None,
    max_epochs: int = DEFAULT_MAX_EPOCHS,
    patience: int = DEFAULT_PATIENCE,
    networks: NetworkMode = "pooled",
    energy_reference: EnergyReference = "elements",
    forces: bool = False,
    threads: int | None = 1,
    progress: bool = False,
) -> CheckResult:
    """Train networks at and around estimated widths and compare their test scores.

    Parameters
    ----------
    data : AtomicFeatures or ImageData
        Descriptors of all atoms of a structure file with their energies (from
        ``load_atomic_features(path)`` without ``element``), or labelled images.
    widths : sequence of int
        The estimated width of each hidden layer.
    factors : sequence of float, default=(0.5, 1.0, 2.0)
        Multiples of each layer's estimate to train, one layer at a time with
        the others at their estimates.
    n_seeds : int, default=3
        Training runs per variant. Run r uses the same seed in every variant, so
        the variants start from comparable draws.
    seed : int, default=0
        Seed of the split and, through it, of every run.
    split : (float, float, float), default=(0.8, 0.1, 0.1)
        Train, validation and test shares: of structures for a potential, of
        images for a classifier. The split is the same for every run.
    activation, init : str, default="stanh"
        Names from :data:`layersize.nets.ACTIVATIONS` and
        :data:`layersize.nets.INITIALIZATIONS`.
    learning_rate : float, default=1e-3
        Adam step size.
    batch_size : int, optional
        Structures per mini-batch for a potential (default 32), images for a
        classifier (default 128).
    max_epochs : int, default=DEFAULT_MAX_EPOCHS
        Epoch limit per run.
    patience : int, default=10
        Stop a run after this many epochs without a lower validation loss. The
        weights of the best validation epoch are tested.
    networks : {"pooled", "per_element"}, default="pooled"
        Potentials only: one network for all atoms, or one per element with the
        same widths (see the module documentation).
    energy_reference : {"elements", "mean"}, default="elements"
        Potentials only: the energy subtracted before the networks are fitted.
        "elements" subtracts per-element reference energies fitted by least
        squares to the training structures, "mean" only the mean energy per
        atom (see the module documentation).
    forces : bool, default=False
        Training on forces is not implemented; True raises.
    threads : int or None, default=1
        Torch intra-op threads during the check; the previous setting is restored
        afterwards. None keeps the current setting. The default is 1 because the
        mini-batches are small. On a 2-core machine with other work running,
        the first 60-epoch run of a ``near-size --check`` of data/sn2.xyz had not
        finished after 5 minutes on 2 threads. On one thread, each run took 9 to
        21 s (see docs/check.md).
    progress : bool, default=False
        Show a progress bar over the runs on stderr.

    Returns
    -------
    CheckResult
        Print ``result.format_table()``; ``result.to_dict()`` is JSON-ready
        apart from NaN values; :func:`plot_check` draws it.

    Raises
    ------
    NotImplementedError
        If ``forces`` is True.
    ValueError
        For an invalid width, factor, split or option, a structure file without
        usable energies, ``AtomicFeatures`` of one element only, or images
        without labels.
    """
    if forces:
        raise NotImplementedError(
            "Training on forces is not implemented: it needs derivatives of the "
            "descriptors with respect to atomic positions, which layersize does not "
            "compute. Run the check on energies (forces=False)."
        )
    variants = make_variants(widths, factors)
    options = _validate_options(
        n_seeds=n_seeds, learning_rate=learning_rate, batch_size=batch_size,
        max_epochs=max_epochs, patience=patience, networks=networks,
        energy_reference=energy_reference,
    )
    get_activation(activation)
    get_initialization(init)

    started = time.perf_counter()
    task = _make_task(data, split, seed, networks, energy_reference)
    size = int(batch_size) if batch_size is not None else (
        DEFAULT_BATCH_STRUCTURES if task.kind == "potential" else DEFAULT_BATCH_SAMPLES
    )
    run_seeds = [seed_for(seed, 1, repeat) for repeat in range(options["n_seeds"])]
    settings = {
        "factors": list(validate_factors(factors)),
        "n_seeds": options["n_seeds"],
        "seed": seed,
        "split": [float(share) for share in split],
        "activation": activation,
        "init": init,
        "optimizer": "Adam",
        "learning_rate": float(learning_rate),
        "batch_size": size,
        "max_epochs": options["max_epochs"],
        "patience": options["patience"],
        "threads": threads if threads is not None else torch.get_num_threads(),
        **task.describe(),
    }
    logger.info("Checking widths %s with %d variants × %d seeds", list(variants[0].widths), len(variants), len(run_seeds))

    results = []
    with _torch_threads(threads), tqdm(
        total=len(variants) * len(run_seeds), desc="check", unit="run", disable=not progress
    ) as bar:
        for variant in variants:
            runs = []
            n_parameters = 0
            name = "-".join(str(width) for width in variant.widths)
            bar.set_postfix_str(name)

            def show_epoch(epoch: int, validation_loss: float) -> None:
                bar.set_postfix_str(f"{name} epoch {epoch} validation loss {validation_loss:.4g}")

            for run_seed in run_seeds:
                run, n_parameters = _train_once(
                    task, variant.widths, run_seed,
                    activation=activation, init=init, learning_rate=float(learning_rate),
                    batch_size=size, max_epochs=options["max_epochs"], patience=options["patience"],
                    on_epoch=show_epoch if progress else None,
                )
                logger.info(
                    "%s %s seed %d: test loss %.5g, %s %.4g %s, %d epochs (best %d), %.1f s",
                    variant.label, list(variant.widths), run_seed, run.test_loss, task.metric_name,
                    run.test_metric, task.metric_unit, run.epochs_run, run.best_epoch, run.seconds,
                )
                runs.append(run)
                bar.update(1)
            results.append(VariantResult(variant=variant, n_parameters=n_parameters, runs=tuple(runs)))

    return CheckResult(
        task=task.kind,
        estimate=variants[0].widths,
        variants=tuple(results),
        metric_name=task.metric_name,
        metric_unit=task.metric_unit,
        settings=settings,
        seconds=time.perf_counter() - started,
    )


def _validate_options(
    *,
    n_seeds: int,
    learning_rate: float,
    batch_size: int | None,
    max_epochs: int,
    patience: int,
    networks: str,
    energy_reference: str,
) -> dict[str, int]:
    if int(n_seeds) < 1:
        raise ValueError(f"n_seeds must be at least 1, got {n_seeds}.")
    if not (math.isfinite(float(learning_rate)) and float(learning_rate) > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate}. The default is 1e-3.")
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if int(max_epochs) < 1:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs}.")
    if int(patience) < 1:
        raise ValueError(f"patience must be at least 1, got {patience}.")
    if networks not in NETWORK_MODES:
        raise ValueError(f"Invalid networks mode {networks!r}. Choose one of: {', '.join(NETWORK_MODES)}.")
    if energy_reference not in ENERGY_REFERENCES:
        raise ValueError(
            f"Invalid energy_reference {energy_reference!r}. Choose one of: {', '.join(ENERGY_REFERENCES)}."
        )
    return {"n_seeds": int(n_seeds), "max_epochs": int(max_epochs), "patience": int(patience)}


def _make_task(
    data: AtomicFeatures | ImageData, split: Sequence[float], seed: int, networks: str, energy_reference: str
) -> _EnergyTask | _ClassificationTask:
    if isinstance(data, AtomicFeatures):
        if data.element is not None:
            raise ValueError(
                f"The descriptors contain only the {data.element} atoms of {data.source!r}, "
                f"but a total energy needs every atom. Pass load_atomic_features(path) "
                f"without element, and networks='per_element' to train one network per element."
            )
        return _EnergyTask(data, split, seed, networks, energy_reference)
    if isinstance(data, ImageData):
        if data.labels is None:
            raise ValueError(
                f"{str(data.source)!r} has no labels, and a classifier check needs them. "
                f"Give a file with labels, or a labels file to load_images."
            )
        if networks != "pooled":
            raise ValueError("networks='per_element' applies to potentials only; use 'pooled' for images.")
        return _ClassificationTask(data.features, data.labels, split, seed)
    raise TypeError(
        f"data must be AtomicFeatures (from load_atomic_features) or ImageData (from "
        f"load_images), got {type(data).__name__}."
    )


# --- plot -------------------------------------------------------------------------

_LAYER_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")


def plot_check(result: CheckResult, path: str | os.PathLike, title: str | None = None) -> Path:
    """Plot the headline test score against the parameter count and save it atomically.

    The y axis is the energy RMSE (meV/atom) for a potential and the test loss
    for a classifier, with the sample standard deviation over seeds as error
    bars. The x axis is logarithmic. Each varied layer has its own marker and a
    line through its variants and the estimate, which is drawn as a red star.

    Parameters
    ----------
    result : CheckResult
    path : path-like
        Output image; the format follows the suffix (``.png``, ``.pdf``, ``.svg``).
    title : str, optional

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from matplotlib.figure import Figure

    def score(variant: VariantResult) -> tuple[float, float]:
        mean, std = variant.test_metric if result.task == "potential" else variant.test_loss
        return mean, 0.0 if math.isnan(std) else std

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.add_subplot()
    estimate = result.estimate_result
    estimate_mean, estimate_std = score(estimate)
    for layer in range(1, len(result.estimate) + 1):
        members = [variant for variant in result.variants if variant.variant.layer == layer]
        if not members:
            continue
        points = sorted([*members, estimate], key=lambda variant: variant.n_parameters)
        x = [variant.n_parameters for variant in points]
        y, error = zip(*(score(variant) for variant in points))
        marker = _LAYER_MARKERS[(layer - 1) % len(_LAYER_MARKERS)]
        axes.errorbar(x, y, yerr=error, marker=marker, linestyle="-", linewidth=1,
                      markersize=6, capsize=3, label=f"layer {layer} varied")
        for variant in members:
            mean, _ = score(variant)
            axes.annotate(f"×{variant.variant.factor:g}", (variant.n_parameters, mean),
                          textcoords="offset points", xytext=(5, 4), fontsize=7)
    axes.errorbar([estimate.n_parameters], [estimate_mean], yerr=[estimate_std], marker="*",
                  markersize=14, color="tab:red", capsize=3, linestyle="none", zorder=5,
                  label="estimate " + "-".join(str(width) for width in result.estimate))
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters")
    if result.task == "potential":
        axes.set_ylabel("test energy RMSE (meV/atom)")
    else:
        axes.set_ylabel("test cross-entropy")
    n_seeds = len(estimate.runs)
    axes.set_title(title or f"Test score around the estimate (mean ± std over {n_seeds} seeds)", fontsize=10)
    axes.legend(fontsize="small")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    return Path(path)
