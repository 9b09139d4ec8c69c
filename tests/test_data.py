"""Structure files to descriptor rows: reading, element selection and the disk cache."""

from __future__ import annotations

import logging
import zipfile

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from layersize.data import load_atomic_features, read_structures
from layersize.descriptors import SN2_PARAMETERS, eeacsf_many

ase_io = pytest.importorskip("ase.io")


def make_structures(n_structures=6, seed=0):
    """Return small displaced F- + CH3Cl-like structures with stored energies."""
    rng = np.random.default_rng(seed)
    base = np.array([
        [0.0, 0.0, 0.0],     # C
        [0.0, 0.0, -1.8],    # Cl
        [0.0, 0.0, 2.5],     # F
        [1.0, 0.0, 0.3],     # H
        [-0.5, 0.87, 0.3],   # H
        [-0.5, -0.87, 0.3],  # H
    ])
    structures = []
    for index in range(n_structures):
        atoms = Atoms("CClFH3", positions=base + rng.normal(0.0, 0.1, base.shape))
        atoms.calc = SinglePointCalculator(atoms, energy=-300.0 - index)
        structures.append(atoms)
    return structures


@pytest.fixture
def structure_file(tmp_path):
    path = tmp_path / "small.xyz"
    ase_io.write(path, make_structures())
    return path


def test_rows_counts_and_energies(structure_file, tmp_path):
    atomic = load_atomic_features(structure_file, cache_dir=None)

    assert atomic.features.shape == (36, SN2_PARAMETERS.n_features)
    assert atomic.features.dtype == np.float32
    np.testing.assert_array_equal(atomic.structure_index, np.repeat(np.arange(6), 6))
    np.testing.assert_array_equal(atomic.atoms_per_structure, np.full(6, 6))
    np.testing.assert_allclose(atomic.energies, -300.0 - np.arange(6))


def test_rows_are_scaled_square_roots(structure_file):
    atomic = load_atomic_features(structure_file, cache_dir=None)
    raw = eeacsf_many(read_structures(structure_file), SN2_PARAMETERS).features
    root = np.sqrt(raw)

    expected = (root - atomic.shift) / atomic.scale

    np.testing.assert_allclose(atomic.features, expected, rtol=1e-5, atol=1e-5)


def test_varying_columns_are_standardised(structure_file):
    atomic = load_atomic_features(structure_file, cache_dir=None)
    varying = atomic.features.std(axis=0) > 1e-3

    assert varying.sum() > 10
    np.testing.assert_allclose(atomic.features[:, varying].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(atomic.features[:, varying].std(axis=0), 1.0, atol=1e-4)


def test_element_keeps_rows_then_scales(structure_file):
    pooled = load_atomic_features(structure_file, cache_dir=None)
    hydrogen = load_atomic_features(structure_file, element="H", cache_dir=None)
    varying = hydrogen.features.std(axis=0) > 1e-3

    assert hydrogen.features.shape[0] == 18
    assert set(hydrogen.numbers.tolist()) == {1}
    assert hydrogen.element == "H"
    assert hydrogen.summary()["elements"] == {"H": 18}
    np.testing.assert_allclose(hydrogen.features[:, varying].mean(axis=0), 0.0, atol=1e-5)
    assert not np.allclose(hydrogen.shift, pooled.shift)


def test_cache_round_trip(structure_file, tmp_path, caplog):
    cache = tmp_path / "cache"

    first = load_atomic_features(structure_file, cache_dir=cache)
    with caplog.at_level(logging.INFO, logger="layersize.data"):
        second = load_atomic_features(structure_file, cache_dir=cache)

    assert len(list(cache.glob("*.npz"))) == 1
    assert "from the cache" in caplog.text
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.energies, second.energies)


def test_cache_key_follows_file_content(structure_file, tmp_path):
    cache = tmp_path / "cache"
    load_atomic_features(structure_file, cache_dir=cache)

    ase_io.write(structure_file, make_structures(seed=1))
    changed = load_atomic_features(structure_file, cache_dir=cache)
    direct = load_atomic_features(structure_file, cache_dir=None)

    assert len(list(cache.glob("*.npz"))) == 2
    np.testing.assert_array_equal(changed.features, direct.features)


def test_unreadable_cache_is_recomputed(structure_file, tmp_path, caplog):
    cache = tmp_path / "cache"
    expected = load_atomic_features(structure_file, cache_dir=cache)
    (cached,) = cache.glob("*.npz")
    cached.write_bytes(b"not an npz archive")

    with caplog.at_level(logging.WARNING, logger="layersize.data"):
        again = load_atomic_features(structure_file, cache_dir=cache)

    assert "unreadable descriptor cache" in caplog.text
    np.testing.assert_array_equal(again.features, expected.features)


@pytest.mark.parametrize("damage", ["truncate", "drop_key", "plain_array", "empty", "raw_member"])
def test_damaged_cache_is_recomputed(structure_file, tmp_path, caplog, damage):
    cache = tmp_path / "cache"
    expected = load_atomic_features(structure_file, cache_dir=cache)
    (cached,) = cache.glob("*.npz")
    if damage == "truncate":
        cached.write_bytes(cached.read_bytes()[:200])
    elif damage == "plain_array":
        with cached.open("wb") as handle:
            np.save(handle, np.zeros(3))
    elif damage == "empty":
        cached.write_bytes(b"")
    elif damage == "raw_member":
        with np.load(cached) as archive:
            keys = list(archive.files)
        with zipfile.ZipFile(cached, "w") as archive:
            for key in keys:
                archive.writestr(f"{key}.npy", b"not an array")
    else:
        with np.load(cached) as archive:
            remaining = {key: archive[key] for key in archive.files if key != "numbers"}
        np.savez(cached, **remaining)

    with caplog.at_level(logging.WARNING, logger="layersize.data"):
        again = load_atomic_features(structure_file, cache_dir=cache)

    assert "unreadable descriptor cache" in caplog.text
    np.testing.assert_array_equal(again.features, expected.features)


def test_structures_without_energy_give_nan(tmp_path):
    path = tmp_path / "no_energy.xyz"
    structures = make_structures(2)
    for atoms in structures:
        atoms.calc = None
    ase_io.write(path, structures)

    atomic = load_atomic_features(path, cache_dir=None)

    assert np.isnan(atomic.energies).all()


@pytest.mark.parametrize(
    ("element", "error", "message"),
    [("Xe", ValueError, "'Xe' is not present"), ("Qq", ValueError, "Unknown element symbol 'Qq'")],
)
def test_element_errors(structure_file, element, error, message):
    with pytest.raises(error, match=message):
        load_atomic_features(structure_file, element=element, cache_dir=None)


def test_missing_file_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.xyz"):
        load_atomic_features(tmp_path / "absent.xyz", cache_dir=None)


def test_nan_position_error(tmp_path):
    structures = make_structures(3)
    structures[1].positions[4, 2] = np.nan
    path = tmp_path / "nan.xyz"
    ase_io.write(path, structures)

    with pytest.raises(ValueError, match="Atom 4 of structure 1"):
        load_atomic_features(path, cache_dir=None)
