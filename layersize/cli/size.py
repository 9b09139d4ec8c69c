"""``near-size``: estimate the hidden-layer widths of an MLP from a structure or image file."""

from __future__ import annotations

import logging
import warnings

import click
from click.core import ParameterSource

from layersize.checking import (
    DEFAULT_BATCH_SAMPLES,
    DEFAULT_BATCH_STRUCTURES,
    DEFAULT_FACTORS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_N_SEEDS,
    DEFAULT_PATIENCE,
    DEFAULT_SPLIT,
    ENERGY_REFERENCES,
    check_widths,
    validate_factors,
    validate_split,
)
from layersize.cli.common import configure_logging, seed_option, verbosity_options
from layersize.data import load_atomic_features, load_inputs
from layersize.fit import DEFAULT_THRESHOLD, FitError
from layersize.nets import ACTIVATIONS, INITIALIZATIONS
from layersize.report import format_table, write_report
from layersize.images import IMAGE_FORMATS
from layersize.sizing import DEFAULT_REPETITIONS, DEFAULT_WIDTHS, IMAGE_REPETITIONS, IMAGE_WIDTHS, default_sweep, estimate_layer_sizes

logger = logging.getLogger(__name__)


def parse_widths(context, parameter, value: str | None):
    """Turn "4,8,16" into (4, 8, 16); None keeps the default grid of the input kind."""
    if value is None:
        return None
    try:
        widths = tuple(int(item) for item in value.replace(" ", "").split(",") if item)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of integers, such as 4,8,16,32,64,128."
        ) from None
    too_small = [width for width in widths if width < 2]
    if too_small:
        raise click.BadParameter(
            f"{value!r} contains the width {too_small[0]}. Widths are numbers of neurons, "
            f"at least 2 (width 1 is added to the fit by --anchor)."
        )
    if len(set(widths)) < 4:
        raise click.BadParameter(f"{value!r} has fewer than 4 distinct widths; the fit needs at least 4.")
    return widths


def _parse_numbers(value: str, example: str) -> tuple[float, ...]:
    try:
        return tuple(float(item) for item in value.replace(" ", "").split(",") if item)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers, such as {example}.") from None


def parse_factors(context, parameter, value: str) -> tuple[float, ...]:
    """Turn "0.5,1,2" into (0.5, 1.0, 2.0), rejecting a factor that is not positive."""
    factors = _parse_numbers(value, "0.5,1,2")
    try:
        return validate_factors(factors)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def parse_split(context, parameter, value: str) -> tuple[float, float, float]:
    """Turn "0.8,0.1,0.1" into train, validation and test shares."""
    shares = _parse_numbers(value, "0.8,0.1,0.1")
    try:
        validate_split(shares)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return shares


def _format_numbers(values) -> str:
    return ",".join(f"{value:g}" for value in values)


# Options that only apply with --check, by parameter name.
CHECK_OPTIONS = (
    "check_factors", "check_seeds", "check_max_epochs", "check_patience", "check_learning_rate",
    "check_batch_size", "check_split", "check_networks", "check_energy_reference",
)


@click.command(
    name="near-size",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="Structure file (extended XYZ or any format ASE reads; positions in Å) or "
                   "image file (IDX, .csv/.csv.gz, .npz, .npy; pixels scaled to [0, 1]).")
@click.option("--format", "file_format", default=None,
              help=f"Image format ({', '.join(IMAGE_FORMATS)}) or ASE format name, when it "
                   "cannot be told from the file name.")
@click.option("--label-column", type=click.Choice(["first", "last", "none"]), default=None,
              help="CSV images only: the column with the labels. Default: inferred.")
@click.option("--layers", type=click.IntRange(min=1), default=3, show_default=True,
              help="Number of hidden layers to size, one after the other.")
@click.option("--widths", callback=parse_widths, default=None,
              help="Comma-separated widths (neurons) to sweep for each layer. "
                   f"[default: {','.join(map(str, DEFAULT_WIDTHS))} for structures, "
                   f"{','.join(map(str, IMAGE_WIDTHS))} for images]")
@click.option("--repetitions", type=click.IntRange(min=2), default=None,
              help="Repetitions per width, each with fresh weights and sample rows; the "
                   "maximum when --target-stderr is set. "
                   f"[default: {DEFAULT_REPETITIONS} for structures, {IMAGE_REPETITIONS} for images]")
