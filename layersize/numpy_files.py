"""Reading NumPy ``.npy`` files and ``.npz`` archives with errors that name the file.

``numpy.load`` reports a file that is not a NumPy file as pickled data, leaves
the file open when an archive fails to read, and returns an archive member
that is not an ``.npy`` array as raw bytes. :func:`read_numpy_file` turns each
of these into a ``ValueError`` with the path, so that callers need one
``except`` clause and can add their own advice. Callers that read only part
of a file through ``numpy.load`` check it first with :func:`check_numpy_file`
and wrap the reads in :func:`numpy_read_errors`.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["check_numpy_file", "numpy_read_errors", "read_numpy_file"]

_MAGIC = (b"\x93NUMPY", b"PK")  # an .npy header, and a zip archive (.npz)


def check_numpy_file(path: str | os.PathLike) -> None:
    """Raise a ``ValueError`` naming ``path`` unless it starts like an ``.npy`` file or ``.npz`` archive.

    Raises
    ------
    ValueError
        If the first bytes are neither an ``.npy`` header nor a zip archive.
    OSError
        If the file cannot be opened.
    """
    with open(path, "rb") as handle:
        if not handle.read(6).startswith(_MAGIC):
            raise ValueError(f"{path} is not a NumPy .npy file or .npz archive.")


@contextlib.contextmanager
def numpy_read_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn the errors of reading a damaged NumPy file into a ``ValueError`` that names it.

    ``numpy.load`` and archive member reads raise ``ValueError``, ``EOFError``,
    ``zipfile.BadZipFile`` (a bad checksum, say) or ``zlib.error`` (a damaged
    compressed member), depending on where the file is damaged.
    """
    try:
        yield
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"Reading {path} as a NumPy .npy or .npz file failed ({error}).") from error


def read_numpy_file(path: str | os.PathLike) -> np.ndarray | dict[str, np.ndarray]:
    """Read an ``.npy`` file as its array, or an ``.npz`` archive as a dict of its arrays.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Its name does not matter; its first bytes decide the format.

    Returns
    -------
    numpy.ndarray or dict of str to numpy.ndarray

    Raises
    ------
    ValueError
        If the file is neither format, NumPy cannot read it (truncated,
        damaged, object arrays), or an archive member is not an array.
    OSError
        If the file cannot be opened.
    """
    path = Path(path)
    check_numpy_file(path)
    # Opened here, so that the file is closed when NumPy fails to read it.
    with open(path, "rb") as handle, numpy_read_errors(path):
        loaded = np.load(handle, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded as archive:
            arrays = {key: archive[key] for key in archive.files}
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise ValueError(f"Member {key!r} of {path} is not a NumPy array.")
    return arrays
