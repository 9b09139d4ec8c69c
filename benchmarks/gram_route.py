"""Time the Gram matrix and its eigenvalues with torch and with NumPy, on one thread.

Each row is a batch of random float64 matrices of one size, like the batches
the effective rank receives. The ``torch`` column forms A·Aᵀ with ``@`` and
calls ``torch.linalg.eigvalsh``. The NumPy column does the same with ``@`` on
the batch (OpenBLAS's symmetric rank-k update) and ``numpy.linalg.eigvalsh``. The CPU
route of :func:`layersize.rank.singular_values` is the NumPy one.

Run from the repository root::

    python benchmarks/gram_route.py --runs 7
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

from layersize.rank import one_cpu_thread

SIZES = ((16, 400), (32, 400), (64, 400), (128, 100), (256, 20), (1280, 1))


def median_seconds(function, runs: int) -> float:
    """Return the median wall time of ``runs`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed calls per row (median)")
    arguments = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"numpy {np.__version__}, python {platform.python_version()}; one thread")
    print("| size × batch | torch (`@`, `linalg.eigvalsh`) | NumPy, batched |")
    print("|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    with one_cpu_thread():
        for size, batch in SIZES:
            matrices = torch.randn(batch, size, size, dtype=torch.float64, generator=generator)
            rows = matrices.numpy()
            with_torch = median_seconds(lambda: torch.linalg.eigvalsh(matrices @ matrices.mT), arguments.runs)
            with_numpy = median_seconds(lambda: np.linalg.eigvalsh(rows @ rows.swapaxes(-1, -2)), arguments.runs)
            print(f"| {size} × {batch} | {with_torch:.4f} s | {with_numpy:.4f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