@click.option("--target-stderr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop adding repetitions at a width once the standard error of "
                   "score/width falls to this value (checked every 50 repetitions).")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=DEFAULT_THRESHOLD, show_default=True,
              help="Fraction of the fitted slope at width 1 at which the width is read off.")
@click.option("--activation", type=click.Choice(list(ACTIVATIONS), case_sensitive=False),
              default="stanh", show_default=True,
              help="Activation of every hidden layer; stanh is 1.59223·tanh, as in lMLP potentials.")
@click.option("--init", "init", type=click.Choice(list(INITIALIZATIONS), case_sensitive=False),
              default="stanh", show_default=True,
              help="Weight initialisation; stanh draws W ~ N(0, 1/fan_in) with zero bias.")
@seed_option
@click.option("--element", default=None,
              help="Size the network of one element (rows = atoms of that element), e.g. C. "
                   "By default all atoms are pooled into one network.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="near-size-out",
              show_default=True,
              help="Folder for sizes.json, layer_<k>.png and input.nn.")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Keep descriptors on disk ($LAYERSIZE_CACHE_DIR or ~/.cache/layersize), "
                   "keyed by the file's content and the descriptor parameters.")
@click.option("--anchor/--no-anchor", default=True, show_default=True,
              help="Add the point at width 1 to the fit: both matrices are 1×1 there, so the "
                   "relative score is 2 unless the activation outputs exact zeros (ReLU).")
@click.option("--allow-extrapolation", is_flag=True,
              help="Report a width outside the swept range instead of stopping with an error.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker threads of the width sweep, each running torch and NumPy on one "
                   "thread. Wide widths are split into pieces that all workers share, except "
                   "with --target-stderr. The result does not depend on it. Default: the "
                   "usable CPU cores.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show progress bars on stderr.")
@click.option("--check", is_flag=True,
              help="After estimating, train networks at and around the estimate on a train/"
                   "validation/test split of the data, and report their parameter counts and test "
                   "error: energy RMSE (meV/atom) for structures, trained on energies only, not "
                   "forces; cross-entropy and accuracy (%) for labelled images. Adds the table to "
                   "sizes.json and writes check.png.")
@click.option("--check-factors", callback=parse_factors, default=_format_numbers(DEFAULT_FACTORS),
              show_default=True,
              help="Comma-separated multiples of a layer's estimate to train, one layer at a time "
                   "with the other layers at their estimates. The estimate itself is always trained.")
@click.option("--check-seeds", type=click.IntRange(min=1), default=DEFAULT_N_SEEDS, show_default=True,
              help="Training runs per variant, each from its own seed; the table shows mean ± "
                   "standard deviation over them.")
@click.option("--check-max-epochs", type=click.IntRange(min=1), default=DEFAULT_MAX_EPOCHS,
              show_default=True, help="Epoch limit per training run.")
@click.option("--check-patience", type=click.IntRange(min=1), default=DEFAULT_PATIENCE,
              show_default=True,
              help="Stop a run after this many epochs without a lower validation loss; the "
                   "weights of the best validation epoch are tested.")
@click.option("--check-learning-rate", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_LEARNING_RATE, show_default=True, help="Adam step size.")
@click.option("--check-batch-size", type=click.IntRange(min=1), default=None,
              help="Structures (or images) per mini-batch. "
                   f"[default: {DEFAULT_BATCH_STRUCTURES} structures, {DEFAULT_BATCH_SAMPLES} images]")
@click.option("--check-split", callback=parse_split, default=_format_numbers(DEFAULT_SPLIT),
              show_default=True,
              help="Train, validation and test shares of the structures or images, comma-separated.")
@click.option("--check-networks", type=click.Choice(["pooled", "per-element"]), default=None,
              help="One atomic network for all atoms, or one per element with the same widths "
                   "(Behler-Parrinello). [default: per-element with --element, else pooled]")
@click.option("--check-energy-reference", type=click.Choice(list(ENERGY_REFERENCES)),
              default="elements", show_default=True,
              help="Energy subtracted before fitting: per-element reference energies fitted by "
                   "least squares to the training structures, or only the mean energy per atom.")
