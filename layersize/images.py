"""Read image data sets into a matrix of flattened images.

Scoring a network needs only the input images, one flattened image per row. This
module reads the formats in which the common image benchmarks are distributed:

``idx``  MNIST and EMNIST IDX files (``*-idx3-ubyte``, ``*.idx``), plain or gzip.
``csv``  One image a row, comma-separated, with the label in the first column, the
         last column or none (``.csv``, ``.csv.gz``).
``npz``  NumPy archives with the keys ``images``/``labels`` or ``X``/``y``.
``npy``  A single NumPy array of images, without labels.

Gzip compression is recognised from the file content, not from the name.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np

from layersize.numpy_files import check_numpy_file, numpy_read_errors

__all__ = [
    "IMAGE_FORMATS",
    "ImageData",
    "guess_image_format",
    "load_image_features",
    "load_images",
    "read_idx",
]

logger = logging.getLogger(__name__)

ImageFormat = Literal["idx", "csv", "npz", "npy"]
LabelColumn = Literal["first", "last", "none"]
Scale = Literal["unit", "standardise", "none"]

IMAGE_FORMATS: dict[str, str] = {
    "idx": "MNIST/EMNIST IDX file (*-idx3-ubyte, *.idx, optionally .gz)",
    "csv": "one image a row, comma-separated (*.csv, *.csv.gz)",
    "npz": "NumPy archive with keys images/labels or X/y (*.npz)",
    "npy": "NumPy array of images without labels (*.npy)",
}

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type byte -> big-endian NumPy dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Header names that mark a CSV column as the label column.
_LABEL_HEADER_NAMES = frozenset({"label", "labels", "class", "target", "y"})

# A CSV column counts as labels only with at most this many distinct values, so a
# data set with more classes needs an explicit label_column.
_MAX_INFERRED_CLASSES = 100

# Channel counts accepted in the last (or second) axis of a 4-D image array.
_CHANNEL_COUNTS = (1, 3, 4)


@dataclass(frozen=True)
class ImageData:
    """Images flattened to rows, with their labels when the file has them.

    Attributes
    ----------
    features : numpy.ndarray of shape (n_images, n_pixels), dtype float32
        One flattened image a row, scaled as requested. Colour images are
        flattened from height × width × channels, channels last.
    labels : numpy.ndarray of shape (n_images,), dtype int64, or None
        Class labels, or None when the file has none.
    shape : tuple of int or None
        The shape of one image, ``(height, width)`` or ``(height, width,
        channels)``, so that ``features[i].reshape(shape)`` is image ``i``.
        None when the file gives flat rows whose layout cannot be inferred.
    source : pathlib.Path
        The file the images were read from.
    """

    features: np.ndarray
    labels: np.ndarray | None
    shape: tuple[int, ...] | None
    source: Path

    @property
    def n_images(self) -> int:
        """Number of images (rows of ``features``)."""
        return int(self.features.shape[0])

    @property
    def n_pixels(self) -> int:
        """Number of values per image (columns of ``features``)."""
        return int(self.features.shape[1])

    def as_images(self) -> np.ndarray:
        """Reshape the features to an array of shape ``(n_images, *shape)``, for plotting.

        Raises
        ------
        ValueError
            If the image shape is unknown (``shape`` is None).
        """
        if self.shape is None:
            raise ValueError(
                f"The image shape of {self.source} is unknown because the file gives "
                f"{self.n_pixels} values per image without a layout. Reshape "
                f"`features` yourself."
            )
        return self.features.reshape(self.n_images, *self.shape)


def load_images(
    path: str | os.PathLike,
    format: ImageFormat | None = None,
    *,
    label_column: LabelColumn | None = None,
    labels_path: str | os.PathLike | None = None,
    transpose: bool | Literal["auto"] = "auto",
    scale: Scale = "unit",
    limit: int | None = None,
) -> ImageData:
    """Read an image file into flattened, scaled rows.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    format : {"idx", "csv", "npz", "npy"}, optional
        The file format. Without it, the format is chosen from the file name:
        ``.csv``/``.csv.gz`` is CSV, ``.npz`` and ``.npy`` are NumPy files, and a
        name ending in ``ubyte`` or ``.idx`` (optionally followed by ``.gz``) or
        containing ``idx1``…``idx4`` is IDX.
    label_column : {"first", "last", "none"}, optional
        CSV only: where the label column is. Without it, a header naming the
        first or last column ``label``, ``class``, ``target`` or ``y`` decides.
        Without such a header, the layout is inferred from the values:

        - with ``n`` columns, a label column is possible when ``n - 1`` is an
          image size (a perfect square, or three times one), and "none" is
          possible when ``n`` is;
        - the first or last column looks like labels when its values are
          non-negative integers with 2 to 100 distinct values. In addition, no
          value may fill more than half of the rows, and at least half of the
          integers between the smallest and the largest value must be present.
          A border-pixel column, which is mostly 0 or spread over 0–255, fails
          this test.

        The layout must be the only possible one, otherwise a ValueError
        requests this option.
    labels_path : str or os.PathLike, optional
        An IDX (``idx1``) or ``.npy`` file of labels, one per image, in the same
        order. It replaces labels read from ``path``. Labels are never needed to
        score a network.
    transpose : bool or "auto", default="auto"
        Swap the height and width of every image. EMNIST stores its images
        transposed relative to MNIST, so ``"auto"`` transposes when the file
        name contains "emnist" (in any case). Transposing needs a known image
        shape.
    scale : {"unit", "standardise", "none"}, default="unit"
        How to scale the values:

        - ``"unit"``: integer data in 0–255 (an integer dtype, or whole numbers
          in a CSV or float array) is divided by 255. Floating-point data already
          in [0, 1] is kept, so a binary 0/1 CSV stays as it is, whereas a uint8
          array of 0/1 is divided by 255. Anything else is min-max scaled to
          [0, 1] over the whole data set (constant data becomes 0).
        - ``"standardise"`` (or ``"standardize"``): every pixel (column) is
          shifted to zero mean and divided by its standard deviation over the
          images. A constant pixel becomes 0.
        - ``"none"``: the values are kept.
    limit : int, optional
        Read only the first ``limit`` images. IDX and CSV files are then read
        only that far. Scaling uses these images alone.

    Returns
    -------
    ImageData
        ``features`` of shape (n_images, n_pixels) in float32, ``labels`` of
        shape (n_images,) in int64 or None, the image ``shape`` and the ``source``.

    Raises
    ------
    FileNotFoundError
        If ``path`` or ``labels_path`` does not exist.
    ValueError
        If the format is unknown or the file is malformed (a bad IDX header, a
        truncated file, a non-numeric CSV cell, missing NPZ keys), if the data
        are empty or contain NaN or infinite values, if the CSV label column
        cannot be inferred, or if an option is invalid.

    Examples
    --------
    >>> data = load_images("mnist_5k.csv.gz", label_column="last")  # doctest: +SKIP
    >>> data.features.shape, data.shape  # doctest: +SKIP
    ((5000, 784), (28, 28))
    """
    path = Path(path)
    _check_options(format, label_column, transpose, scale, limit)
    _check_is_file(path, "Image file")
    file_format = format if format is not None else _format_from_name(path)
    if label_column is not None and file_format != "csv":
        raise ValueError(
            f"label_column={label_column!r} applies only to CSV files, but {path} is "
            f"read as {file_format!r}. Leave label_column unset for this file."
        )

    if file_format == "idx":
        images, labels = read_idx(path, limit=limit), None
        if images.ndim == 1:
            raise ValueError(
                f"{path} contains a 1-dimensional IDX array of {images.shape[0]} values, "
                f"which looks like a labels (idx1) file. Pass the images (idx3) file "
                f"as the path and this file as labels_path."
            )
    elif file_format == "csv":
        images, labels = _read_csv(path, label_column, limit)
    elif file_format == "npz":
        images, labels = _read_npz(path, limit)
    else:
        images, labels = _read_npy(path, limit)

    features, shape = _flatten_images(images, path)
    if _should_transpose(transpose, path):
        features, shape = _transpose_images(features, shape, path)

    if labels_path is not None:
        if labels is not None:
            logger.warning("Labels from %s replace the labels read from %s.", labels_path, path)
        labels = _read_labels_file(Path(labels_path), limit)
    if labels is not None:
        labels = _check_labels(labels, features.shape[0], path if labels_path is None else Path(labels_path))

    _check_values(features, path)
    features = _scale(features, scale, path)
    logger.info(
        "Read %d images of shape %s from %s (%s format, %s).",
        features.shape[0],
        shape if shape is not None else f"({features.shape[1]},)",
        path,
        file_format,
        "with labels" if labels is not None else "no labels",
    )
    return ImageData(features=features, labels=labels, shape=shape, source=path)


def load_image_features(path: str | os.PathLike, format: ImageFormat | None = None, **options) -> np.ndarray:
    """Read an image file into the input rows of a network, one flattened image a row.

    This is ``load_images(path, format, **options).features``: the matrix that
    :func:`layersize.sizing.estimate_layer_sizes` and
    :func:`layersize.selection.rank_activation_init` take as ``features``.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    format : {"idx", "csv", "npz", "npy"}, optional
        The file format; without it, the format is chosen from the file name.
    **options
        Keyword arguments of :func:`load_images`, such as ``label_column``,
        ``scale`` or ``limit``.

    Returns
    -------
    numpy.ndarray of shape (n_images, n_pixels), dtype float32
        The scaled pixel values, without the labels.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_images`.
    """
    return load_images(path, format, **options).features


def guess_image_format(path: str | os.PathLike) -> ImageFormat | None:
    """Return the image format that the name of ``path`` implies, or None.

    The rules are those of :func:`load_images` without ``format``, so a caller
    that also reads other kinds of files (structure files, for example) can send
    a path to the image readers only when this returns a format. The file is not
    opened.
    """
    return _format_from_name_or_none(Path(path))


# --- options and file names -------------------------------------------------------


def _check_options(format, label_column, transpose, scale, limit) -> None:
    if format is not None and format not in IMAGE_FORMATS:
        raise ValueError(
            f"Unknown image format {format!r}. Choose one of: {', '.join(IMAGE_FORMATS)}."
        )
    if label_column is not None and label_column not in ("first", "last", "none"):
        raise ValueError(
            f"label_column must be 'first', 'last' or 'none', got {label_column!r}."
        )
    if not (isinstance(transpose, bool) or transpose == "auto"):
        raise ValueError(f"transpose must be True, False or 'auto', got {transpose!r}.")
    if scale not in ("unit", "standardise", "standardize", "none"):
        raise ValueError(
            f"scale must be 'unit', 'standardise' or 'none', got {scale!r}."
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(
            f"limit must be a positive integer (the number of images to read), got {limit!r}. "
            f"Leave it unset to read every image."
        )


def _check_is_file(path: Path, description: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{description} not found: {path}. Check the path and the file name.")
    if not path.is_file():
        raise ValueError(f"{description} {path} is not a regular file. Pass the path of a file.")


def _format_from_name(path: Path) -> ImageFormat:
    name = path.name.lower()
    stem = name[: -len(".gz")] if name.endswith(".gz") else name
    if stem.endswith(".csv"):
        return "csv"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".npy"):
        return "npy"
    if stem.endswith(("ubyte", ".idx")) or re.search(r"idx[1-4]", stem):
        return "idx"
    known = "; ".join(f"{key}: {description}" for key, description in IMAGE_FORMATS.items())
    raise ValueError(
        f"Cannot tell the format of {path} from its name. Known formats are {known}. "
        f"Pass format= (or --format on the command line) to choose one."
    )


def _should_transpose(transpose: bool | str, path: Path) -> bool:
    if transpose == "auto":
        return "emnist" in path.name.lower()
    return bool(transpose)


def _open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading bytes, decompressing it when it starts with the gzip magic."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    return open(path, "rb")


# --- IDX --------------------------------------------------------------------------


def read_idx(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (the MNIST and EMNIST format), plain or gzip.

    The header is two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then each
    dimension as a big-endian uint32. The big-endian data follow.

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file.
    limit : int, optional
        Read only the first ``limit`` entries along the first axis. The file is
        then read only that far, so bytes after them are not checked.

    Returns
    -------
    numpy.ndarray of shape (dim_1, ..., dim_k)
        The array in native byte order: ``(n_images, height, width)`` for an
        idx3 image file, ``(n_labels,)`` for an idx1 label file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the header is malformed or the data are shorter or longer than the
        dimensions require.
    """
    path = Path(path)
    _check_is_file(path, "IDX file")
    with _open_binary(path) as handle:
        try:
            dtype, dims = _read_idx_header(handle, path)
            n_rows = dims[0] if limit is None else min(dims[0], int(limit))
            row_bytes = math.prod(dims[1:]) * dtype.itemsize
            expected = n_rows * row_bytes
            data = handle.read(expected)
            extra = handle.read(1) if limit is None or n_rows == dims[0] else b""
        except (EOFError, gzip.BadGzipFile) as error:
            raise ValueError(
                f"{path} is a damaged or truncated gzip file ({error}). Download it again."
            ) from error

    if len(data) < expected:
        raise ValueError(
            f"{path} is truncated: the IDX header gives dimensions {dims} of "
            f"{dtype.itemsize}-byte values, so {n_rows} entries need {expected} bytes "
            f"of data, but only {len(data)} follow the header. Download the file again."
        )
    if extra:
        raise ValueError(
            f"{path} has more data than its IDX header declares: dimensions {dims} of "
            f"{dtype.itemsize}-byte values need {expected} bytes, but more follow. "
            f"The header or the file is corrupt."
        )
    array = np.frombuffer(data, dtype=dtype).reshape(n_rows, *dims[1:])
    return array.astype(dtype.newbyteorder("="), copy=False)


def _read_idx_header(handle: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    magic = handle.read(4)
    if len(magic) < 4:
        raise ValueError(
            f"{path} is truncated: an IDX file starts with a 4-byte header, but the "
            f"file has only {len(magic)} bytes."
        )
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(
            f"{path} is not an IDX file: its first two bytes are 0x{magic[0]:02X} "
            f"0x{magic[1]:02X}, expected 0x00 0x00. Pass format= (or --format on the command "
            f"line) if it is another format."
        )
    type_code, n_dims = magic[2], magic[3]
    if type_code not in _IDX_DTYPES:
        codes = ", ".join(f"0x{code:02X} ({dtype.name})" for code, dtype in _IDX_DTYPES.items())
        raise ValueError(
            f"{path} has an unknown IDX type byte 0x{type_code:02X}. Known type bytes: {codes}."
        )
    if n_dims == 0:
        raise ValueError(f"{path} declares 0 dimensions in its IDX header; expected at least 1.")

    dims_bytes = handle.read(4 * n_dims)
    if len(dims_bytes) < 4 * n_dims:
        raise ValueError(
            f"{path} is truncated: its IDX header declares {n_dims} dimensions "
            f"({4 * n_dims} bytes), but only {len(dims_bytes)} bytes follow."
        )
    dims = tuple(int(size) for size in np.frombuffer(dims_bytes, dtype=">u4"))
    return _IDX_DTYPES[type_code], dims


# --- CSV --------------------------------------------------------------------------


def _read_csv(path: Path, label_column: LabelColumn | None, limit: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    header = _read_csv_header(path)
    table = _load_csv_table(path, skip_header=header is not None, limit=limit)
    if table.size == 0:
        raise ValueError(f"{path} contains no data rows. Check that it is the right file.")

    if label_column is None:
        label_column = _infer_label_column(table, header, path)
    if label_column == "none":
        return table, None

    index = 0 if label_column == "first" else table.shape[1] - 1
    labels = table[:, index]
    pixels = np.delete(table, index, axis=1)
    if pixels.shape[1] == 0:
        raise ValueError(
            f"{path} has a single column, so with label_column={label_column!r} no pixel "
            f"columns remain. Use label_column='none' or check the delimiter (comma)."
        )
    return pixels, labels


def _open_text(path: Path) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="")


def _read_csv_header(path: Path) -> list[str] | None:
    """Return the cells of the first line when none of them is a number, else None."""
    with _open_text(path) as handle:
        for line in handle:
            if line.strip():
                cells = [cell.strip() for cell in line.split(",")]
                return cells if not any(_is_number(cell) for cell in cells) else None
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_csv_table(path: Path, skip_header: bool, limit: int | None) -> np.ndarray:
    with _open_text(path) as handle, warnings.catch_warnings():
        # An empty file is reported below as a ValueError, not as numpy's warning.
        warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
        try:
            return np.loadtxt(
                handle,
                delimiter=",",
                comments=None,
                skiprows=1 if skip_header else 0,
                max_rows=limit,
                ndmin=2,
                dtype=np.float64,
            )
        except ValueError as error:
            cause = error
    # np.loadtxt counts rows from 0 and skips blank lines, so scan the file again
    # to report the problem with line and column numbers as an editor shows them.
    raise _describe_csv_error(path, skip_header, limit) from cause


def _describe_csv_error(path: Path, skip_header: bool, limit: int | None) -> ValueError:
    n_columns = None
    for line_number, cells in _csv_rows(path, skip_header, limit):
        if n_columns is None:
            n_columns = len(cells)
        elif len(cells) != n_columns:
            return ValueError(
                f"{path}, line {line_number}: expected {n_columns} comma-separated values "
                f"like the first row, got {len(cells)}. Every row must have the same columns."
            )
        for column, cell in enumerate(cells, start=1):
            if not _is_number(cell):
                return ValueError(
                    f"{path}, line {line_number}, column {column}: cannot read {cell!r} as a "
                    f"number. Image CSV files contain only numbers, with an optional header line."
                )
    return ValueError(f"{path} could not be read as a comma-separated table of numbers.")


def _csv_rows(path: Path, skip_header: bool, limit: int | None) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, cells) for the non-blank data lines."""
    header_pending = skip_header
    n_rows = 0
    with _open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if header_pending:
                header_pending = False
                continue
            if limit is not None and n_rows >= limit:
                return
            n_rows += 1
            yield line_number, [cell.strip() for cell in line.rstrip("\r\n").split(",")]


def _infer_label_column(table: np.ndarray, header: list[str] | None, path: Path) -> LabelColumn:
    n_columns = table.shape[1]
    if header is not None:
        first, last = header[0].lower(), header[-1].lower()
        if first in _LABEL_HEADER_NAMES and last not in _LABEL_HEADER_NAMES:
            return "first"
        if last in _LABEL_HEADER_NAMES and first not in _LABEL_HEADER_NAMES:
            return "last"

    candidates: list[LabelColumn] = []
    if _is_image_size(n_columns):
        candidates.append("none")
    if n_columns > 1 and _is_image_size(n_columns - 1):
        if _looks_like_labels(table[:, 0]):
            candidates.append("first")
        if _looks_like_labels(table[:, -1]):
            candidates.append("last")
    logger.debug("Label column candidates for %s with %d columns: %s", path, n_columns, candidates)
    if len(candidates) == 1:
        return candidates[0]

    if candidates:
        reason = f"the layouts {' and '.join(candidates)} both fit the values"
    elif not _is_image_size(n_columns - 1):
        reason = (
            f"neither {n_columns} nor {n_columns - 1} is the number of values in a square "
            f"image (side² or 3·side²)"
        )
    else:
        reason = (
            f"neither the first nor the last column looks like labels (2 to "
            f"{_MAX_INFERRED_CLASSES} distinct non-negative integers)"
        )
    raise ValueError(
        f"Cannot infer where the label column of {path} is ({n_columns} columns): {reason}. "
        f"Pass label_column='first', 'last' or 'none' (--label-column on the command line)."
    )


def _is_image_size(n_values: int) -> bool:
    """Return whether n_values is side² (grey) or 3·side² (RGB) for some side ≥ 2."""
    for channels in (1, 3):
        if n_values % channels == 0:
            side = math.isqrt(n_values // channels)
            if side >= 2 and side * side * channels == n_values:
                return True
    return False


def _looks_like_labels(column: np.ndarray) -> bool:
    if not np.all(np.isfinite(column)) or not np.all(column == np.round(column)) or column.min() < 0:
        return False
    values, counts = np.unique(column, return_counts=True)
    if not 2 <= len(values) <= _MAX_INFERRED_CLASSES:
        return False
    if counts.max() > 0.5 * len(column):
        return False
    value_range = values[-1] - values[0] + 1
    return bool(value_range <= 2 * len(values))


# --- NumPy files ------------------------------------------------------------------


_NUMPY_ADVICE = "Save the arrays with numpy.save (one array) or numpy.savez (named arrays)."


@contextlib.contextmanager
def _numpy_advice() -> Iterator[None]:
    """Add how to save a NumPy file to the ValueError of an unreadable one."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"{error} {_NUMPY_ADVICE}") from error


def _load_npy(path: Path, contents: str, mmap: bool = False) -> np.ndarray:
    """Read the array of an .npy file, or raise a ValueError that names the file."""
    with _numpy_advice():
        check_numpy_file(path)
        with numpy_read_errors(path):
            loaded = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise ValueError(
            f"{path} is an .npz archive, not an .npy file. Pass format='npz' (or --format npz on "
            f"the command line), or name the file *.npz."
        )
    if loaded.ndim == 0:
        raise ValueError(f"{path} contains a single value, not {contents}. Save an array with one row per image.")
    return loaded


def _read_npz(path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    with _numpy_advice():
        check_numpy_file(path)
        with numpy_read_errors(path):
            loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        raise ValueError(
            f"{path} is an .npy file, not an .npz archive. Pass format='npy' (or --format npy on "
            f"the command line), or name the file *.npy."
        )
    with loaded as archive:
        keys = list(archive.files)
        if "images" in keys:
            image_key, label_key = "images", "labels"
        elif "X" in keys:
            image_key, label_key = "X", "y"
        else:
            raise ValueError(
                f"{path} has no image array: expected the key 'images' (with optional "
                f"'labels') or 'X' (with optional 'y'), found keys {keys}. Save the "
                f"arrays under one of these names."
            )
        with _numpy_advice(), numpy_read_errors(path):
            members = {key: archive[key] for key in (image_key, label_key) if key in keys}
    for key, member in members.items():
        if not isinstance(member, np.ndarray) or member.ndim == 0:
            raise ValueError(
                f"Member {key!r} of {path} is not an array with one row per image. {_NUMPY_ADVICE}"
            )
    images = members[image_key][:limit]
    labels = members[label_key][:limit] if label_key in members else None
    logger.debug("Read %r%s from %s.", image_key, f" and {label_key!r}" if labels is not None else "", path)
    return images, labels


def _read_npy(path: Path, limit: int | None) -> tuple[np.ndarray, None]:
    images = _load_npy(path, "images", mmap=True)
    return np.asarray(images[:limit]), None


def _read_labels_file(path: Path, limit: int | None) -> np.ndarray:
    _check_is_file(path, "Labels file")
    name = path.name.lower()
    if name.endswith(".npy"):
        return _load_npy(path, "labels")[:limit]
    if _format_from_name_or_none(path) == "idx":
        return read_idx(path, limit=limit)
    raise ValueError(
        f"Cannot read labels from {path}: labels_path takes an IDX labels file "
        f"(*-idx1-ubyte, optionally .gz) or a .npy file."
    )


def _format_from_name_or_none(path: Path) -> ImageFormat | None:
    try:
        return _format_from_name(path)
    except ValueError:
        return None


# --- layout, checks and scaling ---------------------------------------------------


def _flatten_images(images: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Flatten an image array to (n_images, n_values) and return the shape of one image.

    Accepted layouts are N×F (flat rows; a perfect-square F is taken as a square grey
    image), N×H×W, N×H×W×C and N×C×H×W with C in {1, 3, 4}. Channels-first images
    are moved to channels last, and a single channel is dropped from the shape.
    """
    if images.dtype.kind not in "biuf":
        raise ValueError(
            f"{path} contains {images.dtype} values; expected a numeric image array."
        )
    if images.ndim < 2 or images.ndim > 4:
        raise ValueError(
            f"{path} contains an array of shape {images.shape}; expected images of shape "
            f"(n_images, n_pixels), (n_images, height, width), (n_images, height, width, "
            f"channels) or (n_images, channels, height, width)."
        )
    if images.shape[0] == 0 or math.prod(images.shape[1:]) == 0:
        raise ValueError(f"{path} contains no image data: the array has shape {images.shape}.")

    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        shape = (side, side) if side * side == images.shape[1] else None
    elif images.ndim == 3:
        shape = tuple(images.shape[1:])
    elif images.shape[-1] in _CHANNEL_COUNTS:
        shape = tuple(images.shape[1:])
    elif images.shape[1] in _CHANNEL_COUNTS:
        images = np.moveaxis(images, 1, -1)
        shape = tuple(images.shape[1:])
    else:
        raise ValueError(
            f"{path} contains a 4-dimensional array of shape {images.shape}, but neither "
            f"axis 1 nor axis 3 has 1, 3 or 4 channels. Save the images as (n_images, "
            f"height, width, channels)."
        )
    if shape is not None and len(shape) == 3 and shape[-1] == 1:
        shape = shape[:2]
    features = np.ascontiguousarray(images).reshape(images.shape[0], -1)
    return features, shape


def _transpose_images(
    features: np.ndarray, shape: tuple[int, ...] | None, path: Path
) -> tuple[np.ndarray, tuple[int, ...]]:
    if shape is None:
        raise ValueError(
            f"Cannot transpose the images of {path} because their shape is unknown "
            f"({features.shape[1]} values per image). Pass transpose=False."
        )
    images = features.reshape(features.shape[0], *shape)
    images = np.swapaxes(images, 1, 2)
    logger.debug("Transposed the images of %s (height and width swapped).", path)
    return np.ascontiguousarray(images).reshape(features.shape[0], -1), tuple(images.shape[1:])


def _check_labels(labels: np.ndarray, n_images: int, source: Path) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_images:
        raise ValueError(
            f"The labels from {source} have shape {labels.shape}, but {n_images} images "
            f"were read; expected shape ({n_images},)."
        )
    if labels.dtype.kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not np.all(whole):
            first_bad = int(np.flatnonzero(~whole)[0])
            raise ValueError(
                f"The labels from {source} must be integers, but the label of image "
                f"{first_bad} (0-based) is {float(labels[first_bad]):g}. If that column is "
                f"not a label column, set label_column."
            )
    elif labels.dtype.kind not in "biu":
        raise ValueError(f"The labels from {source} have dtype {labels.dtype}; expected integers.")
    return labels.astype(np.int64)


def _check_values(features: np.ndarray, path: Path) -> None:
    if features.dtype.kind != "f":
        return
    finite = np.isfinite(features)
    if not finite.all():
        n_bad = int(features.size - np.count_nonzero(finite))
        image, pixel = (int(index) for index in np.argwhere(~finite)[0])
        raise ValueError(
            f"{path} contains {n_bad} NaN or infinite values, the first in image {image}, "
            f"pixel {pixel} (0-based). Remove or fill them before scoring."
        )


def _scale(features: np.ndarray, scale: str, path: Path) -> np.ndarray:
    if features.dtype.kind == "b":
        features = features.astype(np.float32)
    if scale == "none":
        return features.astype(np.float32, copy=False)
    if scale in ("standardise", "standardize"):
        return _standardise(features)

    low, high = float(features.min()), float(features.max())
    is_float = features.dtype.kind == "f"
    if is_float and low >= 0.0 and high <= 1.0:
        logger.info("Kept the values of %s, already in [0, 1].", path)
        return features.astype(np.float32, copy=False)
    is_whole = not is_float or bool(np.all(features == np.round(features)))
    if is_whole and low >= 0.0 and high <= 255.0:
        logger.info("Divided the values of %s by 255 (8-bit pixels).", path)
        return features.astype(np.float32) / np.float32(255.0)

    logger.info("Min-max scaled the values of %s from [%g, %g] to [0, 1].", path, low, high)
    if high == low:
        return np.zeros(features.shape, dtype=np.float32)
    scaled = (features.astype(np.float64) - low) / (high - low)
    return scaled.astype(np.float32)


def _standardise(features: np.ndarray) -> np.ndarray:
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64)
    constant = std == 0.0
    std[constant] = 1.0
    standardised = (features.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)
    standardised[:, constant] = 0.0
    return standardised
