"""Time the NEAR authors' example protocol with layersize and compare the estimates.

The protocol of the example in the authors' NEAR library (version 1.0.0): a
784-w-10 MLP with SiLU and PyTorch's default initialisation, on MNIST digits
scaled to [0, 1], widths w = 10·2^i for i = 0…7, 5 repetitions per width and
threshold t = 0.01. That library scores only the SiLU output of the hidden
layer and adds the point (1, 1) to the fit. Its example took 11.4 s on a 2-core
machine of the kind used here and estimated 92.7.

For each seed this script runs layersize's layer scores once (pre- and
post-activation ranks of every repetition) and reads two estimates off them:

* ``authors' reading``: post-activation ranks only, with the point (1, 1),
  which is what the authors' library computes;
* ``layersize default``: pre- plus post-activation ranks, with the exact point
  (1, 2), which is what ``near-size`` reports.

Run from the repository root (the MNIST-5k file comes from ../shared/data)::

    python benchmarks/mnist_protocol.py --seeds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from layersize.fit import FitError, fit_power_law
from layersize.images import load_images
from layersize.layer_score import layer_score

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_5k.csv.gz"
WIDTHS = [10 * 2**i for i in range(8)]
AUTHORS_SECONDS = 11.4
AUTHORS_ESTIMATE = 92.7


def run_protocol(features: np.ndarray, seed: int) -> tuple[float, list]:
    """Score every width once and return the wall time and the layer scores."""
    started = time.perf_counter()
    scores = [
        layer_score(features, (), width, repetitions=5, activation="silu", init="pytorch", seed=seed)
        for width in WIDTHS
    ]
    return time.perf_counter() - started, scores


def estimate(scores: list, part: str) -> tuple[float, float]:
    """Return the width x* and its standard error for one reading of the scores."""
    if part == "post":
        relative = [score.post_activation.mean() / score.width for score in scores]
        anchor = 1.0
    else:
        relative = [score.mean / score.width for score in scores]
        anchor = 2.0
    fit = fit_power_law(WIDTHS, relative, threshold=0.01, anchor=(1.0, anchor))
    return fit.width, fit.width_stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MNIST-5k CSV file")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (runs)")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"{args.data} not found; pass the MNIST-5k CSV with --data.", file=sys.stderr)
        return 1

    features = load_images(args.data).features
    run_protocol(features, seed=-1 % 2**31)  # warm-up: first calls load kernels

    seconds, readings = [], {"post": [], "both": []}
    for seed in range(args.seeds):
        elapsed, scores = run_protocol(features, seed)
        seconds.append(elapsed)
        for part in readings:
            try:
                readings[part].append(estimate(scores, part))
            except FitError as error:
                print(f"seed {seed}, {part}: {error}", file=sys.stderr)

    median = statistics.median(seconds)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
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
