"""Reports of a layer-size estimate: table, sizes.json, fit plots and potential configs.

Every file is written atomically (temporary file, then rename), so an
interrupted run leaves no partial output.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from layersize.atomic import atomic_path, json_safe, write_atomic, write_json
from layersize.checking import CheckResult, plot_check
from layersize.fit import power_law
from layersize.sizing import LayerEstimate, SizingResult

__all__ = [
    "N2P2_ACTIVATION_CODES",
    "check_document",
    "format_table",
    "n2p2_lines",
    "plot_layer",
    "write_report",
]

logger = logging.getLogger(__name__)

# Activation codes of n2p2's input.nn (`global_activation_short`). n2p2 has no
# SiLU, Tanhshrink or scaled tanh.
N2P2_ACTIVATION_CODES = {"tanh": "t", "relu": "r"}


def format_table(result: SizingResult) -> str:
    """Format the per-layer widths and fits as a plain-text table."""
    def plus_minus(values: list[str], errors: list[str]) -> list[str]:
        # Values right-aligned and errors left-aligned, so the ± signs line up.
        value_size = max((len(value) for value in values), default=0)
        error_size = max((len(error) for error in errors), default=0)
        return [f"{value.rjust(value_size)} ± {error.ljust(error_size)}" for value, error in zip(values, errors)]

    layers = result.layers
    columns = {
        "layer": [str(layer.layer) for layer in layers],
        "width": [str(layer.width) for layer in layers],
        "x*": plus_minus([f"{layer.fit.width:.1f}" for layer in layers],
                         [f"{layer.fit.width_stderr:.1f}" for layer in layers]),
        "gamma": plus_minus([f"{layer.fit.gamma:.3f}" for layer in layers],
                            [f"{layer.fit.gamma_stderr:.3f}" for layer in layers]),
        "R^2": [f"{layer.fit.r_squared:.4f}" for layer in layers],
        "swept": [f"{layer.widths.min()}-{layer.widths.max()}" for layer in layers],
    }
    # Each column is as wide as its longest entry, so large estimates stay aligned.
    sizes = {title: max([len(title), *(len(cell) for cell in cells)]) for title, cells in columns.items()}
    header = "  ".join(title.rjust(sizes[title]) for title in columns)
    lines = [header, "-" * len(header)]
    for index in range(len(layers)):
        lines.append("  ".join(cells[index].rjust(sizes[title]) for title, cells in columns.items()))
    return "\n".join(lines)


def n2p2_lines(widths: list[int], activation: str) -> str:
    """Return the hidden-layer lines of an n2p2 / RuNNer ``input.nn``.

    The output layer is linear (``l``). An activation n2p2 does not have is
    written as tanh (``t``), with a comment that names the replacement.
    """
    code = N2P2_ACTIVATION_CODES.get(activation.lower())
    lines = [f"# Hidden layers estimated by layersize (NEAR); activation {activation}."]
    if code is None:
        code = "t"
        lines.append(
            f"# n2p2 has no {activation} activation: tanh ('t') is written instead; "
            f"change it if your code supports {activation}."
        )
    lines += [
        f"global_hidden_layers_short {len(widths)}",
        "global_nodes_short " + " ".join(str(width) for width in widths),
        "global_activation_short " + " ".join([code] * len(widths) + ["l"]),
    ]
    return "\n".join(lines) + "\n"


def plot_layer(layer: LayerEstimate, path: str | os.PathLike, title: str | None = None) -> Path:
    """Plot the relative score of one layer, the fitted power law and the chosen width.

    The figure shows score / width with standard-error bars at each swept
    width, the curve α + β·x^γ over the swept range and a vertical line at x*.
    When the fit contained the point at width 1 (``layer.anchor``), that
    point is drawn too, and the curve starts at width 1.
    """
    from matplotlib.figure import Figure

    x = layer.widths.astype(float)
    fit = layer.fit
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    axes.errorbar(
        x, layer.relative_scores, yerr=layer.relative_stderrs,
        fmt="o", color="black", markersize=4, capsize=3, label="relative score ± s.e.",
    )
    anchored = layer.anchor is not None
    if anchored:
        axes.plot([1.0], [layer.anchor], "o", markerfacecolor="none", color="black",
                  markersize=6, label="point at width 1 (1×1 matrices)")
    curve_x = np.geomspace(1.0 if anchored else x.min(), x.max(), 200)
    axes.plot(
        curve_x, power_law(curve_x, fit.alpha, fit.beta, fit.gamma), color="tab:blue",
        label=f"α + β·x^γ, γ = {fit.gamma:.3f} (R² = {fit.r_squared:.4f})",
    )
    axes.axvline(fit.width, color="tab:red", linestyle="--",
                 label=f"x* = {fit.width:.1f} ± {fit.width_stderr:.1f} → width {layer.width}")
    if fit.width_stderr > 0 and np.isfinite(fit.width_stderr):
        axes.axvspan(fit.width - fit.width_stderr, fit.width + fit.width_stderr,
                     color="tab:red", alpha=0.12)
    axes.set_xscale("log")
    axes.set_xlabel("width of layer (neurons)")
    axes.set_ylabel("NEAR score / width")
    fixed = ", ".join(str(width) for width in layer.fixed_widths) or "none"
    axes.set_title(title or f"Hidden layer {layer.layer} (earlier layers: {fixed})")
    axes.legend(fontsize="small")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    return Path(path)


def check_document(check: CheckResult) -> dict[str, Any]:
    """Build the ``"check"`` entry of ``sizes.json``: the printed table and every variant's runs.

    NaN scores (a run that diverged) become null, so the file stays valid JSON.
    """
    document = check.to_dict()
    document["table"] = check.format_table().splitlines()
    return json_safe(document)


def write_report(
    result: SizingResult,
    out_dir: str | os.PathLike,
    extra: dict | None = None,
    check: CheckResult | None = None,
    potential: bool = True,
) -> list[Path]:
    """Write ``sizes.json``, one ``layer_<k>.png`` per layer and ``input.nn`` into ``out_dir``.

    Parameters
    ----------
    result : SizingResult
    out_dir : path-like
        Created if missing.
    extra : dict, optional
        Additional entries for ``sizes.json``, such as a data summary.
    check : CheckResult, optional
        A training check of the widths (:func:`layersize.checking.check_widths`).
        It adds the key ``"check"`` to ``sizes.json`` and writes ``check.png``.
    potential : bool, default=True
        Write ``input.nn`` and the potential configurations in ``sizes.json``.
        Leave it off for networks that are not atomic potentials.

    Returns
    -------
    list of Path
        The files written. ``sizes.json`` comes last, so an error while
        plotting leaves an earlier ``sizes.json`` in ``out_dir`` unchanged.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = [plot_layer(layer, folder / f"layer_{layer.layer}.png") for layer in result.layers]
    document = result.to_dict()
    if extra:
        document.update(extra)
    if check is not None:
        written.append(plot_check(check, folder / "check.png"))
        document["check"] = check_document(check)
    if potential:
        activation = str(result.settings.get("activation", "tanh"))
        document["potential_configs"] = {
            "n2p2_input_nn": n2p2_lines(result.widths, activation).splitlines(),
            "lmlp": {"n_neurons_hidden_layers": result.widths, "activation_function_type": activation},
        }
        written.append(write_atomic(folder / "input.nn", n2p2_lines(result.widths, activation)))
    written.append(write_json(folder / "sizes.json", document))
    _remove_stale_outputs(folder, written)
    logger.info("Wrote %s", ", ".join(str(path) for path in written))
    return written


def _remove_stale_outputs(folder: Path, written: list[Path]) -> None:
    """Delete report files of an earlier run in ``folder`` that this run did not write.

    A 2-layer run into the folder of a 3-layer run would otherwise leave
    layer_3.png, and an image run would leave an earlier input.nn beside a
    sizes.json that does not match it. Only the report's own file names are
    touched.
    """
    written_names = {Path(path).name for path in written}
    candidates = [*folder.glob("layer_*.png"), folder / "input.nn", folder / "check.png"]
    for path in candidates:
        if path.name not in written_names and path.is_file():
            path.unlink()
            logger.info("Removed %s of an earlier run", path)
