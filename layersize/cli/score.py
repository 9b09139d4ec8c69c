"""``near-score``: compute the NEAR score of a model built by a Python factory."""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import sys
from pathlib import Path

import click
import numpy as np
import torch
from torch import nn

from layersize.atomic import write_json
from layersize.capture import SELECT_NAMES
from layersize.cli.common import configure_logging, seed_option, verbosity_options
from layersize.nets import INITIALIZATIONS
from layersize.numpy_files import read_numpy_file
from layersize.score import near_score

__all__ = ["load_factory", "load_inputs", "main"]

logger = logging.getLogger(__name__)

# Keys of an .npz or a saved dict under which the inputs are stored, in order of preference.
_INPUT_KEYS = ("images", "X", "inputs")


def load_factory(spec: str) -> nn.Module:
    """Import ``package.module:factory``, call the factory and return its model.

    The current directory is put on ``sys.path`` first, so that a module beside
    the caller can be named. ``factory`` may be a dotted path inside the module,
    such as ``nets:Models.small``, and may be an ``nn.Module`` class.

    Raises
    ------
    click.BadParameter
        If the string is malformed, the import fails, the attribute is missing or
        not callable, the call fails, or the result is not an ``nn.Module``.
    """
    module_name, colon, attribute_path = spec.partition(":")
    if not colon or not module_name or not attribute_path:
        raise click.BadParameter(
            f"{spec!r} is not of the form package.module:factory, for example my_nets:build_cnn.",
            param_hint="--model",
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any error of the user's module, reported without a traceback
        logger.debug("Importing %s failed.", module_name, exc_info=True)
        raise click.BadParameter(
            f"Importing module {module_name!r} failed: {type(error).__name__}: {error}. Check "
            f"the module name and run near-score from the folder that contains it.",
            param_hint="--model",
        ) from error

    factory = module
    for part in attribute_path.split("."):
        if not hasattr(factory, part):
            raise click.BadParameter(
                f"Module {module_name!r} has no attribute {attribute_path!r}.", param_hint="--model"
            )
        factory = getattr(factory, part)
    if not callable(factory):
        raise click.BadParameter(
            f"{spec!r} is a {type(factory).__name__}, not a callable that returns a model.",
            param_hint="--model",
        )

    try:
        model = factory()
    except Exception as error:  # any error of the user's factory, reported without a traceback
        logger.debug("Calling %s failed.", spec, exc_info=True)
        raise click.BadParameter(
            f"Calling {spec}() failed: {type(error).__name__}: {error}. The factory must build "
            f"a model without arguments.",
            param_hint="--model",
        ) from error
    if not isinstance(model, nn.Module):
        raise click.BadParameter(
            f"{spec}() returned an object of type {type(model).__name__}, but a torch.nn.Module is needed.",
            param_hint="--model",
        )
    return model


def _array_from_mapping(mapping, path: Path, first_if_unnamed: bool) -> np.ndarray | torch.Tensor:
    """Return the inputs stored under one of ``_INPUT_KEYS``, else the first array if allowed."""
    keys = list(mapping.keys())
    for key in _INPUT_KEYS:
        if key in mapping:
            return mapping[key]
    if not keys:
        raise ValueError(f"{path} contains no arrays.")
    if not first_if_unnamed:
        raise ValueError(
            f"{path} contains a dict without any of the keys {', '.join(_INPUT_KEYS)} "
            f"(found {', '.join(map(str, keys))}). Save the inputs under one of those keys."
        )
    logger.info(
        "%s has none of the keys %s, so its first array %r is used.", path, ", ".join(_INPUT_KEYS), keys[0]
    )
    return mapping[keys[0]]


def load_inputs(path: Path, file_format: str | None = None) -> torch.Tensor:
    """Read the samples to score with from a file.

    ``.npy`` contains one array. ``.npz`` gives the array under ``images``, ``X`` or
    ``inputs``, or else its first array. ``.pt``/``.pth`` contains a tensor or a
    dict with one of those keys. The values are kept as stored, except that
    integer arrays become float32. Any other file is read as images by
    :func:`layersize.images.load_images`, which returns one flattened image per
    row, scaled to [0, 1]. ``file_format`` ("npy", "npz", "idx" or "csv")
    overrides the choice by file name.

    Raises
    ------
    ValueError
        If the file cannot be read or contains no numeric array.
    """
    suffixes = {".npy": "npy", ".npz": "npz", ".pt": "pt", ".pth": "pt"}
    kind = file_format or suffixes.get(path.suffix.lower())
    if kind in ("npy", "npz"):
        try:
            data = read_numpy_file(path)
        except ValueError as error:
            raise ValueError(f"{error} Save the inputs with np.save or np.savez, or give --format "
                             f"for an image file.") from error
        if isinstance(data, dict):
            data = _array_from_mapping(data, path, first_if_unnamed=True)
    elif kind == "pt":
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
            raise ValueError(f"Reading {path} with torch.load failed ({error}).") from error
        if isinstance(data, dict):
            data = _array_from_mapping(data, path, first_if_unnamed=False)
        if not isinstance(data, torch.Tensor):
            raise ValueError(
                f"{path} contains a {type(data).__name__}, not a tensor of inputs. Save the "
                f"inputs with torch.save(tensor, path)."
            )
    else:
        from layersize.images import load_images

        data = load_images(path, kind).features

    tensor = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(data))
    if tensor.dtype == torch.bool or tensor.is_complex() or tensor.ndim == 0:
        raise ValueError(
            f"{path} contains an array of dtype {tensor.dtype} and shape {tuple(tensor.shape)}, "
            f"but a numeric array of samples with shape (N, ...) is needed."
        )
    if not tensor.is_floating_point():
        # Models take float inputs. The values are kept, so uint8 pixels stay 0-255.
        tensor = tensor.to(torch.float32)
    return tensor


