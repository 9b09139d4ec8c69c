"""Time the NEAR authors' example protocol with layersize and compare the estimates.

The protocol of the example in the authors' NEAR library (version 1.0.0): a
784-w-10 MLP with SiLU and PyTorch's default initialisation, on MNIST digits
scaled to [0, 1], widths w = 10·2^i for i = 0…7, 5 repetitions per width and
threshold t = 0.01. That library scores only the SiLU output of the hidden
layer and adds the point (1, 1) to the fit. Its example took 11.4 s on a 2-core
machine of the kind used here and estimated 92.7.

For each seed this script runs layersize's width sweep once, as near-size does
(``estimate_layer_size``, with --workers threads), which keeps the pre- and
post-activation ranks of every width, and reads two estimates off them:

* ``authors' reading``: post-activation ranks only, with the point (1, 1),
  which is what the authors' library computes;
* ``layersize default``: pre- plus post-activation ranks, with the exact point
  (1, 2), which is what ``near-size`` reports.

Run from the repository root (the MNIST-5k file comes from ../shared/data)::

    python benchmarks/mnist_protocol.py --seeds 5 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import warnings

import torch

from layersize.fit import FitError, fit_power_law
from layersize.images import load_images
from layersize.sizing import estimate_layer_size

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_5k.csv.gz"
WIDTHS = [10 * 2**i for i in range(8)]
AUTHORS_SECONDS = 11.4
AUTHORS_ESTIMATE = 92.7


def run_protocol(features, seed: int, workers: int) -> tuple[float, list]:
    """Sweep the widths once and return the wall time and the points of the sweep."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        # The fit of these scores rests mainly on the width-1 point. near-size
        # warns about that, and docs/benchmarks.md explains why.
        warnings.simplefilter("ignore")
        result = estimate_layer_size(
            features, widths=WIDTHS, repetitions=5, activation="silu", init="pytorch",
            threshold=0.01, seed=seed, workers=workers, allow_extrapolation=True,
        )
    return time.perf_counter() - started, list(result.points)


def estimate(points: list, part: str) -> tuple[float, float]:
    """Return the width x* and its standard error for one reading of the points."""
    if part == "post":
        relative = [point.post_activation / point.width for point in points]
        anchor = 1.0
    else:
        relative = [point.relative_mean for point in points]
        anchor = 2.0
    fit = fit_power_law(WIDTHS, relative, threshold=0.01, anchor=(1.0, anchor))
    return fit.width, fit.width_stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MNIST-5k CSV file")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (runs)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker threads of the sweep (default: usable cores)")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"{args.data} not found; pass the MNIST-5k CSV with --data.", file=sys.stderr)
        return 1

    features = load_images(args.data).features
    run_protocol(features, seed=-1 % 2**31, workers=args.workers)  # warm-up: first calls load kernels

    seconds, readings = [], {"post": [], "both": []}
    for seed in range(args.seeds):
        elapsed, points = run_protocol(features, seed, args.workers)
        seconds.append(elapsed)
        for part in readings:
            try:
                readings[part].append(estimate(points, part))
            except FitError as error:
                print(f"seed {seed}, {part}: {error}", file=sys.stderr)

    median = statistics.median(seconds)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"workers {args.workers or 'default'}, "
          f"python {platform.python_version()}; data {args.data.name}, {features.shape[0]} images")
    print(f"protocol time: median {median:.2f} s over {len(seconds)} runs "
          f"({' '.join(f'{value:.2f}' for value in seconds)}); "
          f"authors' library {AUTHORS_SECONDS} s, ratio {AUTHORS_SECONDS / median:.1f}×")
    print("| reading | x* per seed (± fit standard error) | mean ± sd over seeds |")
    print("|---|---|---|")
    labels = {"post": "authors' reading (post only, point (1, 1))",
              "both": "layersize default (pre + post, point (1, 2))"}
    for part, values in readings.items():
        widths = [width for width, _ in values]
        cells = ", ".join(f"{width:.1f} ± {error:.1f}" for width, error in values)
        spread = statistics.stdev(widths) if len(widths) > 1 else float("nan")
        print(f"| {labels[part]} | {cells} | {statistics.mean(widths):.1f} ± {spread:.1f} |")
    print(f"authors' estimate: {AUTHORS_ESTIMATE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
