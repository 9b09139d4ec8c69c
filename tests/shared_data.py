"""Location of the reference data (CIFAR-10 sample, MNIST digits, NAS-Bench tables) for tests.

By default the tests look in ``shared/data`` beside the repository. Set
``LAYERSIZE_SHARED_DATA`` to another folder to use that one. A value that is
not a folder stops the tests. A test that needs a file from the folder skips,
naming the path, when the file is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

_FROM_ENVIRONMENT = os.environ.get("LAYERSIZE_SHARED_DATA")
SHARED_DATA = Path(_FROM_ENVIRONMENT or Path(__file__).resolve().parents[2] / "shared" / "data")

if _FROM_ENVIRONMENT and not SHARED_DATA.is_dir():
    # A mistyped folder would otherwise skip the tests that need it without a word.
    raise FileNotFoundError(
        f"LAYERSIZE_SHARED_DATA is {_FROM_ENVIRONMENT!r}, which is not a folder. Set it to the "
        f"folder of the reference data, or unset it to use shared/data beside the repository."
    )
