"""``near-bench``: score NAS-Bench-201 architectures and correlate the scores with accuracy."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from layersize.cli.common import configure_logging, verbosity_options

logger = logging.getLogger(__name__)


def _parse_indices(context: click.Context, parameter: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        indices = [int(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers such as 0,284,1000, got {value!r}."
        ) from None
    if not indices:
        raise click.BadParameter(f"expected at least one index, such as 0,284,1000, got {value!r}.")
    return indices


def _format_interval(statistics: dict, name: str, interval: str) -> str:
    low, high = statistics[interval]
    return f"{statistics[name]:+.3f} [{low:+.3f}, {high:+.3f}]"


def _quiet_dask_logs() -> None:
    """Show only warnings and errors of dask.distributed, unless -v is given.

    distributed sets its own loggers to INFO when imported, which printed about
    40 lines of cluster start and shutdown around every run.
    """
    try:
        import distributed  # noqa: F401 - the import sets the levels that are overridden here
    except ImportError:
        return
    logging.getLogger("distributed").setLevel(logging.WARNING)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--space", type=click.Choice(["nats-tss"]), default="nats-tss", show_default=True,
              help="Search space: NATS-Bench topology search space (NAS-Bench-201 cells).")
@click.option("--sample", type=click.IntRange(1, 15625), default=None,
              help="Score a random sample of this many benchmark indices, drawn with --seed. A "
                   "larger sample with the same seed is drawn afresh and does not contain the "
                   "smaller one; to add architectures to a run, list them with --indices.")
@click.option("--indices", callback=_parse_indices, default=None,
              help="Score these comma-separated benchmark indices, for example 0,284.")
@click.option("--archs", "archs_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Score the architecture strings in this file, one per line.")
@click.option("--images", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="NumPy .npz archive with uint8 'images' of shape (N, H, W, 3) or (N, 3, H, W), "
                   "such as 32×32 CIFAR images, or a .npy file of that array.")
@click.option("--normalise", type=click.Choice(["cifar10", "cifar100", "none"]), default="cifar10",
              show_default=True, help="Per-channel mean and std used to normalise the images.")
@click.option("--accuracy", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV with columns index,arch and accuracy columns; enables correlations and the plot.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("near-bench-results"), show_default=True,
              help="Output folder for scores.csv, summary.json and near_vs_accuracy.png.")
@click.option("--repetitions", type=click.IntRange(min=2), default=32, show_default=True,
              help="Repetitions of each NEAR score, each with fresh weights. At least 2, for a standard error.")
@click.option("--num-classes", type=click.IntRange(min=1), default=10, show_default=True,
              help="Output width of the networks' classifier.")
@click.option("--classifier/--no-classifier", default=True, show_default=True,
              help="Count the output of the final Linear layer in the score. It is --num-classes wide, "
                   "so each repetition needs that many images. Without it one image per repetition "
                   "is enough and scoring takes about 1.7x less time, but the scores change and rank "
                   "slightly worse against accuracy (docs/benchmarks.md).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Score in parallel on a local dask cluster of this many worker processes.")
@click.option("--scheduler", default=None,
              help="Score on a running dask cluster at this scheduler address, e.g. tcp://10.0.0.5:8786.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="On a cluster, how often to rerun an architecture whose task raised or whose worker died.")
@click.option("--threads", "torch_threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Torch threads per architecture, serially and on each worker. Scores agree exactly "
                   "only between runs with the same value.")
@click.option("--device", default=None,
              help="Torch device of the forward passes, such as cuda or cuda:1.  [default: cpu]")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples for the confidence intervals.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Confidence level of the bootstrap intervals.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the --sample draw and of every NEAR score (weights, images, block positions). "
                   "The same seed gives the same scores.")
@verbosity_options
def main(space, sample, indices, archs_file, images, normalise, accuracy, out_dir, repetitions,
         num_classes, classifier, workers, scheduler, retries, torch_threads, device, n_bootstrap, confidence, no_progress, seed, verbose, quiet):
    """Score NAS-Bench-201 architectures with NEAR and rank-correlate the scores with accuracy.

    Choose the architectures with exactly one of --sample, --indices and --archs.
    Rerunning with the same --out scores only the architectures not yet in
    scores.csv. Its settings (repetitions, seed, classes, --classifier, the
    images) are kept in scores.csv.settings.json, and a rerun with other
    settings stops with an error rather than mix scores that do not compare.

    An architecture that fails to score is recorded with status error and
    scored again on the next run. The command exits with status 1 when no
    architecture has a score, and 0 otherwise.
    """
    configure_logging(verbose, quiet)
    if (workers is not None or scheduler is not None) and verbose == 0:
        _quiet_dask_logs()
    from layersize import bench

    if workers is not None and scheduler is not None:
        raise click.UsageError("Give either --workers (start a local cluster) or --scheduler, not both.")
    chosen = [name for name, value in (("--sample", sample), ("--indices", indices), ("--archs", archs_file))
              if value is not None]
    if len(chosen) != 1:
        raise click.UsageError(
            "Choose the architectures with exactly one of --sample, --indices and --archs "
            f"(got {', '.join(chosen) if chosen else 'none'}). Use --sample 15625 for the whole space."
        )

    try:
        archs = bench.read_archs_file(archs_file) if archs_file is not None else None
        selected = bench.select_indices(sample=sample, seed=seed, indices=indices, archs=archs)
        image_tensor = bench.load_cifar_images(images, normalise=None if normalise == "none" else normalise)
    except (ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc

    try:
        summary = bench.run_benchmark(
            selected, image_tensor, out_dir, accuracy_csv=accuracy, repetitions=repetitions, seed=seed,
            workers=workers, scheduler=scheduler, progress=not no_progress, n_bootstrap=n_bootstrap,
            confidence=confidence, num_classes=num_classes, retries=retries, device=device,
            torch_threads=torch_threads, classifier=classifier,
        )
    except (ValueError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc

    click.echo(
        f"{summary['n_requested']} architectures: {summary['n_skipped']} already scored, "
        f"{summary['n_scored']} scored now; {summary['n_ok']} ok, {summary['n_error']} error, "
        f"{summary['n_failed']} failed. Scores: {summary['results_csv']}"
    )
    if summary["n_ok"] == 0:
        raise click.ClickException(
            f"No architecture was scored. The error column of {summary['results_csv']} gives the "
            f"reason for each. Fix the cause and rerun with the same --out."
        )
    if summary.get("correlations"):
        click.echo(f"Rank correlations with accuracy, {100 * confidence:g}% bootstrap intervals "
                   f"({n_bootstrap} resamples):")
    for column, statistics in summary.get("correlations", {}).items():
        for label, key in (("NEAR", "near"), ("params", "n_params")):
            values = statistics[key]
            if values is None:
                click.echo(f"{column:<26} {label:<7} fewer than 3 scored architectures")
                continue
            click.echo(
                f"{column:<26} {label:<7} Kendall tau {_format_interval(values, 'kendall_tau', 'kendall_interval')}"
                f"  Spearman rho {_format_interval(values, 'spearman_rho', 'spearman_interval')}"
                f"  n = {values['n']}"
            )
    if "plot" in summary:
        click.echo(f"Plot: {summary['plot']}  Summary: {summary['summary_json']}")