def _check_output_folder(path: Path) -> None:
    """Raise a usage error, before any scoring, when ``path`` cannot be a new file.

    That is when it names a folder, or when a folder above it is a file or a
    broken link.
    """
    if str(path) in ("", ".") or path.is_dir():
        raise click.BadParameter(f"{str(path)!r} is a folder. Give a file name such as score.json.",
                                 param_hint="--json")
    for folder in path.absolute().parents:
        if folder.is_dir():
            return
        if folder.exists() or folder.is_symlink():
            kind = "a file" if folder.exists() else "a broken link"
            raise click.BadParameter(
                f"{folder} is {kind}, so {path} cannot be written. Choose a path whose "
                f"folders are folders.",
                param_hint="--json",
            )


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(size < 1 for size in shape):
        raise click.BadParameter(
            f"{text!r} is not a shape; give positive sizes separated by commas, such as 1,28,28.",
            param_hint="--input-shape",
        )
    return shape


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model", "model_spec", required=True, metavar="MODULE:FACTORY",
    help="Factory that returns a fresh torch.nn.Module, such as my_nets:build_cnn "
         "(imported with the current folder on the import path).",
)
@click.option(
    "--data", "data_path", required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Samples to draw from: .npy, .npz (key images, X or inputs, else the first array), "
         ".pt (a tensor), or an image file that layersize.images reads (IDX, CSV). Values of "
         ".npy, .npz and .pt files are used as stored, integers as float32; image files are "
         "scaled to [0, 1].",
)
@click.option(
    "--format", "file_format", type=click.Choice(["npy", "npz", "idx", "csv"]), default=None,
    help="Format of --data, whatever its name: NumPy array or archive, or images in IDX or "
         "CSV. Default: chosen from the file name.",
)
@click.option(
    "--input-shape", default=None, metavar="SIZES",
    help="Shape of one sample, such as 1,28,28; the data are reshaped to (N, *SIZES). "
         "Default: as stored.",
)
@click.option("--repetitions", type=click.IntRange(min=1), default=32, show_default=True,
              help="Number of repetitions, each with fresh weights and samples.")
@seed_option
@click.option(
    "--init", type=click.Choice(list(INITIALIZATIONS)), default=None,
    help="Weight initialisation of each repetition. Default: each module's reset_parameters.",
)
@click.option(
    "--select", type=click.Choice(list(SELECT_NAMES)), default="weights_and_activations",
    show_default=True, help="Which layer outputs count.",
)
@click.option("--device", default=None,
              help="Torch device of the forward passes, such as cpu or cuda:0. Default: cpu.")
@click.option("--incomplete", type=click.Choice(["raise", "warn"]), default="raise", show_default=True,
              help="With too few samples for a layer's square matrix: fail, or score it on fewer rows.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the result as JSON to this file.")
@click.option("--progress/--no-progress", default=False, show_default=True,
              help="Show a progress bar over the repetitions.")
@verbosity_options
def main(
    model_spec: str,
    data_path: Path,
    file_format: str | None,
    input_shape: str | None,
    repetitions: int,
    seed: int,
    init: str | None,
    select: str,
    device: str | None,
    incomplete: str,
    json_path: Path | None,
    progress: bool,
    verbose: int,
    quiet: int,
) -> None:
    """Compute the NEAR score of the model that MODULE:FACTORY builds.

    Prints the score with its standard error and the mean effective rank of
    every layer output.
    """
    configure_logging(verbose, quiet)
    shape = _parse_shape(input_shape)
    if device is not None:
        try:
            torch.device(device)
        except RuntimeError as error:
            raise click.BadParameter(f"{device!r} is not a torch device: {error}", param_hint="--device") from error

    if json_path is not None:
        _check_output_folder(json_path)
    model = load_factory(model_spec)
    try:
        inputs = load_inputs(data_path, file_format)
    except (ValueError, OSError, RuntimeError) as error:
        raise click.BadParameter(str(error), param_hint="--data") from error
    if shape is not None:
        n_values = int(np.prod(shape))
        per_sample = inputs[0].numel() if inputs.ndim >= 1 and inputs.shape[0] > 0 else 0
        if per_sample != n_values:
            raise click.BadParameter(
                f"Each sample of {data_path} has {per_sample} values, but the shape "
                f"{','.join(map(str, shape))} needs {n_values}.",
                param_hint="--input-shape",
            )
        inputs = inputs.reshape(inputs.shape[0], *shape)

    try:
        result = near_score(
            model, inputs, repetitions=repetitions, seed=seed, init=init,
            device=device or "cpu", select=select, progress=progress, incomplete=incomplete,
        )
    except (ValueError, RuntimeError) as error:
        logger.debug("Scoring failed.", exc_info=True)
        hint = ""
        if shape is None and inputs.ndim == 2:
            hint = (
                " The samples are flat rows; if the model expects images, give their shape "
                "with --input-shape, such as --input-shape 1,28,28."
            )
        raise click.ClickException(
            f"Scoring {model_spec} on {data_path} (inputs of shape {tuple(inputs.shape)}) "
            f"failed: {error}{hint}"
        ) from error

    click.echo(result.format_table())
    if json_path is not None:
        document = {"model": model_spec, "data": str(data_path), **result.to_dict()}
        try:
            write_json(json_path, document)
        except OSError as error:
            raise click.ClickException(
                f"Writing {json_path} failed: {error}. The score is printed above; choose a "
                f"--json path in a folder you can write to."
            ) from error
        logger.info("Wrote %s.", json_path)


if __name__ == "__main__":
    main()
