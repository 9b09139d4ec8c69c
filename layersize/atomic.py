"""Atomic file output: write to a temporary file in the target folder, then rename.

A reader never sees a half-written file, and a failure leaves any earlier file
at that path untouched.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "json_safe", "write_atomic", "write_json"]


def _current_umask() -> int:
    """Return the process umask (os.umask can only read it by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and rename it onto ``path`` on success.

    The temporary file keeps the suffix of ``path`` (or ``suffix``) so that
    writers that choose a format by extension, such as ``matplotlib.savefig``,
    still work. On an exception the temporary file is removed and ``path`` is left
    as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=suffix or target.suffix
    )
    os.close(descriptor)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        # mkstemp creates the file for its owner only; give it the permissions
        # that a plain open() would, so other users can read the report.
        os.chmod(temporary_path, 0o666 & ~_current_umask())
        os.replace(temporary_path, target)
    finally:
        temporary_path.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to ``path`` atomically and return the path."""
    with atomic_path(path) as temporary:
        if isinstance(content, bytes):
            temporary.write_bytes(content)
        else:
            temporary.write_text(content, encoding="utf-8")
    return Path(path)


def json_safe(value: Any) -> Any:
    """Return ``value`` with every NaN or infinite float replaced by None.

    Python's json module writes such floats as ``NaN`` and ``Infinity``, which
    are not JSON and which other readers reject.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json(path: str | os.PathLike, document: Any) -> Path:
    """Write ``document`` as indented JSON atomically, NaN and inf written as null."""
    return write_atomic(path, json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")
