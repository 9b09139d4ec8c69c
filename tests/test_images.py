"""Tests for the image readers in layersize.images."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest
from shared_data import SHARED_DATA

from layersize.images import (
    ImageData,
    guess_image_format,
    load_image_features,
    load_images,
    read_idx,
)

IDX_TYPE_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(array: np.ndarray, big_endian_dtype: str = "u1") -> bytes:
    """Encode an array as an IDX file: zero bytes, type byte, dimension count, sizes, data."""
    dtype = np.dtype(big_endian_dtype)
    header = bytes([0, 0, IDX_TYPE_CODES[dtype], array.ndim])
    sizes = np.array(array.shape, dtype=">u4").tobytes()
    return header + sizes + array.astype(dtype).tobytes()


def write_idx(path: Path, array: np.ndarray, big_endian_dtype: str = "u1") -> Path:
    content = idx_bytes(array, big_endian_dtype)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    return path


def random_images(n_images: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Draw uint8 images whose one-pixel border is 0, like MNIST digits."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n_images, height, width), dtype=np.uint8)
    images[:, 1:-1, 1:-1] = rng.integers(1, 256, size=(n_images, height - 2, width - 2))
    return images


def write_csv(path: Path, rows: np.ndarray, header: str | None = None) -> Path:
    lines = [",".join(str(int(value)) for value in row) for row in rows]
    if header is not None:
        lines.insert(0, header)
    path.write_text("\n".join(lines) + "\n")
    return path


# --- IDX --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images = random_images(6, 3, 5)
    path = write_idx(tmp_path / name, images)

    array = read_idx(path)
    data = load_images(path)

    assert array.dtype == np.uint8
    assert array.shape == (6, 3, 5)
    np.testing.assert_array_equal(array, images)
    assert isinstance(data, ImageData)
    assert data.shape == (3, 5)
    assert data.features.dtype == np.float32
    assert data.features.shape == (6, 15)
    assert data.labels is None
    assert data.source == path
    np.testing.assert_allclose(data.features, images.reshape(6, -1) / 255.0, rtol=1e-6)


def test_idx_handwritten_header(tmp_path):
    # Written byte by byte, so that a shared mistake in the test's own IDX writer
    # and in the reader cannot cancel out.
    header = bytes([0x00, 0x00, 0x08, 0x03]) + bytes([0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(header + bytes(range(24)))

    array = read_idx(path)

    assert array.shape == (2, 3, 4)
    assert array.dtype == np.uint8
    assert array[0, 0].tolist() == [0, 1, 2, 3]
    assert array[1, 2].tolist() == [20, 21, 22, 23]


def test_idx_emnist_file_read_upright(tmp_path):
    # EMNIST stores each image transposed, and reading must undo that.
    upright = random_images(3, 4, 6)
    stored = np.ascontiguousarray(upright.transpose(0, 2, 1))
    path = write_idx(tmp_path / "emnist-balanced-train-images-idx3-ubyte.gz", stored)

    data = load_images(path, scale="none")

    assert data.shape == (4, 6)
    np.testing.assert_array_equal(data.as_images(), upright)
    np.testing.assert_array_equal(data.features, upright.reshape(3, -1))


@pytest.mark.parametrize("big_endian_dtype", ["i1", ">i2", ">i4", ">f4", ">f8"])
def test_idx_reads_every_type(tmp_path, big_endian_dtype):
    values = np.arange(-12, 12).reshape(2, 3, 4)
    path = write_idx(tmp_path / "values.idx", values, big_endian_dtype)

    array = read_idx(path)

    assert array.dtype == np.dtype(big_endian_dtype).newbyteorder("=")
    np.testing.assert_array_equal(array, values)


def test_idx_emnist_name_transposes(tmp_path):
    images = random_images(4, 3, 5)
    path = write_idx(tmp_path / "emnist-letters-test-images-idx3-ubyte.gz", images)

    data = load_images(path, scale="none")
    untransposed = load_images(path, scale="none", transpose=False)

    assert data.shape == (5, 3)
    np.testing.assert_array_equal(data.as_images(), images.transpose(0, 2, 1))
    assert untransposed.shape == (3, 5)
    np.testing.assert_array_equal(untransposed.as_images(), images)


def test_idx_explicit_transpose(tmp_path):
    images = random_images(4, 3, 5)
    path = write_idx(tmp_path / "train-images-idx3-ubyte", images)

    data = load_images(path, scale="none", transpose=True)

    assert data.shape == (5, 3)
    np.testing.assert_array_equal(data.as_images(), images.transpose(0, 2, 1))


def test_idx_labels_path(tmp_path):
    images = random_images(5, 4, 4)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    images_path = write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    labels_path = write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)

    data = load_images(images_path, labels_path=labels_path)

    assert data.labels is not None
    assert data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.labels, labels)


def test_idx_labels_length_mismatch(tmp_path):
    images_path = write_idx(tmp_path / "images-idx3-ubyte", random_images(5, 4, 4))
    labels_path = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(4, dtype=np.uint8))

    with pytest.raises(ValueError, match=r"shape \(4,\).*5 images"):
        load_images(images_path, labels_path=labels_path)


def test_idx_limit_reads_first_images(tmp_path):
    images = random_images(10, 4, 4)
    path = write_idx(tmp_path / "images-idx3-ubyte.gz", images)

    data = load_images(path, limit=3, scale="none")

    assert data.n_images == 3
    np.testing.assert_array_equal(data.as_images(), images[:3])


def test_idx_truncated_data(tmp_path):
    content = idx_bytes(random_images(5, 3, 4))
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(content[:-10])

    with pytest.raises(ValueError, match="truncated") as error:
        read_idx(path)

    message = str(error.value)
    assert "(5, 3, 4)" in message
    assert "60 bytes" in message
    assert "only 50" in message


def test_idx_truncated_gzip(tmp_path):
    compressed = gzip.compress(idx_bytes(random_images(50, 8, 8, seed=4)))
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(compressed[: len(compressed) // 2])

    with pytest.raises(ValueError, match="damaged or truncated gzip") as error:
        load_images(path)

    assert str(path) in str(error.value)


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + np.array([5, 3], dtype=">u4").tobytes())

    with pytest.raises(ValueError, match="declares 3 dimensions") as error:
        read_idx(path)

    assert "only 8 bytes" in str(error.value)


def test_idx_extra_data(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(random_images(2, 3, 3)) + b"\x00")

    with pytest.raises(ValueError, match="more data than its IDX header declares"):
        read_idx(path)


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(b"\x01\x02\x08\x01" + np.array([1], dtype=">u4").tobytes() + b"\x00")

    with pytest.raises(ValueError, match="0x01 0x02, expected 0x00 0x00"):
        read_idx(path)


def test_idx_unknown_type_byte(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x07\x01" + np.array([1], dtype=">u4").tobytes() + b"\x00")

    with pytest.raises(ValueError, match="unknown IDX type byte 0x07") as error:
        read_idx(path)

    assert "0x08 (uint8)" in str(error.value)


def test_idx_labels_file_as_images(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))

    with pytest.raises(ValueError, match="labels_path"):
        load_images(path)


# --- CSV --------------------------------------------------------------------------


def test_csv_label_first(tmp_path):
    images = random_images(20, 4, 4)
    labels = np.arange(20) % 5
    rows = np.column_stack([labels, images.reshape(20, -1)])
    path = write_csv(tmp_path / "emnist-digits-like.csv", rows)

    data = load_images(path, transpose=False)

    assert data.shape == (4, 4)
    assert data.features.shape == (20, 16)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_allclose(data.features, images.reshape(20, -1) / 255.0, rtol=1e-6)


def test_csv_label_last_gzip(tmp_path):
    images = random_images(20, 4, 4)
    labels = np.arange(20) % 10
    rows = np.column_stack([images.reshape(20, -1), labels])
    plain = write_csv(tmp_path / "plain.csv", rows)
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))

    data = load_images(path)

    assert data.shape == (4, 4)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_allclose(data.features, images.reshape(20, -1) / 255.0, rtol=1e-6)


def test_csv_label_from_header(tmp_path):
    images = random_images(3, 4, 4)
    labels = np.array([7, 7, 7])
    rows = np.column_stack([labels, images.reshape(3, -1)])
    header = "label," + ",".join(f"pixel{index}" for index in range(16))
    path = write_csv(tmp_path / "train.csv", rows, header=header)

    data = load_images(path)

    assert data.n_images == 3
    np.testing.assert_array_equal(data.labels, labels)


def test_csv_without_labels(tmp_path):
    images = random_images(6, 4, 4)
    path = write_csv(tmp_path / "pixels.csv", images.reshape(6, -1))

    data = load_images(path, scale="none")

    assert data.labels is None
    np.testing.assert_array_equal(data.as_images(), images)


def test_csv_emnist_name_transposes(tmp_path):
    images = random_images(20, 4, 4)
    labels = np.arange(20) % 5
    rows = np.column_stack([labels, images.reshape(20, -1)])
    path = write_csv(tmp_path / "emnist-balanced-test.csv", rows)

    data = load_images(path, scale="none")

    np.testing.assert_array_equal(data.as_images(), images.transpose(0, 2, 1))


def test_csv_ambiguous_labels(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(20, 16))
    rows = np.column_stack([np.arange(20) % 5, pixels[:, 1:], np.arange(20) % 4])
    path = write_csv(tmp_path / "both.csv", rows)

    with pytest.raises(ValueError, match="label_column") as error:
        load_images(path)

    assert "first and last both fit" in str(error.value)
    assert "--label-column" in str(error.value)


def test_csv_not_image_sized(tmp_path):
    path = write_csv(tmp_path / "table.csv", np.arange(33).reshape(3, 11))

    with pytest.raises(ValueError, match="label_column") as error:
        load_images(path)

    assert "neither 11 nor 10" in str(error.value)


def test_csv_no_column_looks_like_labels(tmp_path):
    pixels = np.random.default_rng(6).integers(0, 256, size=(20, 17))
    path = write_csv(tmp_path / "pixels.csv", pixels)

    with pytest.raises(ValueError, match="label_column") as error:
        load_images(path)

    assert "neither the first nor the last column looks like labels" in str(error.value)


def test_csv_explicit_label_column(tmp_path):
    path = write_csv(tmp_path / "table.csv", np.arange(30).reshape(3, 10))

    data = load_images(path, label_column="first", scale="none")

    np.testing.assert_array_equal(data.labels, [0, 10, 20])
    assert data.shape == (3, 3)
    np.testing.assert_array_equal(data.features[0], np.arange(1, 10))


def test_csv_non_numeric_cell(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("label,a,b,c,d\n0,1,2,3,4\n\n1,1,2,x3,4\n")

    with pytest.raises(ValueError, match="cannot read 'x3' as a number") as error:
        load_images(path, label_column="first")

    message = str(error.value)
    assert "line 4" in message
    assert "column 4" in message


def test_csv_ragged_row(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("0,1,2,3,4\n1,1,2,3\n")

    with pytest.raises(ValueError, match="line 2: expected 5") as error:
        load_images(path, label_column="first")

    assert "got 4" in str(error.value)


def test_csv_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(ValueError, match="no data rows"):
        load_images(path)


def test_csv_fractional_label(tmp_path):
    path = tmp_path / "fraction.csv"
    path.write_text("0,1,2,3,4\n1.5,1,2,3,4\n")

    with pytest.raises(ValueError, match="must be integers") as error:
        load_images(path, label_column="first")

    assert "1.5" in str(error.value)


def test_label_column_only_for_csv(tmp_path):
    path = write_idx(tmp_path / "images-idx3-ubyte", random_images(2, 3, 3))

    with pytest.raises(ValueError, match="only to CSV"):
        load_images(path, label_column="first")


# --- NumPy files ------------------------------------------------------------------


def test_npz_images_and_labels(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, size=(4, 5, 6, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3])
    path = tmp_path / "colour.npz"
    np.savez(path, images=images, labels=labels)

    data = load_images(path, scale="none")

    assert data.shape == (5, 6, 3)
    np.testing.assert_array_equal(data.as_images(), images)
    np.testing.assert_array_equal(data.labels, labels)


def test_npz_x_y_channels_first(tmp_path):
    images_last = np.random.default_rng(3).random((4, 5, 6, 3))
    path = tmp_path / "arrays.npz"
    np.savez(path, X=np.moveaxis(images_last, -1, 1), y=np.array([1.0, 0.0, 1.0, 0.0]))

    data = load_images(path, scale="none")

    assert data.shape == (5, 6, 3)
    np.testing.assert_allclose(data.as_images(), images_last, rtol=1e-6)
    assert data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.labels, [1, 0, 1, 0])


def test_npz_wrong_keys(tmp_path):
    path = tmp_path / "keras.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4)), y_train=np.zeros(2))

    with pytest.raises(ValueError, match="'images'") as error:
        load_images(path)

    assert "['x_train', 'y_train']" in str(error.value)


def test_npy_single_channel(tmp_path):
    images = random_images(3, 4, 4)[..., np.newaxis]
    path = tmp_path / "grey.npy"
    np.save(path, images)

    data = load_images(path, limit=2, scale="none")

    assert data.shape == (4, 4)
    assert data.labels is None
    np.testing.assert_array_equal(data.as_images(), images[:2, :, :, 0])


def test_npy_flat_features(tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.ones((3, 7)))

    data = load_images(path)

    assert data.shape is None
    assert data.features.shape == (3, 7)
    with pytest.raises(ValueError, match="shape .* is unknown"):
        data.as_images()


# --- scaling ----------------------------------------------------------------------


def save_npy(tmp_path: Path, array: np.ndarray) -> Path:
    path = tmp_path / "values.npy"
    np.save(path, array)
    return path


def test_scale_unit_bytes(tmp_path):
    images = random_images(3, 4, 4)

    data = load_images(save_npy(tmp_path, images), scale="unit")

    np.testing.assert_allclose(data.features, images.reshape(3, -1) / 255.0, rtol=1e-6)


def test_scale_unit_keeps_unit_floats(tmp_path):
    values = np.random.default_rng(4).random((3, 16))

    data = load_images(save_npy(tmp_path, values), scale="unit")

    np.testing.assert_allclose(data.features, values, rtol=1e-6)


def test_scale_unit_min_max(tmp_path):
    values = np.linspace(-2.0, 6.0, 48).reshape(3, 16)

    data = load_images(save_npy(tmp_path, values), scale="unit")

    assert data.features.min() == 0.0
    assert data.features.max() == 1.0
    np.testing.assert_allclose(data.features, (values + 2.0) / 8.0, rtol=1e-6)


def test_scale_unit_constant(tmp_path):
    data = load_images(save_npy(tmp_path, np.full((3, 16), 7.5)), scale="unit")

    np.testing.assert_array_equal(data.features, np.zeros((3, 16)))


def test_scale_standardise(tmp_path):
    values = np.random.default_rng(5).integers(0, 256, size=(50, 16)).astype(np.uint8)
    values[:, 0] = 9
    data = load_images(save_npy(tmp_path, values), scale="standardise")

    assert not np.isnan(data.features).any()
    np.testing.assert_array_equal(data.features[:, 0], np.zeros(50))
    np.testing.assert_allclose(data.features[:, 1:].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.features[:, 1:].std(axis=0), 1.0, rtol=1e-4)


def test_scale_none(tmp_path):
    values = np.arange(-8, 40).reshape(3, 16)

    data = load_images(save_npy(tmp_path, values), scale="none")

    assert data.features.dtype == np.float32
    np.testing.assert_array_equal(data.features, values)


# --- feature rows and format from the name -----------------------------------------


def test_load_image_features_returns_rows(tmp_path):
    images = random_images(5, 4, 4)
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)

    features = load_image_features(path)

    assert features.dtype == np.float32
    assert features.shape == (5, 16)
    np.testing.assert_allclose(features, images.reshape(5, -1) / 255.0, rtol=1e-6)


def test_load_image_features_passes_options(tmp_path):
    rows = np.column_stack([np.arange(6) % 3, random_images(6, 4, 4).reshape(6, -1)])
    path = write_csv(tmp_path / "digits.csv", rows)

    features = load_image_features(path, label_column="first", scale="none", limit=4)

    np.testing.assert_array_equal(features, rows[:4, 1:])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("train-images-idx3-ubyte", "idx"),
        ("emnist-letters-test-images-idx3-ubyte.gz", "idx"),
        ("digits.idx", "idx"),
        ("mnist_5k.csv.gz", "csv"),
        ("digits.CSV", "csv"),
        ("arrays.npz", "npz"),
        ("images.npy", "npy"),
        ("sn2.xyz", None),
        ("structures.extxyz", None),
        ("POSCAR", None),
    ],
)
def test_guess_image_format(name, expected):
    assert guess_image_format(name) == expected


# --- validation -------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "absent.csv"

    with pytest.raises(FileNotFoundError, match="absent.csv"):
        load_images(path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "digits.png"
    path.write_bytes(b"\x89PNG")

    with pytest.raises(ValueError, match="Cannot tell the format") as error:
        load_images(path)

    message = str(error.value)
    assert "format=" in message
    assert "csv" in message
    assert "idx" in message


def test_explicit_format(tmp_path):
    path = write_csv(tmp_path / "digits.txt", random_images(2, 4, 4).reshape(2, -1))

    data = load_images(path, format="csv", label_column="none")

    assert data.features.shape == (2, 16)


def test_nan_values(tmp_path):
    values = np.zeros((3, 16))
    values[1, 5] = np.nan

    with pytest.raises(ValueError, match="1 NaN or infinite") as error:
        load_images(save_npy(tmp_path, values))

    assert "image 1, pixel 5" in str(error.value)


def test_empty_array(tmp_path):
    with pytest.raises(ValueError, match="no image data"):
        load_images(save_npy(tmp_path, np.zeros((0, 16))))


@pytest.mark.parametrize(
    ("option", "value"),
    [("scale", "minmax"), ("limit", 0), ("transpose", "yes"), ("format", "png"), ("label_column", "middle")],
)
def test_invalid_option(tmp_path, option, value):
    path = save_npy(tmp_path, np.zeros((2, 4)))

    with pytest.raises(ValueError, match=repr(value)):
        load_images(path, **{option: value})


# --- real data --------------------------------------------------------------------


def test_real_mnist_5k():
    path = SHARED_DATA / "mnist_5k.csv.gz"
    if not path.is_file():
        pytest.skip(f"needs the MNIST 5k sample at {path}, which is not present")

    data = load_images(path)

    assert data.features.shape == (5000, 784)
    assert data.shape == (28, 28)
    assert data.features.min() == 0.0
    assert data.features.max() == 1.0
    assert data.labels is not None
    np.testing.assert_array_equal(np.bincount(data.labels), np.full(10, 500))


def test_real_cifar10_sample():
    path = SHARED_DATA / "cifar10_test_1000.npz"
    if not path.is_file():
        pytest.skip(f"needs the CIFAR-10 sample at {path}, which is not present")

    data = load_images(path)
    channel_means = data.as_images().reshape(-1, 3).mean(axis=0)

    assert data.features.shape == (1000, 3072)
    assert data.shape == (32, 32, 3)
    np.testing.assert_array_equal(np.bincount(data.labels), np.full(10, 100))
    np.testing.assert_allclose(channel_means, [0.497, 0.487, 0.451], atol=0.005)


@pytest.mark.parametrize("name", ["images.npy", "images.npz", "labels.npy"])
def test_numpy_text_file_named_not_pickled(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello\n")
    images_path = path if name.startswith("images") else tmp_path / "images.npy"
    if not name.startswith("images"):
        np.save(images_path, random_images(3, 4, 4))
    labels_path = path if name.startswith("labels") else None

    with pytest.raises(ValueError, match="is not a NumPy .npy file or .npz archive. Save") as error:
        load_images(images_path, labels_path=labels_path)

    assert str(path) in str(error.value)
    assert "pickle" not in str(error.value)


def test_numpy_truncated_file_named(tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, random_images(20, 8, 8))
    path.write_bytes(path.read_bytes()[:200])

    with pytest.raises(ValueError, match=r"Reading .*images\.npy as a NumPy \.npy or \.npz file failed"):
        load_images(path)


def write_corrupt_npz(path: Path) -> Path:
    np.savez_compressed(path, images=random_images(20, 8, 8))
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle:middle + 40] = bytes(40)
    path.write_bytes(bytes(content))
    return path


def write_raw_member_npz(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images", b"raw bytes, not an .npy array")
    return path


@pytest.mark.parametrize(
    ("make", "file_format", "message"),
    [
        (lambda p: (np.save(p / "x.npy", random_images(3, 4, 4)), p / "x.npy")[1], "npz",
         "is an .npy file, not an .npz archive. Pass format='npy'"),
        (lambda p: (np.savez(p / "x.npz", images=random_images(3, 4, 4)), p / "x.npz")[1], "npy",
         "is an .npz archive, not an .npy file. Pass format='npz'"),
        (lambda p: (np.save(p / "x.npy", np.array(3.0)), p / "x.npy")[1], None, "contains a single value"),
        (lambda p: write_corrupt_npz(p / "x.npz"), None, r"Reading .*x\.npz as a NumPy \.npy or \.npz file failed"),
        (lambda p: write_raw_member_npz(p / "x.npz"), None, "Member 'images' of .* is not an array"),
    ],
    ids=["npy-as-npz", "npz-as-npy", "zero-dimensional", "corrupt-member", "raw-member"],
)
def test_numpy_damaged_or_mismatched(tmp_path, make, file_format, message):
    path = make(tmp_path)

    with pytest.raises(ValueError, match=message) as error:
        load_images(path, file_format)

    assert str(path) in str(error.value)


def test_numpy_error_names_short_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("a.npy", np.array([{"pixels": 1}], dtype=object), allow_pickle=True)
    Path("a.npy").rename("a")

    with pytest.raises(ValueError, match=r"Reading a as a NumPy \.npy or \.npz file failed .*numpy\.save"):
        load_images("a", "npy")
