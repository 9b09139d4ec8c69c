r"""Element-embracing atom-centred symmetry functions (eeACSFs).

eeACSFs are the atomic descriptors of lifelong machine learning potentials
(lMLPs, M. Eckhoff and M. Reiher, J. Chem. Theory Comput. 19, 3509 (2023)).
Unlike element-resolved ACSFs, they weight each neighbour by a property of its
element, so the number of descriptors does not grow with the number of elements.

For a centre atom i with neighbours j, k at distances R_ij, R_ik (Å) and angle
θ_ijk at i, this module computes

.. math::

    f_c(R) &= \exp\left(1 - \frac{1}{1 - (R/R_c)^2}\right) \text{ for } R < R_c,
              \text{ else } 0,

    G^\text{rad}_i &= \sum_{j \ne i} w_t(Z_j)\, e^{-\eta R_{ij}^2} f_c(R_{ij}),

    G^\text{ang}_i &= \sum_{j<k;\ j,k \ne i} w_t(Z_j, Z_k)\,
        e^{-\eta R_{ij}^2} f_c(R_{ij})\, e^{-\eta R_{ik}^2} f_c(R_{ik})
        \left[\tfrac12 + \tfrac12 \lambda \cos\theta_{ijk}\right]^\zeta,

with η in Å⁻², λ = ±1 and ζ > 0. The radial functions have no shift, and the
angular functions have no R_jk term, so each unordered neighbour pair counts once.

Element weights
---------------
Each element has the property vector

    h = (1, n, sp, d, 6 - n, 9 - sp, 11 - d) / (1, 5, 8, 10, 5, 8, 10),

where n is the period, sp the number of s and p valence electrons and d the
number of d electrons (see :func:`element_properties`). The weight types are
named by the property: ``"1"``, ``"n"``, ``"sp"``, ``"d"``, ``"6-n"``, ``"9-sp"``
and ``"11-d"``. A radial type uses h_t(Z_j). An angular type is either
``("sum", t)``, which uses (h_t(Z_j) + h_t(Z_k)) / 2, or ``("difference", t)``,
which uses |h_t(Z_j) - h_t(Z_k)| + 1, where the +1 is left out when both h_t
values are 0. Every weight is then divided by the maximum of its formula,
described in :func:`weight_maximum`.

The differences of ``"6-n"`` and ``"9-sp"`` equal those of ``"n"`` and ``"sp"``
for every element pair. The shipped S_N2 parameter set contains both, so 24 of
its 153 columns duplicate other columns. They are kept because they are the input
of that model, and :meth:`EEACSFParameters.duplicate_feature_mask` marks them.

Post-processing
---------------
:func:`scale_descriptors` takes the square root of each value and standardises
each column. A constant factor on a column, such as the weight maximum, cancels
in that step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.neighborlist import neighbor_list
from tqdm.auto import tqdm

__all__ = [
    "ANGULAR_COMBINATIONS",
    "MAX_ATOMIC_NUMBER",
    "PROPERTY_NAMES",
    "SN2_PARAMETERS",
    "DescriptorSet",
    "EEACSFParameters",
    "ScaledDescriptors",
    "cutoff_function",
    "eeacsf",
    "eeacsf_many",
    "element_properties",
    "scale_descriptors",
    "weight_maximum",
]

logger = logging.getLogger(__name__)

#: Largest atomic number with element properties (Xe). The property 6 - n is
#: defined for periods 1 to 5 only, because it would be 0 or negative beyond.
MAX_ATOMIC_NUMBER = 54

#: Names of the element properties, in the order of the property vector h.
PROPERTY_NAMES: tuple[str, ...] = ("1", "n", "sp", "d", "6-n", "9-sp", "11-d")

#: Divisors that bring each property to about [0, 1].
_PROPERTY_DIVISORS: dict[str, float] = {
    "1": 1.0,
    "n": 5.0,
    "sp": 8.0,
    "d": 10.0,
    "6-n": 5.0,
    "9-sp": 8.0,
    "11-d": 10.0,
}

#: Ways an angular weight combines the properties of the two neighbours.
ANGULAR_COMBINATIONS: tuple[str, ...] = ("sum", "difference")

#: Version of the formulas, part of the fingerprint so that cached descriptors
#: computed with other formulas do not match.
_FORMULA_VERSION = "eeacsf-1"

#: Non-periodic structures up to this many atoms are computed together in dense
#: batches of equal size. Larger or periodic structures use ASE's neighbour list.
_DENSE_MAX_ATOMS = 64

#: Number of (centre, neighbour pair) entries processed at once. The working
#: memory is an estimated 30 float64 arrays of this size, about 50 MB.
_PAIR_BUDGET = 200_000


# ---------------------------------------------------------------------------
# Element data
# ---------------------------------------------------------------------------

_NOBLE_GAS_NUMBERS = (0, 2, 10, 18, 36, 54)


def element_properties(atomic_number: int) -> tuple[int, int, int]:
    """Return the period, s+p valence electron count and d electron count.

    The counts follow the Madelung (aufbau) filling order of the neutral atom.
    In periods 4 and 5 the first two elements have d = 0, the ten transition
    metals have sp = 2 and d = 1 to 10, and the p-block elements keep their
    filled d shell (d = 10), for example Br: (4, 7, 10). He has sp = 2.

    Parameters
    ----------
    atomic_number : int
        Atomic number Z, from 1 (H) to 54 (Xe).

    Returns
    -------
    tuple of int
        ``(period, sp, d)``.

    Raises
    ------
    ValueError
        If ``atomic_number`` is outside 1 to 54.

    Notes
    -----
    NOTE: the ground states of Cr, Cu, Nb, Mo, Ru, Rh, Pd and Ag move one or two
    electrons from s to d (Cr is 3d5 4s1, not 3d4 4s2). This table does not,
    so the properties change smoothly along each period. Which convention lMLP
    uses for these eight elements is not verified.
    """
    z = int(atomic_number)
    if not 1 <= z <= MAX_ATOMIC_NUMBER:
        raise ValueError(
            f"eeACSF element properties are defined for atomic numbers 1 (H) to "
            f"{MAX_ATOMIC_NUMBER} (Xe), got {atomic_number!r}. Remove the atom or "
            f"use a descriptor that covers this element."
        )
    period = next(p for p in range(1, 6) if z <= _NOBLE_GAS_NUMBERS[p])
    position = z - _NOBLE_GAS_NUMBERS[period - 1]
    if period <= 3 or position <= 2:
        return period, position, 0
    if position <= 12:
        return period, 2, position - 2
    return period, position - 10, 10


def _raw_property_table() -> np.ndarray:
    """Return the undivided properties as an array of shape (55, 7), row 0 zero.

    Row Z contains (1, n, sp, d, 6 - n, 9 - sp, 11 - d) of element Z as integers
    stored in float64. Row 0 is the padding entry and gives every weight 0.
    """
    table = np.zeros((MAX_ATOMIC_NUMBER + 1, len(PROPERTY_NAMES)))
    for z in range(1, MAX_ATOMIC_NUMBER + 1):
        period, sp, d = element_properties(z)
        table[z] = (1, period, sp, d, 6 - period, 9 - sp, 11 - d)
    return table


_RAW_PROPERTIES = _raw_property_table()


def weight_maximum(kind: str, property_name: str) -> float:
    """Return the divisor that brings a weight type to a maximum of 1.

    Let h_max be the largest value of h_t over H to Xe, which is 1 for every
    property except ``"11-d"`` (11/10). The divisor is the largest value that
    the weight formula can take when each h_t lies in [0, h_max]:

    - ``"radial"`` and ``"sum"``: h_max, so the weights reach 1.
    - ``"difference"``: h_max + 1, which is 2 for every property but ``"11-d"``.

    Parameters
    ----------
    kind : {"radial", "sum", "difference"}
        The weight formula.
    property_name : str
        One of :data:`PROPERTY_NAMES`.

    Returns
    -------
    float
        The divisor.

    Notes
    -----
    NOTE: the rule "divide each weight type by its maximum" does not say whether
    the maximum is taken over real element pairs or over the range of h, and the
    lMLP code was not available to check. This is the range reading. Over the
    real pairs of H to Xe the difference of ``"n"`` reaches only
    |1 - 0.2| + 1 = 1.8. The choice scales each column by a constant, which
    :func:`scale_descriptors` removes.
    """
    column = _property_column(property_name)
    h_max = _RAW_PROPERTIES[1:, column].max() / _PROPERTY_DIVISORS[property_name]
    if kind in ("radial", "sum"):
        return float(h_max)
    if kind == "difference":
        return float(h_max + 1.0)
    raise ValueError(f"kind must be 'radial', 'sum' or 'difference', got {kind!r}.")


def _property_column(property_name: str) -> int:
    if property_name not in PROPERTY_NAMES:
        raise ValueError(
            f"Unknown element property {property_name!r}. Use one of {list(PROPERTY_NAMES)}."
        )
    return PROPERTY_NAMES.index(property_name)


def _radial_weight_table(property_name: str) -> np.ndarray:
    """Return w_t(Z) for Z = 0..54, shape (55,), with w_t(0) = 0 for padding."""
    raw = _RAW_PROPERTIES[:, _property_column(property_name)]
    return raw / _PROPERTY_DIVISORS[property_name] / weight_maximum("radial", property_name)


def _angular_weight_table(combination: str, property_name: str) -> np.ndarray:
    """Return w_t(Z_j, Z_k) for Z = 0..54, shape (55, 55), zero where Z is 0.

    The difference is taken of the undivided integer properties, so equal
    differences (such as those of n and 6 - n) give bit-identical weights.
    """
    raw = _RAW_PROPERTIES[:, _property_column(property_name)]
    divisor = _PROPERTY_DIVISORS[property_name]
    maximum = weight_maximum(combination, property_name)
    if combination == "sum":
        table = (raw[:, None] + raw[None, :]) / divisor / 2.0 / maximum
    elif combination == "difference":
        both_zero = (raw[:, None] == 0) & (raw[None, :] == 0)
        difference = np.abs(raw[:, None] - raw[None, :]) / divisor
        table = np.where(both_zero, 0.0, difference + 1.0) / maximum
    else:
        raise ValueError(
            f"Unknown angular combination {combination!r}. Use one of {list(ANGULAR_COMBINATIONS)}."
        )
    table[0, :] = 0.0
    table[:, 0] = 0.0
    return table


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


def _as_float_tuple(values: Iterable[float], name: str) -> tuple[float, ...]:
    try:
        result = tuple(float(value) for value in values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}.") from error
    if not all(np.isfinite(result)):
        raise ValueError(f"{name} must contain only finite numbers, got {result}.")
    return result


@dataclass(frozen=True)
class EEACSFParameters:
    """Parameter set of radial and angular eeACSFs.

    The features are ordered radial first, by weight type and then by eta, and
    then angular, by weight type, eta, lambda and zeta (the last varies fastest).

    Parameters
    ----------
    radial_weights : sequence of str
        Radial weight types, each one of :data:`PROPERTY_NAMES`.
    radial_etas : sequence of float
        Radial Gaussian exponents eta, in Å⁻², each >= 0.
    angular_weights : sequence of (str, str)
        Angular weight types ``(combination, property)``, with combination
        ``"sum"`` or ``"difference"`` and property one of :data:`PROPERTY_NAMES`.
    angular_etas : sequence of float
        Angular Gaussian exponents eta, in Å⁻², each >= 0.
    angular_lambdas : sequence of float
        Angular lambdas, each +1 or -1.
    angular_zetas : sequence of float
        Angular exponents zeta, each > 0.
    cutoff : float, default=12.0
        Cutoff radius R_c in Å.
    """

    radial_weights: tuple[str, ...]
    radial_etas: tuple[float, ...]
    angular_weights: tuple[tuple[str, str], ...]
    angular_etas: tuple[float, ...]
    angular_lambdas: tuple[float, ...]
    angular_zetas: tuple[float, ...]
    cutoff: float = 12.0

    def __post_init__(self) -> None:
        cutoff = float(self.cutoff)
        if not (np.isfinite(cutoff) and cutoff > 0):
            raise ValueError(f"cutoff must be a positive number of Å, got {self.cutoff!r}.")
        object.__setattr__(self, "cutoff", cutoff)

        if isinstance(self.radial_weights, str):
            raise ValueError(
                f"radial_weights must be a sequence of property names such as ('n', 'sp'), "
                f"got the string {self.radial_weights!r}."
            )
        radial_weights = tuple(str(name) for name in self.radial_weights)
        for name in radial_weights:
            _property_column(name)
        object.__setattr__(self, "radial_weights", radial_weights)

        angular_weights = []
        for entry in self.angular_weights:
            if isinstance(entry, str) or len(entry) != 2:
                raise ValueError(
                    f"Each angular weight type must be a pair (combination, property) such "
                    f"as ('sum', 'n'), got {entry!r}."
                )
            combination, name = str(entry[0]), str(entry[1])
            if combination not in ANGULAR_COMBINATIONS:
                raise ValueError(
                    f"Unknown angular combination {combination!r} in {entry!r}. Use one of "
                    f"{list(ANGULAR_COMBINATIONS)}."
                )
            _property_column(name)
            angular_weights.append((combination, name))
        object.__setattr__(self, "angular_weights", tuple(angular_weights))

        for field_name in ("radial_etas", "angular_etas"):
            etas = _as_float_tuple(getattr(self, field_name), field_name)
            if any(eta < 0 for eta in etas):
                raise ValueError(f"{field_name} must be >= 0 Å⁻², got {etas}.")
            object.__setattr__(self, field_name, etas)

        lambdas = _as_float_tuple(self.angular_lambdas, "angular_lambdas")
        if any(value not in (1.0, -1.0) for value in lambdas):
            raise ValueError(f"angular_lambdas must each be +1 or -1, got {lambdas}.")
        object.__setattr__(self, "angular_lambdas", lambdas)

        zetas = _as_float_tuple(self.angular_zetas, "angular_zetas")
        if any(zeta <= 0 for zeta in zetas):
            raise ValueError(f"angular_zetas must each be > 0, got {zetas}.")
        object.__setattr__(self, "angular_zetas", zetas)

        if self.n_features == 0:
            raise ValueError(
                "The parameter set defines no symmetry function. Give at least one radial "
                "weight type and eta, or one angular weight type, eta, lambda and zeta."
            )

    @classmethod
    def sn2_default(cls) -> EEACSFParameters:
        """Return the 153 eeACSFs of the lMLP model for S_N2 reactions.

        45 radial functions (5 weight types x 9 etas) and 108 angular functions
        (9 weight types x 2 etas x 2 lambdas x 3 zetas), with R_c = 12 Å.
        """
        return cls(
            radial_weights=("1", "n", "sp", "6-n", "9-sp"),
            radial_etas=(
                0.0,
                0.010702,
                0.023348,
                0.044203,
                0.066118,
                0.104168,
                0.180285,
                0.370959,
                1.115415,
            ),
            angular_weights=(
                ("sum", "1"),
                ("sum", "n"),
                ("sum", "sp"),
                ("sum", "6-n"),
                ("sum", "9-sp"),
                ("difference", "n"),
                ("difference", "sp"),
                ("difference", "6-n"),
                ("difference", "9-sp"),
            ),
            angular_etas=(0.011238, 0.090144),
            angular_lambdas=(1.0, -1.0),
            angular_zetas=(1.0, 2.409421, 9.996864),
            cutoff=12.0,
        )

    @property
    def n_radial(self) -> int:
        """Number of radial symmetry functions."""
        return len(self.radial_weights) * len(self.radial_etas)

    @property
    def n_angular(self) -> int:
        """Number of angular symmetry functions."""
        return (
            len(self.angular_weights)
            * len(self.angular_etas)
            * len(self.angular_lambdas)
            * len(self.angular_zetas)
        )

    @property
    def n_features(self) -> int:
        """Number of symmetry functions, the width of the descriptor matrix."""
        return self.n_radial + self.n_angular

    @property
    def feature_labels(self) -> tuple[str, ...]:
        """Short label of each feature column, for plots and tables."""
        labels = [
            f"radial {weight} eta={eta:g}"
            for weight in self.radial_weights
            for eta in self.radial_etas
        ]
        labels += [
            f"angular {combination}({name}) eta={eta:g} lambda={lam:+g} zeta={zeta:g}"
            for combination, name in self.angular_weights
            for eta in self.angular_etas
            for lam in self.angular_lambdas
            for zeta in self.angular_zetas
        ]
        return tuple(labels)

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as JSON-compatible built-in types."""
        return {
            "formula": _FORMULA_VERSION,
            "cutoff": self.cutoff,
            "radial_weights": list(self.radial_weights),
            "radial_etas": list(self.radial_etas),
            "angular_weights": [list(entry) for entry in self.angular_weights],
            "angular_etas": list(self.angular_etas),
            "angular_lambdas": list(self.angular_lambdas),
            "angular_zetas": list(self.angular_zetas),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EEACSFParameters:
        """Build parameters from the output of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If ``data`` was written for other formulas (its ``"formula"`` entry
            differs) or is missing a field.
        """
        formula = data.get("formula", _FORMULA_VERSION)
        if formula != _FORMULA_VERSION:
            raise ValueError(
                f"The parameters were written for formula {formula!r}, but this version "
                f"computes {_FORMULA_VERSION!r}. Recompute the descriptors."
            )
        fields = (
            "radial_weights",
            "radial_etas",
            "angular_weights",
            "angular_etas",
            "angular_lambdas",
            "angular_zetas",
            "cutoff",
        )
        missing = [name for name in fields if name not in data]
        if missing:
            raise ValueError(f"The parameter dictionary is missing {missing}.")
        return cls(**{name: data[name] for name in fields})

    def fingerprint(self) -> str:
        """Return a SHA-256 hex digest of :meth:`to_dict`, usable as a cache key.

        Equal parameters give equal digests across processes and platforms,
        because the JSON text uses sorted keys and round-trip float formatting.
        """
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def duplicate_feature_mask(self) -> np.ndarray:
        """Mark the columns that equal an earlier column for every structure.

        Two columns are duplicates when their weight types give the same weight
        for every element (pair) of H to Xe and their eta, lambda and zeta agree.

        Returns
        -------
        numpy.ndarray of bool, shape (n_features,)
            True for each column that repeats an earlier one. The first column of
            each group is False.
        """
        radial_groups = _group_identical(
            [_radial_weight_table(name) for name in self.radial_weights]
        )
        angular_groups = _group_identical(
            [_angular_weight_table(*entry) for entry in self.angular_weights]
        )
        keys: list[tuple] = [
            ("radial", group, eta) for group in radial_groups for eta in self.radial_etas
        ]
        keys += [
            ("angular", group, eta, lam, zeta)
            for group in angular_groups
            for eta in self.angular_etas
            for lam in self.angular_lambdas
            for zeta in self.angular_zetas
        ]
        seen: set[tuple] = set()
        mask = np.zeros(len(keys), dtype=bool)
        for index, key in enumerate(keys):
            mask[index] = key in seen
            seen.add(key)
        return mask


def _group_identical(tables: list[np.ndarray]) -> list[int]:
    """Return, for each table, the index of the first table equal to it."""
    first_index: dict[bytes, int] = {}
    return [first_index.setdefault(table.tobytes(), index) for index, table in enumerate(tables)]


#: The 153 eeACSFs of the lMLP S_N2 model, see :meth:`EEACSFParameters.sn2_default`.
SN2_PARAMETERS = EEACSFParameters.sn2_default()


class _Tables(NamedTuple):
    """Arrays derived from a parameter set for the vectorised evaluation."""

    radial_weights: np.ndarray  # (55, T_rad)
    angular_weights: np.ndarray  # (55, 55, T_ang)
    radial_etas: np.ndarray  # (E_rad,)
    angular_etas: np.ndarray  # (E_ang,)
    lambdas: np.ndarray  # (L,)
    zetas: np.ndarray  # (Z,)


def _build_tables(parameters: EEACSFParameters) -> _Tables:
    n_elements = MAX_ATOMIC_NUMBER + 1
    radial = [_radial_weight_table(name) for name in parameters.radial_weights]
    angular = [_angular_weight_table(*entry) for entry in parameters.angular_weights]
    return _Tables(
        radial_weights=np.stack(radial, axis=-1) if radial else np.zeros((n_elements, 0)),
        angular_weights=(
            np.stack(angular, axis=-1) if angular else np.zeros((n_elements, n_elements, 0))
        ),
        radial_etas=np.asarray(parameters.radial_etas),
        angular_etas=np.asarray(parameters.angular_etas),
        lambdas=np.asarray(parameters.angular_lambdas),
        zetas=np.asarray(parameters.angular_zetas),
    )


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def cutoff_function(distances: np.ndarray | float, cutoff: float = 12.0) -> np.ndarray:
    """Evaluate f_c(R) = exp(1 - 1 / (1 - (R/R_c)^2)) for R < R_c, else 0.

    f_c(0) = 1, and f_c and all its derivatives go to 0 at R_c.

    Parameters
    ----------
    distances : array-like of float, any shape
        Distances R in Å, >= 0.
    cutoff : float, default=12.0
        Cutoff radius R_c in Å.

    Returns
    -------
    numpy.ndarray of float64, same shape as ``distances``
    """
    ratio = np.asarray(distances, dtype=np.float64) / cutoff
    inside = ratio < 1.0
    safe = np.where(inside, 1.0 - ratio * ratio, 1.0)
    return np.where(inside, np.exp(1.0 - 1.0 / safe), 0.0)


def _evaluate_centres(
    vectors: np.ndarray,
    distances: np.ndarray,
    neighbour_numbers: np.ndarray,
    tables: _Tables,
    parameters: EEACSFParameters,
) -> np.ndarray:
    """Compute the eeACSFs of centres from their padded neighbour arrays.

    Parameters
    ----------
    vectors : (C, M, 3) float
        Vectors from each centre to its neighbours, in Å. Padding entries must
        have a distance >= the cutoff and a non-zero length.
    distances : (C, M) float
        Lengths of ``vectors``, all > 0.
    neighbour_numbers : (C, M) int
        Atomic numbers of the neighbours, 0 for padding.

    Returns
    -------
    (C, n_features) float64
    """
    n_centres, n_neighbours = neighbour_numbers.shape
    features = np.zeros((n_centres, parameters.n_features))
    if n_centres == 0 or n_neighbours == 0:
        return features

    cutoff_values = cutoff_function(distances, parameters.cutoff)
    squared = distances * distances

    # Radial: G[c, t, e] = sum_m w_t(Z_m) exp(-eta_e R_m^2) f_c(R_m), as a batched matmul.
    n_radial = parameters.n_radial
    if n_radial:
        radial_terms = np.exp(-squared[..., None] * tables.radial_etas) * cutoff_values[..., None]
        weights = tables.radial_weights[neighbour_numbers]  # (C, M, T)
        radial = np.matmul(weights.transpose(0, 2, 1), radial_terms)  # (C, T, E)
        features[:, :n_radial] = radial.reshape(n_centres, -1)

    if parameters.n_angular == 0 or n_neighbours < 2:
        return features

    # Angular: every unordered neighbour pair (a, b), a < b, of each centre.
    first, second = np.triu_indices(n_neighbours, k=1)
    n_pairs = first.size
    unit = vectors / distances[..., None]
    cosines = np.matmul(unit, unit.transpose(0, 2, 1))[:, first, second]
    np.clip(cosines, -1.0, 1.0, out=cosines)  # rounding can leave |cos| slightly above 1

    gaussians = np.exp(-squared[..., None] * tables.angular_etas) * cutoff_values[..., None]
    pair_radial = gaussians[:, first, :] * gaussians[:, second, :]  # (C, P, E)
    base = 0.5 + 0.5 * cosines[..., None] * tables.lambdas  # (C, P, L)
    angle_terms = np.power(base[..., None], tables.zetas)  # (C, P, L, Z)
    terms = pair_radial[:, :, :, None, None] * angle_terms[:, :, None, :, :]
    terms = terms.reshape(n_centres, n_pairs, -1)  # (C, P, E*L*Z)

    pair_weights = tables.angular_weights[
        neighbour_numbers[:, first], neighbour_numbers[:, second]
    ]  # (C, P, T)
    angular = np.matmul(pair_weights.transpose(0, 2, 1), terms)  # (C, T, E*L*Z)
    features[:, n_radial:] = angular.reshape(n_centres, -1)
    return features


def _evaluate_in_chunks(
    vectors: np.ndarray,
    distances: np.ndarray,
    neighbour_numbers: np.ndarray,
    tables: _Tables,
    parameters: EEACSFParameters,
) -> np.ndarray:
    """Call :func:`_evaluate_centres` on slices of centres that fit the memory budget."""
    n_centres, n_neighbours = neighbour_numbers.shape
    n_pairs = max(1, n_neighbours * (n_neighbours - 1) // 2)
    chunk = max(1, _PAIR_BUDGET // n_pairs)
    if n_centres <= chunk:
        return _evaluate_centres(vectors, distances, neighbour_numbers, tables, parameters)
    parts = [
        _evaluate_centres(
            vectors[start : start + chunk],
            distances[start : start + chunk],
            neighbour_numbers[start : start + chunk],
            tables,
            parameters,
        )
        for start in range(0, n_centres, chunk)
    ]
    return np.concatenate(parts, axis=0)


def _raise_coincident(structure: int, atom_a: int, atom_b: int) -> None:
    raise ValueError(
        f"Atoms {atom_a} and {atom_b} of structure {structure} are at the same position, "
        f"where the angle of the angular symmetry functions is undefined. Remove the "
        f"duplicate atom."
    )


def _dense_batch(
    positions: np.ndarray,
    numbers: np.ndarray,
    structure_ids: np.ndarray,
    tables: _Tables,
    parameters: EEACSFParameters,
) -> np.ndarray:
    """Compute eeACSFs of B non-periodic structures of n atoms each.

    Every other atom of the structure is a neighbour, and the cutoff function
    removes those beyond R_c.

    Parameters
    ----------
    positions : (B, n, 3) float
        Cartesian positions in Å.
    numbers : (B, n) int
        Atomic numbers.
    structure_ids : (B,) int
        Indices of the structures in the caller's list, for error messages.

    Returns
    -------
    (B * n, n_features) float64
    """
    n_structures, n_atoms = numbers.shape
    # others[i] lists the atoms j != i in increasing order, shape (n, n - 1).
    offsets = np.arange(n_atoms - 1)[None, :]
    others = offsets + (offsets >= np.arange(n_atoms)[:, None])

    vectors = positions[:, others, :] - positions[:, :, None, :]  # (B, n, n-1, 3)
    distances = np.linalg.norm(vectors, axis=-1)
    if n_atoms > 1 and not distances.all():
        batch, centre, slot = np.argwhere(distances == 0)[0]
        _raise_coincident(int(structure_ids[batch]), int(centre), int(others[centre, slot]))
    neighbour_numbers = numbers[:, others]  # (B, n, n-1)

    n_centres = n_structures * n_atoms
    return _evaluate_in_chunks(
        vectors.reshape(n_centres, n_atoms - 1, 3),
        distances.reshape(n_centres, n_atoms - 1),
        neighbour_numbers.reshape(n_centres, n_atoms - 1),
        tables,
        parameters,
    )


def _neighbour_list_structure(
    atoms: Atoms, structure_id: int, tables: _Tables, parameters: EEACSFParameters
) -> np.ndarray:
    """Compute eeACSFs of one structure from ASE's neighbour list (periodic or large)."""
    n_atoms = len(atoms)
    centres, neighbours, vectors = neighbor_list("ijD", atoms, parameters.cutoff)
    distances = np.linalg.norm(vectors, axis=-1)
    if distances.size and not distances.all():
        index = int(np.flatnonzero(distances == 0)[0])
        _raise_coincident(structure_id, int(centres[index]), int(neighbours[index]))

    order = np.argsort(centres, kind="stable")
    centres, neighbours, vectors = centres[order], neighbours[order], vectors[order]
    counts = np.bincount(centres, minlength=n_atoms)
    width = int(counts.max()) if counts.size else 0
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slots = np.arange(centres.size) - starts[centres]

    # Padding: a vector of length 2 R_c (f_c = 0) and element 0 (weight 0).
    padded_vectors = np.zeros((n_atoms, width, 3))
    padded_vectors[..., 0] = 2.0 * parameters.cutoff
    padded_numbers = np.zeros((n_atoms, width), dtype=np.intp)
    padded_vectors[centres, slots] = vectors
    padded_numbers[centres, slots] = atoms.numbers[neighbours]
    padded_distances = np.linalg.norm(padded_vectors, axis=-1)
    return _evaluate_in_chunks(
        padded_vectors, padded_distances, padded_numbers, tables, parameters
    )


def _validate_structure(atoms: Any, structure_id: int) -> None:
    if not isinstance(atoms, Atoms):
        raise TypeError(
            f"Structure {structure_id} must be an ase.Atoms object, got "
            f"{type(atoms).__name__}. Read structures with ase.io.read."
        )
    positions = atoms.positions
    finite = np.isfinite(positions).all(axis=1)
    if not finite.all():
        atom = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"Atom {atom} of structure {structure_id} has a NaN or infinite position "
            f"{positions[atom].tolist()}. Fix or remove this structure."
        )
    numbers = atoms.numbers
    unknown = (numbers < 1) | (numbers > MAX_ATOMIC_NUMBER)
    if unknown.any():
        atom = int(np.flatnonzero(unknown)[0])
        z = int(numbers[atom])
        symbol = chemical_symbols[z] if 0 <= z < len(chemical_symbols) else "?"
        raise ValueError(
            f"Atom {atom} of structure {structure_id} is element {symbol} (Z={z}), which "
            f"has no eeACSF element properties. Supported elements are H to Xe "
            f"(Z=1 to {MAX_ATOMIC_NUMBER})."
        )
    if atoms.pbc.any():
        cell = atoms.cell.array
        if not np.isfinite(cell).all():
            raise ValueError(
                f"Structure {structure_id} is periodic but its cell contains NaN or infinite "
                f"entries. Fix the cell or set pbc=False."
            )
        periodic_vectors = cell[atoms.pbc]
        if np.linalg.matrix_rank(periodic_vectors) < len(periodic_vectors):
            raise ValueError(
                f"Structure {structure_id} is periodic along axes "
                f"{np.flatnonzero(atoms.pbc).tolist()}, but its cell vectors there are zero "
                f"or linearly dependent: {cell.tolist()}. Set the cell or set pbc=False."
            )


class DescriptorSet(NamedTuple):
    """eeACSFs of all atoms of a list of structures, with the atoms' origin."""

    features: np.ndarray
    """(n_total_atoms, n_features) float64 symmetry function values."""
    numbers: np.ndarray
    """(n_total_atoms,) int atomic number of each row."""
    structure_index: np.ndarray
    """(n_total_atoms,) int index of the structure of each row in the input list."""


def eeacsf_many(
    images: Sequence[Atoms],
    parameters: EEACSFParameters = SN2_PARAMETERS,
    *,
    progress: bool = False,
) -> DescriptorSet:
    """Compute the eeACSFs of every atom of a list of structures.

    Non-periodic structures of up to 64 atoms are grouped by atom count and
    computed together from their full distance matrices. Periodic structures
    (any ``pbc`` True) and larger ones use ``ase.neighborlist.neighbor_list``,
    which includes periodic images within the cutoff.

    Parameters
    ----------
    images : sequence of ase.Atoms
        Structures with positions in Å and elements from H to Xe.
    parameters : EEACSFParameters, default=SN2_PARAMETERS
        The symmetry functions to compute.
    progress : bool, default=False
        Show a tqdm progress bar over structures.

    Returns
    -------
    DescriptorSet
        ``(features, numbers, structure_index)``. The rows follow the structures
        in input order and the atoms in each structure's order.

    Raises
    ------
    TypeError
        If an image is not an ``ase.Atoms``.
    ValueError
        If a position is NaN or infinite, an element is outside H to Xe, or two
        atoms share a position. The message names the structure and the atom.

    Notes
    -----
    Atoms closer than about 0.1 Å are accepted, and only exactly coincident
    atoms raise, because their angle is undefined.
    """
    images = list(images)
    for structure_id, atoms in enumerate(images):
        _validate_structure(atoms, structure_id)

    started = time.perf_counter()
    tables = _build_tables(parameters)
    sizes = np.array([len(atoms) for atoms in images], dtype=np.intp)
    row_starts = np.concatenate(([0], np.cumsum(sizes)))
    n_total = int(row_starts[-1])
    features = np.zeros((n_total, parameters.n_features))
    numbers = np.zeros(n_total, dtype=np.intp)
    structure_index = np.repeat(np.arange(len(images), dtype=np.intp), sizes)
    for structure_id, atoms in enumerate(images):
        numbers[row_starts[structure_id] : row_starts[structure_id + 1]] = atoms.numbers

    dense_ids: dict[int, list[int]] = {}
    sparse_ids: list[int] = []
    for structure_id, atoms in enumerate(images):
        if len(atoms) == 0:
            continue
        if atoms.pbc.any() or len(atoms) > _DENSE_MAX_ATOMS:
            sparse_ids.append(structure_id)
        else:
            dense_ids.setdefault(len(atoms), []).append(structure_id)

    with tqdm(total=len(images), unit="structure", disable=not progress) as bar:
        bar.update(int(np.sum(sizes == 0)))
        for n_atoms, ids in dense_ids.items():
            # Slice each group so that one batch stays within the memory budget.
            n_pairs = max(1, (n_atoms - 1) * (n_atoms - 2) // 2)
            batch = max(1, _PAIR_BUDGET // (n_atoms * n_pairs))
            for start in range(0, len(ids), batch):
                batch_ids = np.asarray(ids[start : start + batch])
                positions = np.stack([images[i].positions for i in batch_ids])
                batch_numbers = np.stack([images[i].numbers for i in batch_ids])
                values = _dense_batch(positions, batch_numbers, batch_ids, tables, parameters)
                rows = (row_starts[batch_ids][:, None] + np.arange(n_atoms)).ravel()
                features[rows] = values
                bar.update(len(batch_ids))
        for structure_id in sparse_ids:
            rows = slice(row_starts[structure_id], row_starts[structure_id + 1])
            features[rows] = _neighbour_list_structure(
                images[structure_id], structure_id, tables, parameters
            )
            bar.update(1)

    logger.debug(
        "Computed %d eeACSFs for %d atoms in %d structures (%d via neighbour list) in %.2f s.",
        parameters.n_features,
        n_total,
        len(images),
        len(sparse_ids),
        time.perf_counter() - started,
    )
    return DescriptorSet(features, numbers, structure_index)


def eeacsf(atoms: Atoms, parameters: EEACSFParameters = SN2_PARAMETERS) -> np.ndarray:
    """Compute the eeACSFs of every atom of one structure.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure with positions in Å and elements from H to Xe. Periodic
        boundary conditions are taken from ``atoms.pbc`` and ``atoms.cell``.
    parameters : EEACSFParameters, default=SN2_PARAMETERS
        The symmetry functions to compute.

    Returns
    -------
    numpy.ndarray of float64, shape (len(atoms), parameters.n_features)

    Raises
    ------
    ValueError
        As :func:`eeacsf_many`, with the structure reported as structure 0.
    """
    return eeacsf_many([atoms], parameters).features


# ---------------------------------------------------------------------------
# Post-processing
# ---------------------------------------------------------------------------


class ScaledDescriptors(NamedTuple):
    """Scaled eeACSFs and the shift and scale that produced them."""

    scaled: np.ndarray
    """(n_atoms, n_features) values of (sqrt(G) - shift) / scale."""
    shift: np.ndarray
    """(n_features,) mean of sqrt(G) per column."""
    scale: np.ndarray
    """(n_features,) standard deviation of sqrt(G) per column, 1 for constant columns."""


def scale_descriptors(
    features: np.ndarray,
    shift: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> ScaledDescriptors:
    """Take the square root of eeACSFs and standardise each column.

    Without ``shift`` and ``scale``, they are fitted to ``features``: the shift
    is the column mean of sqrt(G) and the scale its population standard
    deviation (ddof=0). A column whose standard deviation is at most 1e-12
    times max(1, |mean|), such as a constant column, gets scale 1, so it maps
    to about 0 rather than NaN or infinity. Pass the returned shift and scale
    to apply the same transformation to new data.

    Parameters
    ----------
    features : array-like of float, shape (n_atoms, n_features)
        Non-negative eeACSF values, as returned by :func:`eeacsf_many`.
    shift, scale : array-like of float, shape (n_features,), optional
        A fitted transformation to apply. Give both or neither.

    Returns
    -------
    ScaledDescriptors
        ``(scaled, shift, scale)``, all float64.

    Raises
    ------
    ValueError
        If ``features`` is not 2-D, contains NaN, infinite or negative values,
        if only one of ``shift`` and ``scale`` is given, or if their shape or
        values do not fit.
    """
    values = np.asarray(features, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(
            f"features must have shape (n_atoms, n_features), got shape {values.shape}."
        )
    if not np.isfinite(values).all():
        raise ValueError("features contain NaN or infinite values. Recompute the descriptors.")
    if (values < 0).any():
        raise ValueError(
            f"features must be non-negative before the square root, got a minimum of "
            f"{values.min()!r}. Pass unscaled eeACSF values."
        )
    roots = np.sqrt(values)

    if (shift is None) != (scale is None):
        raise ValueError("Give both shift and scale to apply a fitted scaling, or neither to fit one.")
    if shift is None:
        if values.shape[0] == 0:
            raise ValueError("Cannot fit a scaling to zero atoms. Pass at least one row.")
        shift_values = roots.mean(axis=0)
        spread = roots.std(axis=0)
        constant = spread <= 1e-12 * np.maximum(1.0, np.abs(shift_values))
        scale_values = np.where(constant, 1.0, spread)
        if constant.any():
            logger.debug("%d constant descriptor columns get scale 1.", int(constant.sum()))
    else:
        shift_values = np.asarray(shift, dtype=np.float64)
        scale_values = np.asarray(scale, dtype=np.float64)
        expected = (values.shape[1],)
        if shift_values.shape != expected or scale_values.shape != expected:
            raise ValueError(
                f"shift and scale must have shape {expected}, got {shift_values.shape} and "
                f"{scale_values.shape}. Use the shift and scale fitted on the same parameters."
            )
        if not (np.isfinite(shift_values).all() and np.isfinite(scale_values).all()):
            raise ValueError("shift and scale must be finite.")
        if (scale_values <= 0).any():
            raise ValueError("scale must be positive in every column.")
    return ScaledDescriptors((roots - shift_values) / scale_values, shift_values, scale_values)
