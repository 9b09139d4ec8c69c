"""Time ``near-size`` on the shipped S_N2 data and compare it with its eigen-solver floor.

Three measurements, each repeated ``--runs`` times and reported as a median:

1. ``cold``: the whole command in a fresh process with an empty descriptor cache
   (interpreter start, imports, descriptors, sweep, fit, plots).
2. ``warm``: the same command with the descriptor cache filled.
3. In one process with the descriptors loaded: the sweep of all layers
   (``estimate_layer_sizes``), and the time spent inside
   ``numpy.linalg.eigvalsh``, the eigen-solver of the effective ranks on the
   CPU, during that sweep. The eigen-solver calls are the
   floor: every repetition needs one eigen-decomposition per matrix, whatever
   the code around it does. The sweep is timed with one worker thread and with
   two. With two, the floor is half the eigen-solver time summed over both
   threads, because that is the wall time the calls alone would take on two
   cores.

Run from the repository root::

    python benchmarks/near_size_bench.py --runs 5

and copy the printed table into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

REPOSITORY = Path(__file__).resolve().parent.parent
DATA = REPOSITORY / "data" / "sn2.xyz"


def time_command(arguments: list[str], environment: dict[str, str]) -> float:
    """Run a command to completion and return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(arguments, check=True, env=environment, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_commands(runs: int, layers: int, repetitions: int) -> tuple[list[float], list[float]]:
    """Return the wall times of cold-cache and warm-cache ``near-size`` runs."""
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch:
            environment = dict(os.environ, LAYERSIZE_CACHE_DIR=str(Path(scratch) / "cache"))
            command = [sys.executable, "-m", "layersize", "--data", str(DATA), "--layers", str(layers),
                       "--repetitions", str(repetitions), "--seed", "0", "--no-progress",
                       "--out", str(Path(scratch) / "out")]
            cold.append(time_command(command, environment))
            warm.append(time_command(command, environment))
    return cold, warm


def time_sweep(runs: int, layers: int, repetitions: int, workers: int) -> tuple[list[float], list[float]]:
    """Return the sweep times and the eigen-solver times inside them (summed over threads)."""
    from layersize import estimate_layer_sizes, load_atomic_features

    features = load_atomic_features(DATA).features
    original = np.linalg.eigvalsh
    spent = [0.0]
    lock = threading.Lock()

    def timed_eigvalsh(*arguments, **keywords):
        started = time.perf_counter()
        try:
            return original(*arguments, **keywords)
        finally:
            with lock:
                spent[0] += time.perf_counter() - started

    sweeps, floors = [], []
    np.linalg.eigvalsh = timed_eigvalsh
    try:
        for _ in range(runs):
            spent[0] = 0.0
            started = time.perf_counter()
            estimate_layer_sizes(features, n_layers=layers, repetitions=repetitions, seed=0,
                                 workers=workers)
            sweeps.append(time.perf_counter() - started)
            floors.append(spent[0])
    finally:
        np.linalg.eigvalsh = original
    return sweeps, floors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repeats of each measurement")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--repetitions", type=int, default=400)
    args = parser.parse_args()

    cold, warm = time_commands(args.runs, args.layers, args.repetitions)
    sweeps, floors = time_sweep(args.runs, args.layers, args.repetitions, workers=1)
    parallel, parallel_floors = time_sweep(args.runs, args.layers, args.repetitions, workers=2)
    ratios = [sweep / floor for sweep, floor in zip(sweeps, floors)]

    def line(name: str, values: list[float], unit: str = "s") -> str:
        values_text = " ".join(f"{value:.2f}" for value in values)
        return f"| {name} | {statistics.median(values):.2f} {unit} | {values_text} |"

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, python {platform.python_version()}")
    print(f"near-size --data data/sn2.xyz --layers {args.layers} --repetitions {args.repetitions} "
          f"--seed 0, {args.runs} runs")
    print("| measurement | median | runs |")
    print("|---|---|---|")
    print(line("whole command, cold descriptor cache", cold))
    print(line("whole command, warm descriptor cache", warm))
    print(line("sweep of all layers, in process, 1 worker", sweeps))
    print(line("eigvalsh calls inside that sweep (floor)", floors))
    print(line("sweep / floor, 1 worker", ratios, unit="×"))
    print(line("sweep of all layers, 2 workers (the default here)", parallel))
    print(line("eigvalsh calls inside it, summed over both threads", parallel_floors))
    print(line("2-worker sweep / half the summed eigvalsh time",
               [2 * sweep / floor for sweep, floor in zip(parallel, parallel_floors)], unit="×"))
    print(line("warm command / floor", [w / f for w, f in zip(warm, floors)], unit="×"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
