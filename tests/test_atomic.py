"""Atomic file output: permissions, rename on success and cleanup on failure."""

from __future__ import annotations

import os
import stat

import pytest

from layersize.atomic import atomic_path, write_atomic


def test_written_file_follows_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "report.json", "{}")
    finally:
        os.umask(previous)

    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "{}"


def test_failure_keeps_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sizes.json"
    path.write_text("old")

    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text("half written")
        raise RuntimeError("writer failed")

    assert path.read_text() == "old"
    assert sorted(item.name for item in tmp_path.iterdir()) == ["sizes.json"]


def test_temporary_keeps_suffix(tmp_path):
    with atomic_path(tmp_path / "plot.png") as temporary:
        assert temporary.suffix == ".png"
        temporary.write_bytes(b"png")

    assert (tmp_path / "plot.png").read_bytes() == b"png"


def test_write_json_turns_nan_and_inf_into_null(tmp_path):
    import json
    import math

    from layersize.atomic import write_json

    path = write_json(tmp_path / "sizes.json", {"a": math.nan, "b": [1.5, math.inf], "c": (2, -math.inf)})

    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, None], "c": [2, None]}
    assert "NaN" not in path.read_text()