@verbosity_options
def main(data_path, file_format, label_column, layers, widths, repetitions, target_stderr, threshold,
         activation, init, seed, element, out_dir, cache, anchor, allow_extrapolation, workers, progress,
         check, check_factors, check_seeds, check_max_epochs, check_patience, check_learning_rate,
         check_batch_size, check_split, check_networks, check_energy_reference,
         verbose, quiet):
    """Estimate how wide each hidden layer of an MLP should be, before training.

    For a potential, reads the structures of --data and computes the 153 eeACSF
    descriptors of the S_N2 lMLP model for every atom (square-rooted and
    standardised). For an image file, each image is one row of pixels. Then sizes
    the hidden layers greedily with the NEAR score. For each candidate width n,
    the effective ranks of the n×n pre- and post-activation matrices are
    averaged over repetitions. A power law α + β·x^γ is fitted to score/width,
    and the width is where the fitted slope has fallen to --threshold of its
    value at width 1.

    Prints a table of the widths and writes sizes.json, one plot per layer and,
    for structure files, input.nn lines for n2p2/RuNNer into --out.

    With --check, it then trains the estimate and variants with one layer
    scaled by each of --check-factors, from --check-seeds seeds each, and
    prints their parameter counts and test energy RMSE (potentials; only
    energies are trained, not forces) or test cross-entropy and accuracy
    (labelled images).

    Example: near-size --data data/sn2.xyz --layers 3 --seed 0
    """
    configure_logging(verbose, quiet)
    context = click.get_current_context()
    if not check:
        explicit_options = [
            name for name in CHECK_OPTIONS if context.get_parameter_source(name) != ParameterSource.DEFAULT
        ]
        if explicit_options:
            flags = ", ".join("--" + name.replace("_", "-") for name in explicit_options)
            verb = "applies" if len(explicit_options) == 1 else "apply"
            raise click.UsageError(f"{flags} {verb} only with --check. Add --check, or leave them out.")
    caught: list[warnings.WarningMessage] = []
    try:
        inputs = load_inputs(
            data_path, file_format, element=element, cache_dir=True if cache else None,
            label_column=label_column, progress=progress,
        )
        summary = inputs.summary()
        default_widths, default_repetitions = default_sweep(
            inputs.kind, inputs.features.shape[0] if widths is None else None
        )
        widths = widths or default_widths
        repetitions = repetitions or default_repetitions
        click.echo(inputs.describe())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = estimate_layer_sizes(
                inputs.features, n_layers=layers, widths=widths, repetitions=repetitions,
                activation=activation.lower(), init=init.lower(), threshold=threshold, seed=seed,
                target_stderr=target_stderr, allow_extrapolation=allow_extrapolation,
                progress=progress, anchor=anchor, workers=workers,
            )
    except FileNotFoundError as error:
        raise click.BadParameter(str(error), param_hint="--data") from None
    except (ValueError, FitError) as error:
        # Warnings about earlier layers still help to understand the failure.
        for warning in caught:
            click.echo(f"Warning: {warning.message}", err=True)
        raise click.ClickException(str(error)) from None
    for warning in caught:
        click.echo(f"Warning: {warning.message}", err=True)

    click.echo(format_table(result))
    click.echo("widths: " + " ".join(str(width) for width in result.widths))

    check_result = None
    if check:
        if inputs.kind == "images":
            check_data = inputs.source
            click.echo(
                f"Checking widths {'-'.join(str(width) for width in result.widths)} by training "
                f"classifiers ({check_seeds} seed{'s' if check_seeds != 1 else ''} per variant)"
            )
        else:
            if check_networks is None:
                check_networks = "per-element" if element else "pooled"
            click.echo(
                f"Checking widths {'-'.join(str(width) for width in result.widths)} by training "
                f"({check_networks} networks, {check_seeds} seed{'s' if check_seeds != 1 else ''} "
                f"per variant, energies only: forces are not trained)"
            )
        try:
            if inputs.kind == "structures":
                # A total energy needs every atom, also when the widths were sized for one element.
                check_data = inputs.source if element is None else load_atomic_features(
                    data_path, format=file_format, cache_dir=True if cache else None,
                    progress=progress,
                )
            check_result = check_widths(
                check_data, result.widths, factors=check_factors, n_seeds=check_seeds, seed=seed,
                split=check_split, activation=activation.lower(), init=init.lower(),
                learning_rate=check_learning_rate, batch_size=check_batch_size,
                max_epochs=check_max_epochs, patience=check_patience,
                networks=(check_networks or "pooled").replace("-", "_"),
                energy_reference=check_energy_reference, progress=progress,
            )
        except ValueError as error:
            raise click.ClickException(f"The check failed, and no files were written: {error}") from None
        click.echo(check_result.format_table())

    written = write_report(result, out_dir, extra={"data": summary}, check=check_result,
                           potential=inputs.kind == "structures")
    click.echo(f"wrote {', '.join(str(path) for path in written)}")
