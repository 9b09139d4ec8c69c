"""``near-select``: rank activation × initialisation pairs of an MLP on image data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
import numpy as np

from layersize.atomic import write_atomic
from layersize.cli.common import configure_logging, seed_option, verbosity_options
from layersize.images import IMAGE_FORMATS, load_images
from layersize.nets import ACTIVATIONS, INITIALIZATIONS
from layersize.selection import DEFAULT_REPETITIONS, plot_selection, rank_activation_init

__all__ = ["main"]

logger = logging.getLogger(__name__)

# Output width used when the data file has no labels to count classes from.
_DEFAULT_OUTPUTS = 10


def _parse_widths(context: click.Context, parameter: click.Parameter, text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",")]
    try:
        widths = tuple(int(part) for part in parts)
    except ValueError:
        widths = ()
    if not widths or any(width < 1 for width in widths):
        raise click.BadParameter(
            f"{text!r} is not a list of layer widths; give positive integers separated by commas, "
            f"such as 200,200."
        )
    return widths


def _name_list_callback(known: dict, kind: str):
    def parse(context: click.Context, parameter: click.Parameter, text: str | None) -> list[str] | None:
        if text is None:
            return None
        names: list[str] = []
        for part in text.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in known:
                raise click.BadParameter(f"Unknown {kind} {part.strip()!r}. Choose from: {', '.join(known)}.")
            if name not in names:
                names.append(name)
        if not names:
            raise click.BadParameter(f"No {kind} given. Choose from: {', '.join(known)}.")
        return names

    return parse


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Image file whose images are the input samples: IDX, CSV (.csv, .csv.gz), .npz or .npy. "
         "Pixel values are scaled to [0, 1] as layersize.images.load_images does.",
)
@click.option(
    "--format", "data_format", type=click.Choice(list(IMAGE_FORMATS)), default=None,
    help="Format of --data. Default: chosen from the file name.",
)
@click.option(
    "--label-column", type=click.Choice(["first", "last", "none"]), default=None,
    help="CSV only: the column that contains the labels. Default: inferred from the header or the values.",
)
@click.option(
    "--hidden", "hidden_widths", required=True, callback=_parse_widths, metavar="WIDTHS",
    help="Widths of the hidden layers, separated by commas, such as 200,200.",
)
@click.option(
    "--outputs", "n_outputs", type=click.IntRange(min=1), default=None,
    help=f"Width of the output layer. Default: the number of distinct labels in --data, "
         f"or {_DEFAULT_OUTPUTS} when the file has no labels.",
)
@click.option(
    "--activations", callback=_name_list_callback(ACTIVATIONS, "activation"), metavar="NAMES",
    help=f"Activations to try, separated by commas. Default: all ({', '.join(ACTIVATIONS)}).",
)
@click.option(
    "--inits", callback=_name_list_callback(INITIALIZATIONS, "initialisation"), metavar="NAMES",
    help=f"Weight initialisations to try, separated by commas. Default: all ({', '.join(INITIALIZATIONS)}). "
         f"'uniform' draws every weight from U(0, 1).",
)
@click.option(
    "--repetitions", type=click.IntRange(min=1), default=DEFAULT_REPETITIONS, show_default=True,
    help="Repetitions per pair, each with fresh weights and a fresh sample of images.",
)
@seed_option
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("near-select-out"),
    show_default=True, help="Folder for selection.json and selection.png (created if missing).",
)
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar over the pairs on stderr.")
@verbosity_options
def main(
    data_path: Path,
    data_format: str | None,
    label_column: str | None,
    hidden_widths: tuple[int, ...],
    n_outputs: int | None,
    activations: list[str] | None,
    inits: list[str] | None,
    repetitions: int,
    seed: int,
    out_dir: Path,
    progress: bool,
    verbose: int,
    quiet: int,
) -> None:
    """Rank activation × weight-initialisation pairs of an MLP by NEAR score.

    For every pair, an MLP with the input width of the images, the --hidden
    layers and --outputs outputs is scored before training. The NEAR score
    (Network Expressivity by Activation Rank) sums the effective rank of the
    output of every Linear layer and every activation. Each output is taken on
    a square matrix of as many images as the layer is wide. The sum is averaged
    over repetitions with fresh random weights and images. The score has no
    unit, and a higher score means a more expressive network at initialisation.

    Prints the pairs from highest to lowest score with standard errors, and
    writes selection.json and a bar chart selection.png to --out. A run of
    pairs whose 95% intervals (score ± 1.96 stderr) all overlap each other
    share a rank, marked with '='.
    """
    configure_logging(verbose, quiet)
    try:
        data = load_images(data_path, data_format, label_column=label_column)
    except (ValueError, OSError) as error:
        raise click.BadParameter(f"Reading {data_path} failed: {error}", param_hint="--data") from error

    if n_outputs is None:
        if data.labels is None:
            n_outputs = _DEFAULT_OUTPUTS
            logger.info("%s has no labels, so the output layer gets %d units.", data_path, n_outputs)
        else:
            n_outputs = int(np.unique(data.labels).size)
            logger.info("%s has %d distinct labels, the width of the output layer.", data_path, n_outputs)

    widest = max((*hidden_widths, n_outputs))
    if data.n_images < widest:
        raise click.BadParameter(
            f"{data_path} contains {data.n_images} images, but a layer of width {widest} needs "
            f"{widest} images for its square matrix. Use more images or narrower layers.",
            param_hint="--data",
        )

    result = rank_activation_init(
        data.features, hidden_widths, n_outputs, activations=activations, inits=inits,
        repetitions=repetitions, seed=seed, progress=progress,
    )
    click.echo(result.format_table())

    # The plot comes first, so that a failure while drawing leaves no JSON behind either.
    plot_path = out_dir / "selection.png"
    json_path = out_dir / "selection.json"
    plot_selection(result, plot_path)
    document = {"data": str(data_path), "n_images": data.n_images, **result.to_dict()}
    write_atomic(json_path, json.dumps(document, indent=2) + "\n")
    logger.info("Wrote %s and %s.", json_path, plot_path)


if __name__ == "__main__":
    main()
