"""Reading NumPy files with errors that name the file."""

import warnings
import zipfile

import numpy as np
import pytest

from layersize.numpy_files import check_numpy_file, read_numpy_file


def test_npy_array_npz_dict(tmp_path):
    values = np.arange(6.0).reshape(2, 3)
    np.save(tmp_path / "values.npy", values)
    np.savez(tmp_path / "values.npz", a=values, b=values[0])

    single = read_numpy_file(tmp_path / "values.npy")
    archive = read_numpy_file(tmp_path / "values.npz")

    np.testing.assert_array_equal(single, values)
    assert sorted(archive) == ["a", "b"]
    np.testing.assert_array_equal(archive["b"], values[0])


def test_format_follows_content_not_name(tmp_path):
    np.save(tmp_path / "values.npy", np.ones(3))
    (tmp_path / "values.npy").rename(tmp_path / "values.bin")

    np.testing.assert_array_equal(read_numpy_file(tmp_path / "values.bin"), np.ones(3))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"bad\.npz is not a NumPy \.npy file or \.npz archive"),
        (b"label,pixel\n", r"bad\.npz is not a NumPy \.npy file or \.npz archive"),
        (b"\x93NUMPY", r"Reading .*bad\.npz as a NumPy \.npy or \.npz file failed"),
        (b"PK\x03\x04broken", r"Reading .*bad\.npz as a NumPy \.npy or \.npz file failed"),
    ],
)
def test_unreadable_file_names_path(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(ValueError, match=message):
            read_numpy_file(path)


def test_object_array_and_raw_member_rejected(tmp_path):
    np.savez(tmp_path / "objects.npz", values=np.array([object()], dtype=object))
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as archive:
        archive.writestr("values.npy", b"not an array")

    with pytest.raises(ValueError, match=r"Reading .*objects\.npz"):
        read_numpy_file(tmp_path / "objects.npz")
    with pytest.raises(ValueError, match=r"Member 'values' of .*raw\.npz is not a NumPy array"):
        read_numpy_file(tmp_path / "raw.npz")


def test_check_numpy_file_by_first_bytes(tmp_path):
    np.save(tmp_path / "array.bin", np.zeros(3))
    np.savez(tmp_path / "archive.bin", x=np.zeros(3))
    (tmp_path / "text.npy").write_text("0 1 2\n")

    check_numpy_file(tmp_path / "array.bin.npy")
    check_numpy_file(tmp_path / "archive.bin.npz")
    with pytest.raises(ValueError, match=r"text\.npy is not a NumPy \.npy file or \.npz archive"):
        check_numpy_file(tmp_path / "text.npy")
    with pytest.raises(FileNotFoundError):
        check_numpy_file(tmp_path / "missing.npy")


def test_damaged_compressed_member_named(tmp_path):
    path = tmp_path / "damaged.npz"
    np.savez_compressed(path, images=np.random.default_rng(0).integers(0, 255, (200, 8, 8), dtype=np.uint8))
    content = bytearray(path.read_bytes())
    # Bytes 103 to 106 lie in the deflate stream of the member, where zlib rejects them.
    content[103:107] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(content))

    with pytest.raises(ValueError, match=r"Reading .*damaged\.npz as a NumPy \.npy or \.npz file failed"):
        read_numpy_file(path)
