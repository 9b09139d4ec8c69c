"""Checks of the shipped S_N2 data set data/sn2.xyz and of its generator script."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

ase_io = pytest.importorskip("ase.io")

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DATA_FILE = DATA_DIR / "sn2.xyz"
SCRIPT = DATA_DIR / "generate_sn2.py"
ALLOWED_ELEMENTS = {"H", "C", "N", "O", "F", "S", "Cl", "Se", "Br", "I"}


def load_generator():
    """Import data/generate_sn2.py as a module, although data/ is not a package."""
    spec = importlib.util.spec_from_file_location("generate_sn2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator():
    return load_generator()


@pytest.fixture(scope="module")
def frames():
    if not DATA_FILE.exists():
        pytest.skip(f"{DATA_FILE} is missing; run 'python data/generate_sn2.py' to create it")
    return ase_io.read(DATA_FILE, index=":", format="extxyz")


@pytest.fixture(scope="module")
def frames_by_reaction(frames):
    grouped = defaultdict(list)
    for atoms in frames:
        grouped[atoms.info["reaction"]].append(atoms)
    return grouped


def test_reaction_list_has_42_reactions(generator):
    names = [reaction.name for reaction in generator.list_reactions()]

    assert len(names) == 42
    assert len(set(names)) == 42
    assert "F- + CH3Cl" in names
    assert "Cl- + (CH3)3CCl" in names


@pytest.mark.parametrize(
    ("nucleophile", "alkyl", "expected_atoms"),
    [
        ("F", "methyl", 6),
        ("OH", "methyl", 7),
        ("OCH3", "methyl", 10),
        ("NH2", "methyl", 8),
        ("CCH", "methyl", 8),
        ("CN", "methyl", 7),
        ("SeH", "methyl", 7),
        ("F", "tert-butyl", 15),
        ("OCH3", "tert-butyl", 19),
        ("CCH", "tert-butyl", 17),
    ],
)
def test_build_structure_atom_count(generator, nucleophile, alkyl, expected_atoms):
    reaction = generator.Reaction(nucleophile, alkyl, "Cl")

    atoms = generator.build_structure(reaction, 2.0, 2.5, width=0.15)

    assert len(atoms) == expected_atoms
    assert atoms.get_chemical_symbols()[:2] == ["C", "Cl"]


@pytest.mark.parametrize("nucleophile", ["F", "OH", "OCH3", "NH2", "CCH", "CN", "SH", "SeH"])
@pytest.mark.parametrize("alkyl", ["methyl", "tert-butyl"])
def test_build_structure_collinear_distances(generator, nucleophile, alkyl):
    reaction = generator.Reaction(nucleophile, alkyl, "I")

    atoms = generator.build_structure(reaction, 2.3, 2.9, width=0.15)

    # Atom 0 is the central carbon, 1 the leaving group, 2 the attacking atom.
    assert atoms.get_distance(0, 2) == pytest.approx(2.3)
    assert atoms.get_distance(0, 1) == pytest.approx(2.9)
    assert atoms.get_angle(1, 0, 2) == pytest.approx(180.0)


def test_build_structure_umbrella_inverts(generator):
    reaction = generator.Reaction("F", "methyl", "Cl")
    hydrogen = 3  # first hydrogen of the methyl group

    reactant = generator.build_structure(reaction, 5.0, 1.78, width=0.15)
    planar = generator.build_structure(reaction, 1.38 * 1.5, 1.78 * 1.5, width=0.15)
    product = generator.build_structure(reaction, 1.38, 5.0, width=0.15)

    assert reactant.get_angle(1, 0, hydrogen) == pytest.approx(109.47, abs=0.5)
    assert planar.get_angle(1, 0, hydrogen) == pytest.approx(90.0)
    assert product.get_angle(2, 0, hydrogen) == pytest.approx(109.47, abs=0.5)
    assert reactant.get_distance(0, hydrogen) == pytest.approx(1.09)


def test_data_structure_count(frames):
    assert len(frames) >= 3500


def test_data_has_all_reactions(frames_by_reaction, generator):
    expected = {reaction.name for reaction in generator.list_reactions()}

    assert set(frames_by_reaction) == expected


def test_data_charge_and_elements(frames):
    for index, atoms in enumerate(frames):
        assert atoms.info["charge"] == -1, f"structure {index}"
        assert atoms.info["multiplicity"] == 1, f"structure {index}"
        assert set(atoms.get_chemical_symbols()) <= ALLOWED_ELEMENTS, f"structure {index}"


def test_data_energy_and_forces_finite(frames):
    for index, atoms in enumerate(frames):
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()

        assert math.isfinite(energy), f"structure {index}"
        assert forces.shape == (len(atoms), 3), f"structure {index}"
        assert np.all(np.isfinite(forces)), f"structure {index}"


def test_data_forces_sum_to_zero(frames):
    # An isolated molecule feels no net force. The file rounds forces to 1e-8 eV/Angstrom.
    for index, atoms in enumerate(frames):
        net_force = atoms.get_forces().sum(axis=0)

        assert np.abs(net_force).max() < 1e-5, f"structure {index}"


def test_data_compressed_edge_lies_above_median(frames_by_reaction):
    # Pressing X or Y onto the central carbon costs energy, so the highest
    # energy on the compressed edges of the grid (smallest d_xc or smallest
    # d_cy) lies above each reaction's median. The overall maximum need not
    # lie there: a stretched C-Y bond with X far away can cost more.
    for name, structures in frames_by_reaction.items():
        energies = np.array([atoms.get_potential_energy() for atoms in structures])
        d_xc = np.array([atoms.info["d_xc"] for atoms in structures])
        d_cy = np.array([atoms.info["d_cy"] for atoms in structures])
        compressed = (d_xc == d_xc.min()) | (d_cy == d_cy.min())

        assert energies[compressed].max() > np.median(energies), name


def test_data_matches_generator_geometry(frames_by_reaction, generator):
    # The first reaction draws the first random numbers, so its displaced
    # geometries follow from the script's default seed alone.
    args = generator.parse_args([])
    reaction = generator.list_reactions()[0]
    rng = np.random.default_rng(args.seed)
    stored = {
        (atoms.info["d_xc"], atoms.info["d_cy"]): atoms
        for atoms in frames_by_reaction[reaction.name]
    }

    compared = 0
    for d_xc, d_cy, atoms in generator.iterate_grid(reaction, args, rng):
        key = (round(d_xc, 4), round(d_cy, 4))
        if key not in stored:
            continue  # left out because the SCF failed
        assert stored[key].get_chemical_symbols() == atoms.get_chemical_symbols()
        np.testing.assert_allclose(stored[key].positions, atoms.positions, atol=1e-7)
        compared += 1

    assert compared == len(stored)


def test_data_energy_matches_tblite(frames_by_reaction, generator):
    pytest.importorskip("tblite.ase", reason="tblite is not installed")
    args = generator.parse_args([])

    for name in ["F- + CH3Cl", "CN- + (CH3)3CI", "Cl- + CH3Cl"]:
        stored = frames_by_reaction[name][len(frames_by_reaction[name]) // 2]
        atoms = stored.copy()

        energy, forces, _ = generator.compute_single_point(atoms, args)

        assert energy == pytest.approx(stored.get_potential_energy(), abs=1e-4), name
        np.testing.assert_allclose(forces, stored.get_forces(), atol=1e-3, err_msg=name)
