"""Structure files to network input rows: reading, descriptors, scaling and caching.

A potential's atomic network takes one row per atom: the eeACSF descriptors of
that atom, square-rooted and standardised per input. All atoms can be pooled
into one network, or the rows of one element taken for that element's network.

Descriptors are cached on disk, keyed by the SHA-256 of the file's bytes and the
descriptor parameters, so a second run on the same file skips the computation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from layersize.atomic import atomic_path
from layersize.descriptors import (
    SN2_PARAMETERS,
    EEACSFParameters,
    eeacsf_many,
    scale_descriptors,
)
from layersize.images import IMAGE_FORMATS, ImageData, guess_image_format, load_images
from layersize.numpy_files import read_numpy_file

__all__ = [
    "AtomicFeatures",
    "InputRows",
    "default_cache_dir",
    "load_atomic_features",
    "load_inputs",
    "read_structures",
]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
CACHE_KEYS = ("features", "numbers", "structure_index", "energies", "atoms_per_structure")


def default_cache_dir() -> Path:
    """Return the descriptor cache folder.

    ``$LAYERSIZE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/layersize``, else
    ``~/.cache/layersize``.
    """
    if os.environ.get("LAYERSIZE_CACHE_DIR"):
        return Path(os.environ["LAYERSIZE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "layersize"


def read_structures(path: str | os.PathLike, format: str | None = None) -> list[Atoms]:
    """Read every structure of a file with ASE.

    Parameters
    ----------
    path : str or path-like
        Any file ASE reads; extended XYZ is the usual format.
    format : str, optional
        ASE format name, when the file name does not show it.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If ASE cannot read the file, or it holds no structures.
    """
    from ase.io import read

    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(
            f"Structure file {str(source)!r} not found. Give the path of an extended "
            f"XYZ file or another format ASE reads."
        )
    try:
        images = read(source, index=":", format=format)
    # ASE's readers raise many exception types for a malformed file, so the
    # boundary converts all of them to one message that names the file.
    except Exception as error:
        raise ValueError(
            f"ASE could not read {str(source)!r} as "
            f"{'format ' + repr(format) if format else 'a structure file'}: "
            f"{type(error).__name__}: {error}. Check the file, or name its format "
            f"(see ase.io.formats)."
        ) from error
    if isinstance(images, Atoms):
        images = [images]
    images = [atoms for atoms in images if len(atoms) > 0]
    if not images:
        raise ValueError(f"{str(source)!r} contains no structures with atoms.")
    return images


def _energy(atoms: Atoms) -> float:
    """Return the stored total energy in eV, or NaN when there is none."""
    if atoms.calc is not None:
        try:
            return float(atoms.get_potential_energy())
        except Exception:  # noqa: BLE001 - a stored calculator without an energy
            pass
    value = atoms.info.get("energy")
    return float(value) if isinstance(value, (int, float)) else float("nan")


@dataclass(frozen=True)
class AtomicFeatures:
    """Descriptor rows of the atoms of a structure file.

    Attributes
    ----------
    features : numpy.ndarray of shape (n_atoms, n_features)
        Scaled descriptors (√G, then zero mean and unit standard deviation per
        column over the selected atoms), float32.
    numbers : numpy.ndarray of shape (n_atoms,)
        Atomic number of each row.
    structure_index : numpy.ndarray of shape (n_atoms,)
        Index of the structure each row belongs to, into ``energies``.
    energies : numpy.ndarray of shape (n_structures,)
        Total energy of each structure in eV, NaN where the file has none.
    atoms_per_structure : numpy.ndarray of shape (n_structures,)
        Number of atoms of each structure (all elements).
    shift, scale : numpy.ndarray of shape (n_features,)
        Standardisation applied after the square root, for new data.
    element : str or None
        Symbol of the selected element, or None for all atoms pooled.
    source : str
        Path of the structure file.
    parameters : EEACSFParameters
        Descriptor parameters.
    """

    features: np.ndarray
    numbers: np.ndarray
    structure_index: np.ndarray
    energies: np.ndarray
    atoms_per_structure: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    element: str | None
    source: str
    parameters: EEACSFParameters

    @property
    def n_structures(self) -> int:
        return int(self.energies.size)

    def summary(self) -> dict:
        """Return counts for reports: structures, rows, inputs and elements."""
        symbols, counts = np.unique(self.numbers, return_counts=True)
        return {
            "source": self.source,
            "n_structures": self.n_structures,
            "n_rows": int(self.features.shape[0]),
            "n_features": int(self.features.shape[1]),
            "element": self.element,
            "elements": {chemical_symbols[int(z)]: int(c) for z, c in zip(symbols, counts)},
        }


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """Return the arrays of a descriptor cache file, or None (with a warning) if it is damaged."""
    try:
        arrays = read_numpy_file(path)
        if not isinstance(arrays, dict):
            raise ValueError(f"{path} contains one array, not an .npz archive")
        return {key: arrays[key] for key in CACHE_KEYS}
    except (OSError, ValueError, KeyError) as error:
        logger.warning("Ignoring unreadable descriptor cache %s: %s", path, error)
        return None


def _cache_file(cache_dir: Path, path: Path, parameters: EEACSFParameters, format: str | None) -> Path:
    key = json.dumps(
        {
            "version": CACHE_VERSION,
            "file": _file_digest(path),
            "format": format,
            "descriptors": parameters.fingerprint(),
        },
        sort_keys=True,
    )
    return cache_dir / f"eeacsf-{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"


def _compute_raw(path: Path, parameters: EEACSFParameters, format: str | None, progress: bool) -> dict:
    images = read_structures(path, format=format)
    logger.info("Computing %d descriptors for %d structures of %s", parameters.n_features, len(images), path)
    descriptors = eeacsf_many(images, parameters, progress=progress)
    return {
        "features": descriptors.features,
        "numbers": descriptors.numbers,
        "structure_index": descriptors.structure_index,
        "energies": np.array([_energy(atoms) for atoms in images]),
        "atoms_per_structure": np.array([len(atoms) for atoms in images]),
    }


def load_atomic_features(
    path: str | os.PathLike,
    element: str | None = None,
    parameters: EEACSFParameters = SN2_PARAMETERS,
    format: str | None = None,
    cache_dir: str | os.PathLike | None | bool = True,
    progress: bool = False,
) -> AtomicFeatures:
    """Read a structure file and return the scaled descriptor rows of its atoms.

    Parameters
    ----------
    path : str or path-like
        Structure file (extended XYZ or any format ASE reads).
    element : str, optional
        Chemical symbol: keep only the rows of this element, for the network of
        that element. By default all atoms are pooled into one network.
    parameters : EEACSFParameters, default=SN2_PARAMETERS
        Descriptor parameters; the default is the 153-function S_N2 set.
    format : str, optional
        ASE format name.
    cache_dir : path-like, True, or None/False, default=True
        Folder of the descriptor cache; True uses :func:`default_cache_dir`,
        None or False disables the cache.
    progress : bool, default=False
        Show a progress bar while descriptors are computed.

    Returns
    -------
    AtomicFeatures

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file cannot be read, has no structures, has NaN positions or an
        unsupported element, or has no atom of ``element``.
    """
    source = Path(path)
    if element is not None and element not in atomic_numbers:
        raise ValueError(f"Unknown element symbol {element!r}. Use a symbol such as 'C' or 'Cl'.")
    if not source.is_file():
        raise FileNotFoundError(
            f"Structure file {str(source)!r} not found. Give the path of an extended "
            f"XYZ file or another format ASE reads."
        )

    if cache_dir is True:
        folder = default_cache_dir()
    elif cache_dir:
        folder = Path(cache_dir)
    else:
        folder = None
    cached = _cache_file(folder, source, parameters, format) if folder is not None else None
    raw = None
    if cached is not None and cached.is_file():
        raw = _read_cache(cached)
        if raw is not None:
            logger.info("Read descriptors of %s from the cache %s", source, cached)
    if raw is None:
        raw = _compute_raw(source, parameters, format, progress)
        if cached is not None:
            try:
                with atomic_path(cached) as temporary:
                    np.savez(temporary, **raw)
                logger.info("Stored descriptors in the cache %s", cached)
            except OSError as error:
                logger.warning("Could not write the descriptor cache %s: %s", cached, error)

    rows = np.ones(raw["numbers"].shape, dtype=bool)
    if element is not None:
        rows = raw["numbers"] == atomic_numbers[element]
        if not rows.any():
            present = sorted({chemical_symbols[int(z)] for z in np.unique(raw["numbers"])})
            raise ValueError(
                f"Element {element!r} is not present in {str(source)!r}; it contains "
                f"{', '.join(present)}. Choose one of those elements."
            )
    scaled = scale_descriptors(raw["features"][rows])
    return AtomicFeatures(
        features=np.ascontiguousarray(scaled.scaled, dtype=np.float32),
        numbers=raw["numbers"][rows],
        structure_index=raw["structure_index"][rows],
        energies=raw["energies"],
        atoms_per_structure=raw["atoms_per_structure"],
        shift=scaled.shift,
        scale=scaled.scale,
        element=element,
        source=str(source),
        parameters=parameters,
    )


@dataclass(frozen=True)
class InputRows:
    """Network input rows read from a structure file or an image file.

    Attributes
    ----------
    features : numpy.ndarray of shape (n_rows, n_features)
        One row per atom (scaled descriptors) or per image (scaled pixels).
    kind : {"structures", "images"}
        Which kind of file the rows came from.
    source : AtomicFeatures or ImageData
        The full result of the reader, for training checks and reports.
    """

    features: np.ndarray
    kind: str
    source: AtomicFeatures | ImageData

    def summary(self) -> dict:
        """Return counts for reports, with ``kind`` added."""
        if isinstance(self.source, AtomicFeatures):
            return {"kind": self.kind, **self.source.summary()}
        return {
            "kind": self.kind,
            "source": str(self.source.source),
            "n_images": self.source.n_images,
            "n_rows": int(self.features.shape[0]),
            "n_features": int(self.features.shape[1]),
            "image_shape": list(self.source.shape) if self.source.shape else None,
            "labelled": self.source.labels is not None,
        }

    def describe(self) -> str:
        """Return a one-line description, such as '60 structures, 692 atoms, 153 descriptors per atom'."""
        summary = self.summary()
        if self.kind == "images":
            shape = summary["image_shape"]
            shape_text = f" ({'×'.join(str(size) for size in shape)})" if shape else ""
            return f"{summary['n_images']} images, {summary['n_features']} pixels each{shape_text}"
        element = summary["element"]
        return (
            f"{summary['n_structures']} structures, {summary['n_rows']} atoms"
            f"{' of ' + element if element else ''}, {summary['n_features']} descriptors per atom"
        )


def load_inputs(
    path: str | os.PathLike,
    format: str | None = None,
    *,
    element: str | None = None,
    cache_dir: str | os.PathLike | None | bool = True,
    label_column: str | None = None,
    image_scale: str = "unit",
    progress: bool = False,
) -> InputRows:
    """Read the input rows of a network from a structure file or an image file.

    An image file (IDX, CSV, ``.npz`` or ``.npy``, read by
    :func:`layersize.images.load_images`) is recognised by ``format`` or by its
    name. Every other file is read as structures with ASE and turned into
    descriptor rows by :func:`load_atomic_features`.

    Parameters
    ----------
    path : str or path-like
        Structure or image file.
    format : str, optional
        An image format ("idx", "csv", "npz", "npy") or an ASE format name.
    element : str, optional
        Structures only: keep the rows of this element.
    cache_dir : path-like, True, or None/False, default=True
        Structures only: descriptor cache, as in :func:`load_atomic_features`.
    label_column : {"first", "last", "none"}, optional
        CSV images only: the column that contains the labels.
    image_scale : {"unit", "standardise", "none"}, default="unit"
        Images only: pixel scaling, as in :func:`layersize.images.load_images`.
    progress : bool, default=False
        Show a progress bar while descriptors are computed.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file cannot be read, or an option does not fit the kind of file.
    """
    image_format = format if format in IMAGE_FORMATS else None
    if format is None:
        image_format = guess_image_format(path)
    if image_format is None:
        if label_column is not None:
            raise ValueError(
                f"label_column applies to CSV image files, but {str(path)!r} is read as "
                f"structures. Leave it out, or name the image format."
            )
        atomic = load_atomic_features(
            path, element=element, format=format, cache_dir=cache_dir, progress=progress
        )
        return InputRows(features=atomic.features, kind="structures", source=atomic)

    if element is not None:
        raise ValueError(
            f"element={element!r} selects atoms of a structure file, but {str(path)!r} is an "
            f"image file ({image_format}). Leave the element out."
        )
    images = load_images(path, image_format, label_column=label_column, scale=image_scale)
    features = np.ascontiguousarray(images.features, dtype=np.float32)
    return InputRows(features=features, kind="images", source=images)
