"""Location of the reference data (CIFAR-10 sample, MNIST digits, NAS-Bench tables) for tests.

By default the tests look in ``shared/data`` beside the repository. Set
``LAYERSIZE_SHARED_DATA`` to another folder to use that one. A test that needs
a file from it skips, naming the path, when the file is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("LAYERSIZE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
