"""Size the atomic networks of a Behler–Parrinello potential from the library.

A potential with one network per element needs a width estimate per element:
the network of hydrogen takes different descriptor rows than that of carbon.
This example estimates the hidden layers of the pooled network (all atoms in one
network, what ``near-size`` does by default) and of the networks of the most
common elements of the shipped S_N2 data set, and prints them side by side.

Run from the repository root (about 20 s on 2 cores with a warm descriptor cache)::

    python examples/size_sn2_potential.py
    python examples/size_sn2_potential.py --layers 3 --repetitions 400 --elements C,H,Cl
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from layersize import FitError, estimate_layer_sizes, load_atomic_features

DATA = Path(__file__).resolve().parent.parent / "data" / "sn2.xyz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="structure file (extended XYZ)")
    parser.add_argument("--layers", type=int, default=2, help="hidden layers to size")
    parser.add_argument("--repetitions", type=int, default=200, help="repetitions per width")
    parser.add_argument("--elements", default="C,H", help="comma-separated element symbols")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    networks = [None, *args.elements.split(",")]
    print(f"{'network':<10} {'atoms':>7}  widths (x* ± standard error)")
    for element in networks:
        atomic = load_atomic_features(args.data, element=element)
        try:
            result = estimate_layer_sizes(
                atomic.features, n_layers=args.layers, repetitions=args.repetitions, seed=args.seed
            )
        except FitError as error:
            print(f"{element or 'pooled':<10} {atomic.features.shape[0]:>7}  no estimate: {error}")
            continue
        estimates = ", ".join(
            f"{layer.width} ({layer.fit.width:.1f} ± {layer.fit.width_stderr:.1f})"
            for layer in result.layers
        )
        print(f"{element or 'pooled':<10} {atomic.features.shape[0]:>7}  {estimates}")


if __name__ == "__main__":
    main()
