"""Tests of the eeACSF descriptors against hand-written scalar formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms

from layersize import descriptors
from layersize.descriptors import (
    SN2_PARAMETERS,
    EEACSFParameters,
    cutoff_function,
    eeacsf,
    eeacsf_many,
    element_properties,
    scale_descriptors,
    weight_maximum,
)

# (period, s+p valence electrons, d electrons), entered by hand for the tests.
HAND_PROPERTIES = {
    1: (1, 1, 0),  # H
    6: (2, 4, 0),  # C
    7: (2, 5, 0),  # N
    8: (2, 6, 0),  # O
    9: (2, 7, 0),  # F
    17: (3, 7, 0),  # Cl
    35: (4, 7, 10),  # Br
}


def hand_property(z: int, name: str) -> float:
    """Return h_t(Z), the property divided by its divisor, from HAND_PROPERTIES."""
    n, sp, d = HAND_PROPERTIES[z]
    values = {
        "1": 1.0,
        "n": n / 5,
        "sp": sp / 8,
        "d": d / 10,
        "6-n": (6 - n) / 5,
        "9-sp": (9 - sp) / 8,
        "11-d": (11 - d) / 10,
    }
    return values[name]


def hand_cutoff(r: float, cutoff: float) -> float:
    return math.exp(1.0 - 1.0 / (1.0 - (r / cutoff) ** 2)) if r < cutoff else 0.0


def hand_angular_weight(combination: str, name: str, z_j: int, z_k: int) -> float:
    h_j, h_k = hand_property(z_j, name), hand_property(z_k, name)
    h_max = 1.1 if name == "11-d" else 1.0
    if combination == "sum":
        return (h_j + h_k) / 2 / h_max
    if h_j == 0 and h_k == 0:
        return 0.0
    return (abs(h_j - h_k) + 1) / (h_max + 1)


def reference_centre(vectors, numbers, parameters: EEACSFParameters) -> np.ndarray:
    """Evaluate the eeACSFs of one centre with plain loops over neighbours and pairs."""
    cutoff = parameters.cutoff
    radii = [math.sqrt(sum(c * c for c in v)) for v in vectors]
    values = []
    for name in parameters.radial_weights:
        h_max = 1.1 if name == "11-d" else 1.0
        for eta in parameters.radial_etas:
            total = 0.0
            for r, z in zip(radii, numbers):
                total += hand_property(z, name) / h_max * math.exp(-eta * r * r) * hand_cutoff(r, cutoff)
            values.append(total)
    for combination, name in parameters.angular_weights:
        for eta in parameters.angular_etas:
            for lam in parameters.angular_lambdas:
                for zeta in parameters.angular_zetas:
                    total = 0.0
                    for j in range(len(vectors)):
                        for k in range(j + 1, len(vectors)):
                            r_j, r_k = radii[j], radii[k]
                            cosine = sum(a * b for a, b in zip(vectors[j], vectors[k])) / (r_j * r_k)
                            total += (
                                hand_angular_weight(combination, name, numbers[j], numbers[k])
                                * math.exp(-eta * r_j * r_j)
                                * hand_cutoff(r_j, cutoff)
                                * math.exp(-eta * r_k * r_k)
                                * hand_cutoff(r_k, cutoff)
                                * max(0.0, 0.5 + 0.5 * lam * cosine) ** zeta
                            )
                    values.append(total)
    return np.array(values)


def reference_molecule(atoms: Atoms, parameters: EEACSFParameters) -> np.ndarray:
    rows = []
    for i in range(len(atoms)):
        others = [j for j in range(len(atoms)) if j != i]
        vectors = [list(atoms.positions[j] - atoms.positions[i]) for j in others]
        rows.append(reference_centre(vectors, [int(atoms.numbers[j]) for j in others], parameters))
    return np.array(rows)


def random_molecule(seed: int = 0, n_atoms: int = 9) -> Atoms:
    rng = np.random.default_rng(seed)
    numbers = rng.choice([1, 6, 7, 8, 9, 17, 35], size=n_atoms)
    numbers[:3] = (6, 6, 1)  # at least two pairs of like atoms for the permutation test
    positions = rng.normal(scale=1.8, size=(n_atoms, 3))
    return Atoms(numbers=numbers, positions=positions)


def fcl_molecule() -> Atoms:
    """F-C-Cl with C at the origin (atom order C, F, Cl)."""
    return Atoms("CFCl", positions=[(0.0, 0.0, 0.0), (1.35, 0.0, 0.0), (-0.6, 1.65, 0.2)])


def radial_column(parameters: EEACSFParameters, weight: str, eta_index: int) -> int:
    return parameters.radial_weights.index(weight) * len(parameters.radial_etas) + eta_index


def angular_column(parameters, weight, eta_index, lambda_index, zeta_index) -> int:
    n_eta = len(parameters.angular_etas)
    n_lambda = len(parameters.angular_lambdas)
    n_zeta = len(parameters.angular_zetas)
    type_index = parameters.angular_weights.index(weight)
    return (
        parameters.n_radial
        + ((type_index * n_eta + eta_index) * n_lambda + lambda_index) * n_zeta
        + zeta_index
    )


# --- cutoff function and element data ------------------------------------------------


def test_cutoff_function_values():
    cutoff = 12.0
    values = cutoff_function(np.array([0.0, cutoff / 2, cutoff, 1.5 * cutoff]), cutoff)
    assert values[0] == 1.0
    assert values[1] == pytest.approx(math.exp(-1.0 / 3.0), rel=1e-14)
    assert values[2] == 0.0
    assert values[3] == 0.0


def test_cutoff_function_decreases():
    values = cutoff_function(np.linspace(0.0, 12.0, 200), 12.0)
    assert np.all(np.diff(values) <= 0)


@pytest.mark.parametrize(
    ("z", "expected"),
    [
        (1, (1, 1, 0)),  # H 1s1
        (2, (1, 2, 0)),  # He 1s2
        (6, (2, 4, 0)),  # C 2s2 2p2
        (17, (3, 7, 0)),  # Cl 3s2 3p5
        (19, (4, 1, 0)),  # K 4s1
        (21, (4, 2, 1)),  # Sc 3d1 4s2
        (26, (4, 2, 6)),  # Fe 3d6 4s2
        (30, (4, 2, 10)),  # Zn 3d10 4s2
        (34, (4, 6, 10)),  # Se 3d10 4s2 4p4
        (35, (4, 7, 10)),  # Br 3d10 4s2 4p5
        (47, (5, 2, 9)),  # Ag in the aufbau order (ground state 4d10 5s1)
        (53, (5, 7, 10)),  # I 4d10 5s2 5p5
        (54, (5, 8, 10)),  # Xe 4d10 5s2 5p6
    ],
)
def test_element_properties_by_hand(z, expected):
    assert element_properties(z) == expected


@pytest.mark.parametrize("z", [0, 55, 118])
def test_element_properties_reject_range(z):
    with pytest.raises(ValueError, match="1 \\(H\\) to 54 \\(Xe\\)"):
        element_properties(z)


def test_weight_maximum_reading():
    assert weight_maximum("radial", "n") == 1.0
    assert weight_maximum("sum", "9-sp") == 1.0
    assert weight_maximum("difference", "sp") == 2.0
    assert weight_maximum("sum", "11-d") == pytest.approx(1.1)
    assert weight_maximum("difference", "11-d") == pytest.approx(2.1)


# --- parameter set --------------------------------------------------------------------


def test_sn2_parameter_counts():
    assert SN2_PARAMETERS.n_radial == 45
    assert SN2_PARAMETERS.n_angular == 108
    assert SN2_PARAMETERS.n_features == 153
    assert len(SN2_PARAMETERS.feature_labels) == 153
    assert len(set(SN2_PARAMETERS.feature_labels)) == 153
    assert SN2_PARAMETERS.cutoff == 12.0


def test_sn2_duplicate_mask_counts_24():
    mask = SN2_PARAMETERS.duplicate_feature_mask()
    assert mask.shape == (153,)
    assert mask.sum() == 24
    labels = np.array(SN2_PARAMETERS.feature_labels)
    for label in labels[mask]:
        assert label.startswith(("angular difference(6-n)", "angular difference(9-sp)"))


def test_sn2_duplicate_columns_in_molecule():
    features = eeacsf(random_molecule(seed=3, n_atoms=12))
    unique = np.unique(features, axis=1)
    assert unique.shape[1] == 153 - 24
    mask = SN2_PARAMETERS.duplicate_feature_mask()
    without_duplicates = np.unique(features[:, ~mask], axis=1)
    assert without_duplicates.shape[1] == 153 - 24


def test_feature_labels_follow_column_order():
    labels = SN2_PARAMETERS.feature_labels
    assert labels[radial_column(SN2_PARAMETERS, "n", 3)] == "radial n eta=0.044203"
    column = angular_column(SN2_PARAMETERS, ("difference", "n"), 1, 1, 1)
    assert labels[column] == "angular difference(n) eta=0.090144 lambda=-1 zeta=2.40942"


def test_fingerprint_stable_and_sensitive():
    same = EEACSFParameters.sn2_default()
    assert same.fingerprint() == SN2_PARAMETERS.fingerprint()
    data = SN2_PARAMETERS.to_dict()
    data["cutoff"] = 10.0
    changed = EEACSFParameters.from_dict(data)
    assert changed.fingerprint() != SN2_PARAMETERS.fingerprint()


def test_to_dict_round_trip():
    assert EEACSFParameters.from_dict(SN2_PARAMETERS.to_dict()) == SN2_PARAMETERS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cutoff": 0.0}, "cutoff must be a positive"),
        ({"radial_etas": (-0.1,)}, "radial_etas must be >= 0"),
        ({"angular_lambdas": (0.5,)}, "angular_lambdas must each be"),
        ({"angular_zetas": (0.0,)}, "angular_zetas must each be > 0"),
        ({"radial_weights": ("Z",)}, "Unknown element property 'Z'"),
        ({"angular_weights": (("product", "n"),)}, "Unknown angular combination 'product'"),
        ({"angular_weights": ("n",)}, "pair \\(combination, property\\)"),
    ],
)
def test_parameters_reject_invalid(change, message):
    data = SN2_PARAMETERS.to_dict() | change
    with pytest.raises(ValueError, match=message):
        EEACSFParameters.from_dict(data)


# --- values ---------------------------------------------------------------------------


def test_three_atom_values_by_hand():
    atoms = fcl_molecule()
    features = eeacsf(atoms)
    cutoff = 12.0
    c, f, cl = atoms.positions
    r_cf = float(np.linalg.norm(f - c))
    r_ccl = float(np.linalg.norm(cl - c))
    r_fcl = float(np.linalg.norm(cl - f))

    def gauss(eta, r):
        return math.exp(-eta * r * r) * hand_cutoff(r, cutoff)

    # Radial, centre C, weight n: F has n = 2, Cl has n = 3.
    eta = 0.044203
    expected = 0.4 * gauss(eta, r_cf) + 0.6 * gauss(eta, r_ccl)
    assert features[0, radial_column(SN2_PARAMETERS, "n", 3)] == pytest.approx(expected, rel=1e-12)

    # Angular, centre C, difference of n: (|0.4 - 0.6| + 1) / 2 = 0.6.
    eta, lam, zeta = 0.090144, -1.0, 2.409421
    cos_c = float(np.dot(f - c, cl - c)) / (r_cf * r_ccl)
    expected = 0.6 * gauss(eta, r_cf) * gauss(eta, r_ccl) * (0.5 + 0.5 * lam * cos_c) ** zeta
    column = angular_column(SN2_PARAMETERS, ("difference", "n"), 1, 1, 1)
    assert features[0, column] == pytest.approx(expected, rel=1e-12)

    # Angular, centre F, sum of 9 - sp: C gives 5/8, Cl gives 2/8, so (0.625 + 0.25) / 2.
    eta, lam, zeta = 0.011238, 1.0, 9.996864
    cos_f = float(np.dot(c - f, cl - f)) / (r_cf * r_fcl)
    expected = 0.4375 * gauss(eta, r_cf) * gauss(eta, r_fcl) * (0.5 + 0.5 * lam * cos_f) ** zeta
    column = angular_column(SN2_PARAMETERS, ("sum", "9-sp"), 0, 0, 2)
    assert features[1, column] == pytest.approx(expected, rel=1e-12)

    # Angular, centre Cl, difference of 9 - sp: (|0.625 - 0.25| + 1) / 2 = 0.6875.
    eta, lam, zeta = 0.011238, -1.0, 1.0
    cos_cl = float(np.dot(c - cl, f - cl)) / (r_ccl * r_fcl)
    expected = 0.6875 * gauss(eta, r_ccl) * gauss(eta, r_fcl) * (0.5 + 0.5 * lam * cos_cl) ** zeta
    column = angular_column(SN2_PARAMETERS, ("difference", "9-sp"), 0, 1, 0)
    assert features[2, column] == pytest.approx(expected, rel=1e-12)


def test_difference_weight_without_plus_one():
    parameters = EEACSFParameters(
        radial_weights=("d", "11-d"),
        radial_etas=(0.0,),
        angular_weights=(("difference", "d"), ("difference", "11-d"), ("sum", "d")),
        angular_etas=(0.0,),
        angular_lambdas=(1.0,),
        angular_zetas=(1.0,),
    )
    atoms = Atoms("CBrCl", positions=[(0.0, 0.0, 0.0), (1.9, 0.0, 0.0), (0.0, 1.8, 0.0)])
    features = eeacsf(atoms, parameters)
    c, br, cl = atoms.positions
    fc = [hand_cutoff(float(np.linalg.norm(b - a)), 12.0) for a, b in [(c, br), (c, cl), (br, cl)]]
    fc_cbr, fc_ccl, fc_brcl = fc
    cos_c = 0.0  # right angle at C
    cos_br = float(np.dot(c - br, cl - br)) / (np.linalg.norm(c - br) * np.linalg.norm(cl - br))

    # Radial at C: the d weight is 1 for Br and 0 for Cl. The 11 - d weight is 1/11 for Br
    # and 1 for Cl.
    assert features[0, 0] == pytest.approx(fc_cbr, rel=1e-12)
    assert features[0, 1] == pytest.approx(fc_cbr / 11 + fc_ccl, rel=1e-12)
    # Centre C: |d(Br) - d(Cl)| + 1 = 2, divided by 2.
    assert features[0, 2] == pytest.approx(fc_cbr * fc_ccl * (0.5 + 0.5 * cos_c), rel=1e-12)
    # Centre Br: C and Cl both have d = 0, so the +1 is left out and the weight is 0.
    assert features[1, 2] == 0.0
    # Centre Br, 11 - d: |1.1 - 1.1| + 1 = 1, divided by 1.1 + 1.
    expected = fc_cbr * fc_brcl * (0.5 + 0.5 * cos_br) / 2.1
    assert features[1, 3] == pytest.approx(expected, rel=1e-12)
    # Centre Br, sum of d: both 0.
    assert features[1, 4] == 0.0


def test_molecule_matches_scalar_reference():
    atoms = random_molecule(seed=1, n_atoms=6)
    expected = reference_molecule(atoms, SN2_PARAMETERS)
    np.testing.assert_allclose(eeacsf(atoms), expected, rtol=1e-11, atol=1e-14)


def test_cutoff_removes_distant_neighbours():
    parameters = EEACSFParameters.from_dict(SN2_PARAMETERS.to_dict() | {"cutoff": 3.0})
    atoms = Atoms("COH", positions=[(0.0, 0.0, 0.0), (1.2, 0.0, 0.0), (0.0, 3.5, 0.0)])
    features = eeacsf(atoms, parameters)
    pair = eeacsf(atoms[:2], parameters)
    np.testing.assert_array_equal(features[:2], pair)
    assert np.all(features[2] == 0.0)


def test_single_atom_gives_zeros():
    features = eeacsf(Atoms("O", positions=[(0.0, 0.0, 0.0)]))
    assert features.shape == (1, 153)
    assert np.all(features == 0.0)


def test_features_are_non_negative_float64():
    features = eeacsf(random_molecule(seed=5))
    assert features.dtype == np.float64
    assert features.min() >= 0.0


# --- invariances ----------------------------------------------------------------------


def test_rotation_and_translation_invariance():
    atoms = random_molecule(seed=2)
    expected = eeacsf(atoms)
    rng = np.random.default_rng(7)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = atoms.copy()
    moved.positions = atoms.positions @ rotation.T + np.array([3.0, -7.5, 12.25])
    np.testing.assert_allclose(eeacsf(moved), expected, rtol=0, atol=1e-10)


def test_reflection_invariance():
    atoms = random_molecule(seed=2)
    mirrored = atoms.copy()
    mirrored.positions[:, 0] *= -1.0
    np.testing.assert_allclose(eeacsf(mirrored), eeacsf(atoms), rtol=0, atol=1e-10)


def test_permutation_of_like_atoms():
    atoms = random_molecule(seed=4)
    expected = eeacsf(atoms)
    order = np.arange(len(atoms))
    order[[0, 1]] = order[[1, 0]]  # two C atoms
    order = order[::-1]  # reverse as well, which permutes all other atoms
    permuted = atoms[order]
    np.testing.assert_allclose(eeacsf(permuted), expected[order], rtol=0, atol=1e-10)


# --- periodic and large structures ----------------------------------------------------


def test_periodic_large_box_equals_gas_phase():
    atoms = random_molecule(seed=6)
    boxed = atoms.copy()
    boxed.set_cell([40.0, 40.0, 40.0])
    boxed.center()
    boxed.pbc = True
    np.testing.assert_allclose(eeacsf(boxed), eeacsf(atoms), rtol=0, atol=1e-12)


def test_neighbour_list_path_equals_dense(monkeypatch):
    atoms = random_molecule(seed=8, n_atoms=14)
    dense = eeacsf(atoms)
    monkeypatch.setattr(descriptors, "_DENSE_MAX_ATOMS", 0)
    np.testing.assert_allclose(eeacsf(atoms), dense, rtol=0, atol=1e-12)


def test_simple_cubic_crystal_matches_lattice_sum():
    parameters = EEACSFParameters(
        radial_weights=("1", "n"),
        radial_etas=(0.0, 0.2),
        angular_weights=(("sum", "sp"), ("difference", "n")),
        angular_etas=(0.05,),
        angular_lambdas=(1.0, -1.0),
        angular_zetas=(1.0, 4.0),
        cutoff=5.0,
    )
    a = 2.5
    crystal = Atoms("O", positions=[(0.0, 0.0, 0.0)], cell=[a, a, a], pbc=True)
    steps = np.arange(-2, 3)
    lattice = a * np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
    radii = np.linalg.norm(lattice, axis=1)
    neighbours = lattice[(radii > 0) & (radii < parameters.cutoff)]
    expected = reference_centre(neighbours.tolist(), [8] * len(neighbours), parameters)
    np.testing.assert_allclose(eeacsf(crystal, parameters)[0], expected, rtol=1e-11)


def test_supercell_repeats_features():
    crystal = Atoms(
        "CO", positions=[(0.0, 0.0, 0.0), (1.1, 0.4, 0.2)], cell=[3.0, 3.2, 3.4], pbc=True
    )
    parameters = EEACSFParameters.from_dict(SN2_PARAMETERS.to_dict() | {"cutoff": 4.0})
    primitive = eeacsf(crystal, parameters)
    supercell = eeacsf(crystal.repeat((2, 1, 1)), parameters)
    np.testing.assert_allclose(supercell, np.vstack([primitive, primitive]), rtol=1e-12)


# --- many structures ------------------------------------------------------------------


def test_eeacsf_many_keeps_input_order():
    images = [
        random_molecule(seed=10, n_atoms=7),
        fcl_molecule(),
        Atoms(),
        random_molecule(seed=11, n_atoms=7),
        Atoms("H", positions=[(0.0, 0.0, 0.0)]),
        Atoms(cell=[5.0, 5.0, 5.0], pbc=True),
    ]
    result = eeacsf_many(images, progress=False)
    sizes = [len(atoms) for atoms in images]
    assert result.features.shape == (sum(sizes), 153)
    np.testing.assert_array_equal(result.structure_index, np.repeat(np.arange(len(images)), sizes))
    np.testing.assert_array_equal(
        result.numbers, np.concatenate([atoms.numbers for atoms in images])
    )
    start = 0
    for atoms, size in zip(images, sizes):
        np.testing.assert_array_equal(result.features[start : start + size], eeacsf(atoms))
        start += size


def test_eeacsf_many_empty_list():
    result = eeacsf_many([])
    assert result.features.shape == (0, 153)
    assert result.numbers.shape == (0,)


def test_eeacsf_many_small_memory_budget(monkeypatch):
    images = [random_molecule(seed=seed, n_atoms=8) for seed in range(5)]
    expected = eeacsf_many(images).features
    monkeypatch.setattr(descriptors, "_PAIR_BUDGET", 30)
    np.testing.assert_array_equal(eeacsf_many(images).features, expected)


# --- scaling --------------------------------------------------------------------------


def test_scaling_standardises_columns():
    images = [random_molecule(seed=seed) for seed in range(6)]
    features = eeacsf_many(images).features
    scaled, shift, scale = scale_descriptors(features)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-10)
    np.testing.assert_allclose(shift, np.sqrt(features).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scale, np.sqrt(features).std(axis=0), rtol=1e-12)


def test_scaling_constant_column_stays_finite():
    features = np.column_stack([np.full(10, 0.49), np.zeros(10), np.linspace(0.0, 4.0, 10)])
    scaled, shift, scale = scale_descriptors(features)
    assert np.isfinite(scaled).all()
    assert scale[0] == 1.0
    assert scale[1] == 1.0
    np.testing.assert_allclose(scaled[:, :2], 0.0, atol=1e-12)
    assert shift[0] == pytest.approx(0.7)


def test_scaling_applies_fitted_values():
    features = eeacsf_many([random_molecule(seed=seed) for seed in range(4)]).features
    _, shift, scale = scale_descriptors(features[:20])
    applied = scale_descriptors(features[20:], shift, scale)
    np.testing.assert_allclose(applied.scaled, (np.sqrt(features[20:]) - shift) / scale)
    np.testing.assert_array_equal(applied.shift, shift)


def test_scaling_removes_column_factors():
    features = eeacsf_many([random_molecule(seed=seed) for seed in range(4)]).features
    factors = np.linspace(0.3, 2.0, features.shape[1])
    np.testing.assert_allclose(
        scale_descriptors(features * factors).scaled,
        scale_descriptors(features).scaled,
        atol=1e-9,
    )


@pytest.mark.parametrize(
    ("features", "kwargs", "message"),
    [
        (np.ones(5), {}, "shape \\(n_atoms, n_features\\)"),
        (np.array([[1.0, np.nan]]), {}, "NaN or infinite"),
        (np.array([[1.0, -0.5]]), {}, "non-negative"),
        (np.ones((3, 2)), {"shift": np.zeros(2)}, "both shift and scale"),
        (np.ones((3, 2)), {"shift": np.zeros(3), "scale": np.ones(3)}, "must have shape \\(2,\\)"),
        (np.ones((3, 2)), {"shift": np.zeros(2), "scale": np.zeros(2)}, "scale must be positive"),
    ],
)
def test_scaling_rejects_invalid(features, kwargs, message):
    with pytest.raises(ValueError, match=message):
        scale_descriptors(features, **kwargs)


# --- input errors ---------------------------------------------------------------------


def test_nan_position_names_structure_and_atom():
    bad = random_molecule(seed=12)
    bad.positions[4, 1] = np.nan
    with pytest.raises(ValueError, match="Atom 4 of structure 1 has a NaN"):
        eeacsf_many([random_molecule(seed=13), bad])


def test_unknown_element_is_named():
    atoms = Atoms("CCs", positions=[(0.0, 0.0, 0.0), (2.0, 0.0, 0.0)])
    with pytest.raises(ValueError, match="element Cs \\(Z=55\\)"):
        eeacsf(atoms)


def test_ghost_atom_is_rejected():
    atoms = Atoms("CX", positions=[(0.0, 0.0, 0.0), (2.0, 0.0, 0.0)])
    with pytest.raises(ValueError, match="element X \\(Z=0\\)"):
        eeacsf(atoms)


def test_coincident_atoms_are_rejected():
    atoms = Atoms("COH", positions=[(0.0, 0.0, 0.0), (1.2, 0.0, 0.0), (1.2, 0.0, 0.0)])
    with pytest.raises(ValueError, match="Atoms 1 and 2 of structure 0 are at the same position"):
        eeacsf(atoms)


def test_periodic_zero_cell_is_rejected():
    atoms = Atoms("H2", positions=[(0.0, 0.0, 0.0), (0.74, 0.0, 0.0)], pbc=True)
    with pytest.raises(ValueError, match="cell vectors there are zero or linearly dependent"):
        eeacsf(atoms)


def test_non_atoms_input_is_rejected():
    with pytest.raises(TypeError, match="Structure 0 must be an ase.Atoms"):
        eeacsf_many([np.zeros((3, 3))])
