"""Generate the S_N2 reaction data set data/sn2.xyz with GFN2-xTB.

The data set covers 42 gas-phase S_N2 reactions X- + R-Y -> X-R + Y-:

* R is methyl or tert-butyl and the leaving group Y is Cl or I.
* X is F, Br, I, OH, OCH3, NH2, ethynyl (attacking through carbon), CN
  (attacking through carbon), SH or SeH. Together with R and Y this gives
  40 reactions.
* Cl- + R-Cl for both R gives the other 2.

Every structure has total charge -1 and is a singlet.

Each reaction is sampled on a grid of two distances along a collinear
backside attack. The central carbon sits at the origin, the leaving group Y
on the -z axis at d(C-Y) and the attacking atom of X on the +z axis at
d(X-C). The three substituents of the central carbon (H for methyl, CH3 for
tert-butyl) form an umbrella. Its angle follows the reaction coordinate

    s = d(X-C) / b(X-C) - d(C-Y) / b(C-Y),

where b are the equilibrium bond lengths. For s >> 0 (reactant, X far and Y
bonded) the substituents lean towards the +z side, which gives a Y-C-R angle
of 109.47 degrees. At s = 0 they lie in the xy plane, as in the transition
state. For s << 0 (product) the umbrella is inverted. A tanh of s makes the
change smooth. A seeded Gaussian displacement of every atom breaks the exact
collinear symmetry of the grid.

GFN2-xTB through tblite's ASE calculator supplies the energy and forces.
Points where the self-consistent field (SCF) does not converge, or where the
forces are not finite, are logged, counted per reaction and left out, so
every written structure has its energy and forces.

The output is extended XYZ with positions in Angstrom, the info key
``energy`` in eV and the per-atom array ``forces`` in eV/Angstrom. The info
keys ``reaction``, ``d_xc`` and ``d_cy`` (grid distances in Angstrom, before
the random displacement), ``charge`` and ``multiplicity`` are written as well.
The defaults of the command-line options are the parameters of the shipped
file, so ``python data/generate_sn2.py`` reproduces it.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

LOGGER = logging.getLogger("generate_sn2")

TOTAL_CHARGE = -1
MULTIPLICITY = 1

# Bond lengths of the built geometries, in Angstrom.
C_H_BOND = 1.09
C_C_BOND = 1.53
TETRAHEDRAL_ANGLE = 109.47  # degrees

# Approximate gas-phase C-X bond lengths of CH3-X, in Angstrom. They set where
# each distance axis of the grid starts and where the umbrella is planar, so
# values within a few hundredths of an Angstrom are good enough.
EQUILIBRIUM_BOND = {
    "F": 1.38,
    "Cl": 1.78,
    "Br": 1.93,
    "I": 2.14,
    "OH": 1.43,
    "OCH3": 1.41,
    "NH2": 1.47,
    "CCH": 1.46,
    "CN": 1.46,
    "SH": 1.82,
    "SeH": 1.96,
}

# Ions and their labels in the reaction names, in the order of the data set.
NUCLEOPHILE_LABELS = {
    "F": "F-",
    "Br": "Br-",
    "I": "I-",
    "OH": "OH-",
    "OCH3": "CH3O-",
    "NH2": "NH2-",
    "CCH": "HCC-",
    "CN": "CN-",
    "SH": "SH-",
    "SeH": "SeH-",
}
ALKYL_LABELS = {"methyl": "CH3", "tert-butyl": "(CH3)3C"}
LEAVING_GROUPS = ("Cl", "I")


@dataclass(frozen=True)
class Reaction:
    """One S_N2 reaction X- + R-Y -> X-R + Y-."""

    nucleophile: str  # key of EQUILIBRIUM_BOND, for example "OCH3"
    alkyl: str  # "methyl" or "tert-butyl"
    leaving_group: str  # "Cl" or "I"

    @property
    def name(self) -> str:
        """Reaction name as stored in the ``reaction`` info key, e.g. "F- + CH3Cl"."""
        label = NUCLEOPHILE_LABELS.get(self.nucleophile, f"{self.nucleophile}-")
        return f"{label} + {ALKYL_LABELS[self.alkyl]}{self.leaving_group}"


def list_reactions() -> list[Reaction]:
    """Return the 42 reactions of the data set in a fixed order."""
    reactions = []
    for alkyl in ALKYL_LABELS:
        for leaving_group in LEAVING_GROUPS:
            for nucleophile in NUCLEOPHILE_LABELS:
                reactions.append(Reaction(nucleophile, alkyl, leaving_group))
    for alkyl in ALKYL_LABELS:
        reactions.append(Reaction("Cl", alkyl, "Cl"))
    return reactions


def unit_vector(polar_deg: float, azimuth_deg: float) -> np.ndarray:
    """Return the unit vector at a polar angle from +z and an azimuth from +x."""
    polar = math.radians(polar_deg)
    azimuth = math.radians(azimuth_deg)
    return np.array(
        [
            math.sin(polar) * math.cos(azimuth),
            math.sin(polar) * math.sin(azimuth),
            math.cos(polar),
        ]
    )


def methyl_hydrogens(
    carbon: np.ndarray, axis: np.ndarray, reference: np.ndarray, phase_deg: float
) -> np.ndarray:
    """Place the three hydrogens of a methyl group with tetrahedral angles.

    ``axis`` points from the atom the methyl carbon is bonded to towards the
    carbon. The hydrogen at azimuth ``phase_deg`` about the axis lies in the
    half-plane spanned by the axis and ``reference``, which must not be
    parallel to the axis. The others follow at +120 and +240 degrees.
    """
    axis = axis / np.linalg.norm(axis)
    first = reference - np.dot(reference, axis) * axis
    first /= np.linalg.norm(first)
    second = np.cross(axis, first)

    # Each C-H bond makes 180 - 109.47 degrees with the axis.
    along = math.cos(math.radians(180.0 - TETRAHEDRAL_ANGLE))
    across = math.sin(math.radians(180.0 - TETRAHEDRAL_ANGLE))
    hydrogens = []
    for k in range(3):
        azimuth = math.radians(phase_deg + 120.0 * k)
        direction = along * axis + across * (
            math.cos(azimuth) * first + math.sin(azimuth) * second
        )
        hydrogens.append(carbon + C_H_BOND * direction)
    return np.array(hydrogens)


def build_nucleophile(nucleophile: str) -> tuple[list[str], np.ndarray]:
    """Build the nucleophile with its attacking atom at the origin.

    The central carbon lies on the -z side, so the other atoms point away
    from it along +z, tilted by the bond angle they have in CH3-X. Tilted
    atoms sit at azimuth 60 degrees, which is staggered against the
    methyl hydrogens at 0, 120 and 240 degrees. Bond lengths are in Angstrom
    and angles in degrees.
    """
    origin = np.zeros(3)
    if nucleophile in ("F", "Cl", "Br", "I"):
        return [nucleophile], np.array([origin])

    if nucleophile in ("OH", "SH", "SeH"):
        # (heavy atom, X-H bond, C-X-H angle) for CH3OH, CH3SH and CH3SeH
        heavy, bond, angle = {
            "OH": ("O", 0.96, 108.5),
            "SH": ("S", 1.34, 96.5),
            "SeH": ("Se", 1.47, 95.0),
        }[nucleophile]
        hydrogen = bond * unit_vector(180.0 - angle, 60.0)
        return [heavy, "H"], np.array([origin, hydrogen])

    if nucleophile == "OCH3":
        # O-CH3 bond of 1.41 Angstrom and C-O-C angle of 112 degrees
        direction = unit_vector(180.0 - 112.0, 60.0)
        methyl = 1.41 * direction
        hydrogens = methyl_hydrogens(methyl, direction, np.array([0.0, 0.0, 1.0]), 0.0)
        return ["O", "C", "H", "H", "H"], np.vstack([origin, methyl, hydrogens])

    if nucleophile == "NH2":
        # N-H bond of 1.01 Angstrom, C-N-H angle of 110 degrees and H-N-H
        # angle of 106 degrees. The hydrogens share the polar angle and are
        # split in azimuth about 0 degrees, anti to the methyl hydrogens at
        # 120 and 240 degrees.
        polar = 180.0 - 110.0
        cos_polar = math.cos(math.radians(polar))
        sin_polar = math.sin(math.radians(polar))
        cos_split = (math.cos(math.radians(106.0)) - cos_polar**2) / sin_polar**2
        half_split = 0.5 * math.degrees(math.acos(cos_split))
        first = 1.01 * unit_vector(polar, half_split)
        second = 1.01 * unit_vector(polar, -half_split)
        return ["N", "H", "H"], np.array([origin, first, second])

    if nucleophile == "CCH":
        # Linear C#C-H with bonds of 1.21 and 1.06 Angstrom
        return ["C", "C", "H"], np.array([origin, [0.0, 0.0, 1.21], [0.0, 0.0, 2.27]])

    if nucleophile == "CN":
        # Linear C#N with a bond of 1.16 Angstrom
        return ["C", "N"], np.array([origin, [0.0, 0.0, 1.16]])

    raise ValueError(
        f"unknown nucleophile {nucleophile!r}; expected one of {sorted(EQUILIBRIUM_BOND)}"
    )


def umbrella_progress(reaction: Reaction, d_xc: float, d_cy: float, width: float) -> float:
    """Return tanh(s / width) for the reaction coordinate s of the module docstring.

    The value is +1 for the reactant, 0 at the planar transition-state-like
    umbrella and -1 for the product.
    """
    coordinate = (
        d_xc / EQUILIBRIUM_BOND[reaction.nucleophile]
        - d_cy / EQUILIBRIUM_BOND[reaction.leaving_group]
    )
    return math.tanh(coordinate / width)


def build_structure(reaction: Reaction, d_xc: float, d_cy: float, width: float) -> Atoms:
    """Build the collinear X...C...Y geometry of one grid point, without displacement.

    Distances are in Angstrom, and ``width`` sets how sharply the umbrella
    inverts as a function of the reaction coordinate s.
    """
    progress = umbrella_progress(reaction, d_xc, d_cy, width)
    # Polar angle of the substituents from +z: 70.53 (reactant), 90, 109.47 (product)
    polar = 90.0 - (TETRAHEDRAL_ANGLE - 90.0) * progress

    symbols = ["C", reaction.leaving_group]
    positions = [np.zeros(3), np.array([0.0, 0.0, -d_cy])]

    nucleophile_symbols, nucleophile_positions = build_nucleophile(reaction.nucleophile)
    symbols += nucleophile_symbols
    positions += list(nucleophile_positions + np.array([0.0, 0.0, d_xc]))

    # The methyl groups of tert-butyl turn by 60 degrees over the reaction so
    # that their hydrogens stay staggered: anti to Y in the reactant and anti
    # to X in the product.
    methyl_phase = 30.0 * (1.0 - progress)
    for k in range(3):
        direction = unit_vector(polar, 120.0 * k)
        if reaction.alkyl == "methyl":
            symbols.append("H")
            positions.append(C_H_BOND * direction)
        else:
            carbon = C_C_BOND * direction
            hydrogens = methyl_hydrogens(
                carbon, direction, np.array([0.0, 0.0, 1.0]), methyl_phase
            )
            symbols += ["C", "H", "H", "H"]
            positions += [carbon, *hydrogens]

    return Atoms(symbols=symbols, positions=np.array(positions))


def distance_axis(bond: float, start_factor: float, stop: float, points: int) -> np.ndarray:
    """Return ``points`` evenly spaced distances from start_factor * bond to stop (Angstrom)."""
    return np.linspace(start_factor * bond, stop, points)


def make_calculator(method: str, guess: str, max_iterations: int, mixer_memory: int):
    """Create a fresh tblite calculator for the total charge -1 singlet.

    A new calculator per structure keeps each result independent of the
    previous one, because tblite otherwise restarts the SCF from the last
    wavefunction.
    """
    from tblite.ase import TBLite

    return TBLite(
        method=method,
        charge=TOTAL_CHARGE,
        multiplicity=MULTIPLICITY,
        guess=guess,
        max_iterations=max_iterations,
        mixer_memory=mixer_memory,
        verbosity=0,
    )


def compute_single_point(atoms: Atoms, args: argparse.Namespace) -> tuple[float, np.ndarray, int]:
    """Compute energy (eV) and forces (eV/Angstrom) of one structure.

    The SCF starts from the guesses in ``args.guesses`` in turn until one
    converges. Returns the energy, the forces and the number of guesses that
    failed before it. Raises the last tblite error when every guess fails.
    """
    from ase.calculators.calculator import CalculationFailed
    from tblite.exceptions import TBLiteRuntimeError

    for attempt, guess in enumerate(args.guesses):
        atoms.calc = make_calculator(args.method, guess, args.max_iterations, args.mixer_memory)
        try:
            return atoms.get_potential_energy(), atoms.get_forces(), attempt
        except (CalculationFailed, TBLiteRuntimeError):
            if attempt == len(args.guesses) - 1:
                raise
    raise ValueError("args.guesses is empty")


def iterate_grid(reaction: Reaction, args: argparse.Namespace, rng: np.random.Generator):
    """Yield ``(d_xc, d_cy, atoms)`` for every grid point of one reaction.

    The distances are the grid values in Angstrom; the structure already
    carries its seeded Gaussian displacement. The displacement is drawn for
    every point, whether or not its SCF later converges, so a failed point
    does not shift the random numbers of the points after it.
    """
    d_xc_axis = distance_axis(
        EQUILIBRIUM_BOND[reaction.nucleophile], args.start_factor, args.max_distance, args.points
    )
    d_cy_axis = distance_axis(
        EQUILIBRIUM_BOND[reaction.leaving_group], args.start_factor, args.max_distance, args.points
    )
    for d_xc in d_xc_axis:
        for d_cy in d_cy_axis:
            atoms = build_structure(reaction, float(d_xc), float(d_cy), args.umbrella_width)
            atoms.positions += rng.normal(0.0, args.displacement, size=atoms.positions.shape)
            yield float(d_xc), float(d_cy), atoms


def compute_reaction(
    reaction: Reaction,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> tuple[list[Atoms], int, int, int]:
    """Compute the grid of one reaction.

    Returns the structures with energy and forces, the number of points
    whose SCF converged only from a later guess, the number of SCF failures
    and the number of points dropped for non-finite energy or forces.
    """
    from ase.calculators.calculator import CalculationFailed
    from tblite.exceptions import TBLiteRuntimeError

    structures = []
    retried = 0
    scf_failures = 0
    nonfinite = 0
    for d_xc, d_cy, atoms in iterate_grid(reaction, args, rng):
        try:
            energy, forces, failed_guesses = compute_single_point(atoms, args)
        except (CalculationFailed, TBLiteRuntimeError) as error:
            scf_failures += 1
            LOGGER.debug("%s: d_xc=%.3f d_cy=%.3f left out: %s", reaction.name, d_xc, d_cy, error)
            continue
        if failed_guesses:
            retried += 1

        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            nonfinite += 1
            LOGGER.warning(
                "%s: d_xc=%.3f d_cy=%.3f left out: energy or forces not finite",
                reaction.name,
                d_xc,
                d_cy,
            )
            continue

        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info.update(
            reaction=reaction.name,
            d_xc=round(d_xc, 4),
            d_cy=round(d_cy, 4),
            charge=TOTAL_CHARGE,
            multiplicity=MULTIPLICITY,
        )
        structures.append(atoms)
    return structures, retried, scf_failures, nonfinite


def write_atomically(path: Path, structures: list[Atoms]) -> None:
    """Write extended XYZ to a temporary file next to ``path``, then rename it.

    A failed run leaves no partial file and keeps any earlier ``path``.
    """
    import ase.io

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    os.close(descriptor)
    try:
        ase.io.write(temporary, structures, format="extxyz")
        # mkstemp creates the file readable by its owner only, so apply the
        # usual permissions of a new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command-line options, whose defaults reproduce data/sn2.xyz."""
    parser = argparse.ArgumentParser(
        description="Compute the S_N2 reaction data set with GFN2-xTB (tblite).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    # Output and grid.
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent / "sn2.xyz",
        help="extended XYZ file to write",
    )
    parser.add_argument(
        "--points", type=int, default=10, help="grid points on each distance axis"
    )
    parser.add_argument(
        "--start-factor",
        type=float,
        default=0.85,
        help="first grid distance as a fraction of the equilibrium C-X or C-Y bond length",
    )
    parser.add_argument(
        "--max-distance",
        type=float,
        default=5.0,
        help="last grid distance on each axis, in Angstrom",
    )
    parser.add_argument(
        "--umbrella-width",
        type=float,
        default=0.15,
        help="width of the tanh that inverts the umbrella, in units of the "
        "reaction coordinate s (dimensionless)",
    )
    parser.add_argument(
        "--displacement",
        type=float,
        default=0.05,
        help="standard deviation of the Gaussian displacement of every atom, in Angstrom",
    )

    # Random displacement.
    parser.add_argument("--seed", type=int, default=20240, help="seed of the displacements")

    # Electronic structure.
    parser.add_argument("--method", default="GFN2-xTB", help="tblite method")
    parser.add_argument(
        "--guesses",
        nargs="+",
        choices=("eeq", "sad", "eeqbc"),
        default=["eeq", "sad"],
        help="initial SCF guesses, tried in turn until the SCF converges",
    )
    parser.add_argument(
        "--max-iterations", type=int, default=500, help="SCF iterations per guess"
    )
    parser.add_argument(
        "--mixer-memory",
        type=int,
        default=50,
        help="history vectors of the Broyden mixer; tblite's 0 keeps all "
        "--max-iterations of them, which makes long SCF runs slow",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every left-out point"
    )

    args = parser.parse_args(argv)
    if args.points < 2:
        parser.error(f"--points must be at least 2, got {args.points}")
    if args.displacement < 0:
        parser.error(f"--displacement must not be negative, got {args.displacement}")
    if args.umbrella_width <= 0:
        parser.error(f"--umbrella-width must be positive, got {args.umbrella_width}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Compute all reactions, write the output file and log a summary."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        import tblite.ase  # noqa: F401
    except ImportError:
        LOGGER.error("tblite is not installed; install it with 'pip install tblite'")
        return 1

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    structures: list[Atoms] = []
    total_retried = 0
    total_scf_failures = 0
    total_nonfinite = 0
    for reaction in list_reactions():
        reaction_structures, retried, scf_failures, nonfinite = compute_reaction(
            reaction, args, rng
        )
        structures += reaction_structures
        total_retried += retried
        total_scf_failures += scf_failures
        total_nonfinite += nonfinite
        LOGGER.info(
            "%-20s %3d structures written (%d after a retried guess), "
            "%d SCF failures, %d non-finite",
            reaction.name,
            len(reaction_structures),
            retried,
            scf_failures,
            nonfinite,
        )

    write_atomically(args.output, structures)
    LOGGER.info(
        "wrote %d structures (%d after a retried guess) to %s (%.1f MB) in %.0f s; "
        "left out %d SCF failures and %d non-finite points",
        len(structures),
        total_retried,
        args.output,
        args.output.stat().st_size / 1e6,
        time.perf_counter() - start,
        total_scf_failures,
        total_nonfinite,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
