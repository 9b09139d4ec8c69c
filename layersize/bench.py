"""Score the architectures of a NAS search space and correlate scores with accuracy.

The workflow behind ``near-bench``:

1. :func:`load_cifar_images` reads the input images.
2. :func:`select_indices` picks benchmark indices: a seeded sample, a list of
   indices, or a file of architecture strings.
3. :func:`score_architectures` builds each network, scores it with the NEAR
   score, and appends one row per architecture to a results CSV as soon as it is
   done, serially or on a ``dask.distributed`` cluster. A rerun on the same CSV
   skips the architectures that already have a row with status ``ok``. The
   settings record beside the CSV (:func:`settings_path`) stops a rerun with
   other settings before it mixes its scores in.
4. :func:`correlate_with_accuracy` joins the scores with a benchmark accuracy
   table and reports Kendall's τ and Spearman's ρ with bootstrap confidence
   intervals, for the NEAR score and for the parameter count as a baseline.
5. :func:`plot_scores` draws score against accuracy.

Results CSV columns (:data:`RESULT_COLUMNS`):

``index``        benchmark index
``arch``         architecture string
``near_mean``    mean NEAR score over the repetitions (empty unless ``ok``)
``near_stderr``  standard error of that mean (empty unless ``ok``)
``n_params``     trainable parameters of the network
``seconds``      wall time to build and score the network
``status``       ``ok``, ``error`` (building or scoring raised an exception) or
                 ``failed`` (the task was lost, for example because its worker
                 process died more often than the cluster allows)
``error``        exception type and message, for ``error`` and ``failed``
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from layersize.atomic import atomic_path, write_json
from layersize.nas import N_ARCHITECTURES, all_architectures, arch_index, build_network, count_parameters, parse_arch
from layersize.numpy_files import read_numpy_file

__all__ = [
    "IMAGE_NORMALISATIONS",
    "RESULT_COLUMNS",
    "SEARCH_SPACES",
    "AccuracyTable",
    "ArchitectureResult",
    "Correlation",
    "ResultsFile",
    "correlate_with_accuracy",
    "load_cifar_images",
    "plot_scores",
    "rank_correlation",
    "run_benchmark",
    "read_accuracy_table",
    "read_archs_file",
    "score_architecture",
    "score_architectures",
    "select_indices",
    "settings_path",
    "write_summary",
]

logger = logging.getLogger(__name__)

#: Search spaces that ``near-bench`` can score.
SEARCH_SPACES: tuple[str, ...] = ("nats-tss",)

#: Per-channel (mean, std) of RGB pixel values on the 0–255 scale: the CIFAR
#: statistics that common CIFAR training code normalises with.
IMAGE_NORMALISATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
}

RESULT_COLUMNS: tuple[str, ...] = (
    "index", "arch", "near_mean", "near_stderr", "n_params", "seconds", "status", "error",
)

Status = Literal["ok", "error", "failed"]

#: A scoring function with the signature of ``layersize.score.near_score``: it
#: takes (model, inputs, repetitions=..., seed=...) and returns an object with
#: float attributes ``mean`` and ``stderr``.
Scorer = Callable[..., Any]


# --- Input images ------------------------------------------------------------


def load_cifar_images(path: str | os.PathLike, normalise: str | None = "cifar10") -> torch.Tensor:
    """Read RGB images from a ``.npz`` archive as a normalised float tensor.

    Parameters
    ----------
    path : path-like
        A NumPy archive (``.npz``) with an ``images`` array of uint8 pixel values,
        shape (N, H, W, 3) or (N, 3, H, W), or a ``.npy`` file of that array.
    normalise : {"cifar10", "cifar100"} or None, default="cifar10"
        Subtract the data set's per-channel mean and divide by its standard
        deviation (:data:`IMAGE_NORMALISATIONS`). ``None`` only scales the
        pixels to [0, 1].

    Returns
    -------
    torch.Tensor of shape (N, 3, H, W), float32

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a NumPy file, the archive has no ``images`` key, the
        array is not uint8, or its shape is not (N, H, W, 3) or (N, 3, H, W)
        with N ≥ 1.
    """
    if normalise is not None and normalise not in IMAGE_NORMALISATIONS:
        raise ValueError(
            f"normalise must be one of {', '.join(IMAGE_NORMALISATIONS)} or None, got {normalise!r}."
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image archive not found: {path}.")

    advice = (
        "Save the images with np.savez(path, images=images), images a uint8 array of shape "
        "(N, H, W, 3) or (N, 3, H, W)."
    )
    try:
        loaded = read_numpy_file(path)
    except ValueError as error:
        raise ValueError(f"{error} {advice}") from error
    if isinstance(loaded, dict):
        if "images" not in loaded:
            raise ValueError(
                f"{path} has no 'images' array (keys: {', '.join(loaded) or 'none'}). {advice}"
            )
        images = loaded["images"]
    else:
        images = loaded

    if images.dtype != np.uint8:
        raise ValueError(
            f"The images in {path} must be uint8 pixel values (0–255), got dtype {images.dtype}."
        )
    images = _to_channels_first(images, path)

    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)
    if normalise is None:
        return tensor / 255.0
    mean, std = IMAGE_NORMALISATIONS[normalise]
    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (tensor - mean_tensor) / std_tensor


def _to_channels_first(images: np.ndarray, path: Path) -> np.ndarray:
    """Return (N, 3, H, W) images from (N, H, W, 3) or (N, 3, H, W) ones."""
    shape = images.shape
    expected = "(N, H, W, 3) or (N, 3, H, W)"
    if images.ndim != 4 or shape[0] < 1:
        raise ValueError(f"The images in {path} must have shape {expected} with N ≥ 1, got {shape}.")
    channels_last = shape[3] == 3
    channels_first = shape[1] == 3
    if channels_last and channels_first:
        raise ValueError(
            f"The image layout in {path} is ambiguous: shape {shape} fits both {expected}. "
            f"Save images with more than 3 pixels per side."
        )
    if channels_last:
        return images.transpose(0, 3, 1, 2)
    if channels_first:
        return images
    raise ValueError(f"The images in {path} must have shape {expected} (RGB), got {shape}.")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(
            f"images must be a tensor of shape (N, 3, H, W), got {shape}. "
            f"Read an archive with load_cifar_images."
        )
    if images.shape[2] % 4 or images.shape[3] % 4:
        raise ValueError(
            f"The networks halve the image size twice, so H and W must be divisible by 4, "
            f"got {tuple(images.shape[2:])}."
        )


# --- Selecting architectures -------------------------------------------------


def select_indices(
    sample: int | None = None,
    seed: int = 0,
    indices: Iterable[int] | None = None,
    archs: Iterable[str] | None = None,
) -> list[int]:
    """Choose the benchmark indices to score.

    Exactly one of ``sample``, ``indices`` and ``archs`` must be given.

    Parameters
    ----------
    sample : int, optional
        Draw this many distinct indices with
        ``numpy.random.default_rng(seed).choice(15625, sample, replace=False)``.
    seed : int, default=0
        Seed of the sample.
    indices : iterable of int, optional
        Benchmark indices, 0 … 15,624.
    archs : iterable of str, optional
        Architecture strings, converted to their benchmark indices.

    Returns
    -------
    list of int
        Indices in the order given or drawn, without duplicates.
    """
    chosen_options = [name for name, value in (("sample", sample), ("indices", indices), ("archs", archs))
                      if value is not None]
    if len(chosen_options) != 1:
        raise ValueError(
            f"Give exactly one of sample, indices and archs, got {len(chosen_options)}"
            f"{': ' + ', '.join(chosen_options) if chosen_options else ''}."
        )

    if sample is not None:
        if not 1 <= sample <= N_ARCHITECTURES:
            raise ValueError(f"sample must be between 1 and {N_ARCHITECTURES}, got {sample}.")
        drawn = np.random.default_rng(seed).choice(N_ARCHITECTURES, size=sample, replace=False)
        return [int(index) for index in drawn]

    if indices is not None:
        chosen = [int(index) for index in indices]
        for index in chosen:
            if not 0 <= index < N_ARCHITECTURES:
                raise ValueError(
                    f"Benchmark index {index} is out of range; indices run from 0 to {N_ARCHITECTURES - 1}."
                )
    else:
        chosen = [arch_index(arch) for arch in archs]
    return list(dict.fromkeys(chosen))


def read_archs_file(path: str | os.PathLike) -> list[str]:
    """Read architecture strings, one per line; blank lines and ``#`` comments are skipped.

    Raises
    ------
    ValueError
        If a line is not a valid architecture string; the message names the line.
    """
    path = Path(path)
    archs: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                archs.append(str(parse_arch(text)))
            except ValueError as exc:
                raise ValueError(f"{path}, line {line_number}: {exc}") from exc
    if not archs:
        raise ValueError(f"{path} contains no architecture strings.")
    return archs


# --- Scoring one architecture ------------------------------------------------


@dataclass(frozen=True)
class ArchitectureResult:
    """One row of the results CSV; see the module docstring for the columns."""

    index: int
    arch: str
    near_mean: float
    near_stderr: float
    n_params: int
    seconds: float
    status: Status
    error: str = ""

    def to_row(self) -> list[str]:
        """Format the fields as CSV cells (NaN and missing counts as empty cells)."""
        return [
            str(self.index),
            self.arch,
            _format_float(self.near_mean),
            _format_float(self.near_stderr),
            "" if self.n_params < 0 else str(self.n_params),
            "" if math.isnan(self.seconds) else f"{self.seconds:.3f}",
            self.status,
            " ".join(self.error.split()),
        ]

    @classmethod
    def from_row(cls, row: Sequence[str]) -> ArchitectureResult:
        """Parse CSV cells written by :meth:`to_row`."""
        if len(row) != len(RESULT_COLUMNS):
            raise ValueError(f"expected {len(RESULT_COLUMNS)} fields, got {len(row)}")
        index, arch, mean, stderr, n_params, seconds, status, error = row
        if status not in ("ok", "error", "failed"):
            raise ValueError(f"unknown status {status!r}")
        return cls(
            index=int(index),
            arch=arch,
            near_mean=float(mean) if mean else math.nan,
            near_stderr=float(stderr) if stderr else math.nan,
            n_params=int(n_params) if n_params else -1,
            seconds=float(seconds) if seconds else math.nan,
            status=status,  # type: ignore[arg-type]
            error=error,
        )


def _format_float(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _counts_without_classifier(name: str, module: torch.nn.Module | None) -> bool:
    """Select every output of a NAS-Bench-201 network that ``near_score`` counts, except the classifier's.

    For these networks, whose activations are all ``torch.nn.ReLU`` modules,
    this is the default selection without the ``classifier`` module.
    """
    from layersize.capture import TORCH_ACTIVATIONS, has_weight, is_user_activation

    if name == "classifier":
        return False
    if module is None:
        # An activation applied as a function, which only a torch.fx trace finds.
        return True
    return has_weight(module) or isinstance(module, TORCH_ACTIVATIONS) or is_user_activation(module)


def _default_scorer(classifier: bool = True) -> Scorer:
    try:
        from layersize.score import near_score
    except ImportError as exc:
        raise ImportError(
            "The default scorer layersize.score.near_score could not be imported; "
            "pass a scoring function as scorer=."
        ) from exc
    # Every activation of a NAS-Bench-201 network is a module (ReLU), so hooks
    # capture all of them and the torch.fx trace would only cost time.
    if classifier:
        return functools.partial(near_score, trace=False)
    return functools.partial(near_score, trace=False, select=_counts_without_classifier)


def _check_device(device: str | None) -> None:
    """Raise a ValueError naming ``device`` unless torch can compute there and copy the result back."""
    if device is None:
        return
    try:
        torch.ones(1, device=device).add_(1).cpu()
    except (RuntimeError, AssertionError, ValueError, TypeError, ImportError, NotImplementedError) as exc:
        reason = (str(exc).strip().splitlines() or [""])[0]
        if len(reason) > 160:
            reason = reason[:157] + "..."
        examples = "'cpu' or 'cuda:0'" if torch.cuda.is_available() else "'cpu'"
        raise ValueError(
            f"device={device!r} is not usable here ({type(exc).__name__}: {reason}). Give a "
            f"device that this torch build reaches, such as {examples}, or leave it out for the CPU."
        ) from exc


def _check_classifier_option(classifier: bool, scorer: Scorer | None) -> None:
    if not classifier and scorer is not None:
        raise ValueError(
            "classifier=False applies to the default scorer only. Leave classifier at True "
            "and leave the classifier out in your scorer, for example through near_score's select."
        )


def score_architecture(
    index: int,
    arch: str,
    images: torch.Tensor,
    repetitions: int = 32,
    seed: int = 0,
    scorer: Scorer | None = None,
    num_classes: int = 10,
    torch_threads: int | None = None,
    device: str | None = None,
    classifier: bool = True,
) -> ArchitectureResult:
    """Build the network of one architecture and compute its NEAR score.

    Every architecture is scored with the run seed itself, so all of them draw
    the same input samples. Modules that two networks share by name and shape
    (the stem, the reduction blocks, the classifier) get the same weights in
    each repetition. Differences between scores then come from the cells
    alone, and cells whose output is cut off from the input tie exactly.

    Parameters
    ----------
    index : int
        Benchmark index, stored in the result.
    arch : str
        Architecture string.
    images : torch.Tensor of shape (N, 3, H, W)
        Input images, already normalised.
    repetitions : int, default=32
        Repetitions of the NEAR score, each with fresh weights.
    seed : int, default=0
        Run seed, passed to the scorer.
    scorer : callable, optional
        Scoring function with the signature of ``layersize.score.near_score``;
        by default that function.
    num_classes : int, default=10
        Output width of the classifier.
    torch_threads : int, optional
        Run with ``torch.set_num_threads(torch_threads)`` (1 for parallel
        workers); the previous thread count is restored afterwards.
    device : str, optional
        Device of the forward passes, passed to the scorer as ``device=`` only
        when given, such as ``"cuda"``. By default the scorer's default (the CPU).
    classifier : bool, default=True
        Count the output of the final Linear layer, which is ``num_classes``
        wide, so that each repetition needs ``num_classes`` images. False
        leaves it out of the default scorer. The feature maps then need one
        32 x 32 image per repetition, which takes about 1.7x less time.
        docs/benchmarks.md compares the rank correlations of both.

    Returns
    -------
    ArchitectureResult
        Status ``ok``, or ``error`` with the exception's type and message when
        building or scoring raised one or the score is not finite. Exceptions
        are caught and logged, not raised, so that one architecture cannot stop
        a run.

    Raises
    ------
    ValueError
        If ``classifier`` is False with a custom ``scorer``.
    """
    _check_classifier_option(classifier, scorer)
    previous_threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(int(torch_threads))
    try:
        return _score_one(index, arch, images, repetitions, seed, scorer, num_classes, device, classifier)
    finally:
        torch.set_num_threads(previous_threads)


def _score_one(
    index: int,
    arch: str,
    images: torch.Tensor,
    repetitions: int,
    seed: int,
    scorer: Scorer | None,
    num_classes: int,
    device: str | None,
    classifier: bool = True,
) -> ArchitectureResult:
    start = time.perf_counter()
    n_params = -1
    try:
        score_function = scorer if scorer is not None else _default_scorer(classifier)
        # Fix the construction draw too, in case the scorer keeps the initial weights.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_network(arch, num_classes=num_classes)
        n_params = count_parameters(model)
        # Channels-last tensors make the CPU convolutions, batch norms and
        # poolings of these small networks several times faster (about 3x for a
        # 3x3 convolution on 16 channels at 32x32, torch 2.13) and give the same
        # values up to rounding.
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
        # NOTE: the device option has only been run with "cpu"; GPU runs are untested.
        device_option = {} if device is None else {"device": device}
        score = score_function(model, images, repetitions=repetitions, seed=seed, **device_option)
        mean, stderr = float(score.mean), float(score.stderr)
        if not math.isfinite(mean):
            raise FloatingPointError(f"the NEAR score is {mean}")
    except Exception as exc:  # noqa: BLE001 - one failed architecture must not stop a run
        logger.warning("Scoring architecture %d (%s) failed: %s: %s", index, arch, type(exc).__name__, exc)
        return ArchitectureResult(index, arch, math.nan, math.nan, n_params,
                                  time.perf_counter() - start, "error", f"{type(exc).__name__}: {exc}")
    return ArchitectureResult(index, arch, mean, stderr, n_params, time.perf_counter() - start, "ok")


# --- Results file --------------------------------------------------------------


class ResultsFile:
    """An append-only results CSV that survives interruption.

    Each row is written, flushed and synced to disk as soon as its architecture
    is done. A run that is killed while writing can leave a last line without
    its newline; :meth:`read` ignores it and :meth:`open` cuts it off before
    appending. Later rows for an index replace earlier ones.

    NOTE: two processes appending to the same file at once can interleave rows;
    give each run its own file.

    Parameters
    ----------
    path : path-like
        The CSV file; its folder is created on :meth:`open`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._handle: io.TextIOWrapper | None = None
        self._writer: Any = None

    def read(self) -> dict[int, ArchitectureResult]:
        """Return the latest result of each index in the file ({} if there is no file).

        Raises
        ------
        ValueError
            If the file's header is not :data:`RESULT_COLUMNS`.
        """
        complete_text, partial = self._split_partial_line()
        if partial:
            logger.warning(
                "Ignoring the unfinished last line of %s (%d bytes), probably left by an "
                "interrupted run: %r", self.path, len(partial), partial[:80],
            )
        if not complete_text:
            return {}

        reader = csv.reader(io.StringIO(complete_text, newline=""))
        header = next(reader, None)
        if header is not None and tuple(header) != RESULT_COLUMNS:
            raise ValueError(
                f"{self.path} is not a near-bench results file: its header is {header}, "
                f"expected {list(RESULT_COLUMNS)}. Choose another output path."
            )

        results: dict[int, ArchitectureResult] = {}
        n_invalid = 0
        for line_number, row in enumerate(reader, start=2):
            try:
                result = ArchitectureResult.from_row(row)
            except ValueError as exc:
                n_invalid += 1
                logger.warning("Skipping invalid row %d of %s: %s", line_number, self.path, exc)
                continue
            results[result.index] = result
        if n_invalid:
            logger.warning("Skipped %d invalid rows of %s.", n_invalid, self.path)
        return results

    def _split_partial_line(self) -> tuple[str, str]:
        """Return (text up to the last newline, text after it)."""
        if not self.path.exists():
            return "", ""
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        return data[:cut].decode("utf-8", errors="replace"), data[cut:].decode("utf-8", errors="replace")

    def open(self) -> ResultsFile:
        """Open the file for appending, cutting off an unfinished last line and writing the header if new."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.path.read_bytes() if self.path.exists() else b""
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            logger.info("Removing the unfinished last line of %s before appending.", self.path)
            with self.path.open("r+b") as handle:
                handle.truncate(cut)
        self._handle = self.path.open("a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        if cut == 0:
            self._write_row(list(RESULT_COLUMNS))
        return self

    def append(self, result: ArchitectureResult) -> None:
        """Write one result and flush it to disk."""
        if self._writer is None:
            raise RuntimeError(f"Results file {self.path} is not open; call open() first.")
        self._write_row(result.to_row())

    def _write_row(self, row: list[str]) -> None:
        self._writer.writerow(row)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._writer = None

    def __enter__(self) -> ResultsFile:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- Scoring many architectures ------------------------------------------------


def _normalise_archs(archs: Iterable[int | str]) -> list[tuple[int, str]]:
    """Turn benchmark indices and architecture strings into unique (index, arch) pairs."""
    benchmark = all_architectures()
    pairs: dict[int, str] = {}
    for item in archs:
        if isinstance(item, (int, np.integer)):
            index = int(item)
            if not 0 <= index < N_ARCHITECTURES:
                raise ValueError(
                    f"Benchmark index {index} is out of range; indices run from 0 to {N_ARCHITECTURES - 1}."
                )
        else:
            index = arch_index(item)
        pairs.setdefault(index, benchmark[index])
    return list(pairs.items())


def score_architectures(
    archs: Iterable[int | str],
    images: torch.Tensor,
    results_csv: str | os.PathLike,
    repetitions: int = 32,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    scorer: Scorer | None = None,
    num_classes: int = 10,
    retries: int = 1,
    device: str | None = None,
    torch_threads: int = 1,
    classifier: bool = True,
) -> list[ArchitectureResult]:
    """Score architectures and stream the results to a CSV, skipping finished ones.

    Parameters
    ----------
    archs : iterable of int or str
        Benchmark indices or architecture strings of the NATS-Bench-TSS space.
    images : torch.Tensor of shape (N, 3, H, W)
        Normalised input images, passed whole to the scorer.
    results_csv : path-like
        Results file. Rows with status ``ok`` in it are kept and not scored
        again; other rows are scored again.
    repetitions : int, default=32
        Repetitions of each NEAR score.
    seed : int, default=0
        Run seed, used for every architecture (see :func:`score_architecture`),
        so serial, parallel and resumed runs give the same scores.
    workers : int, optional
        Start a local ``dask.distributed`` cluster of this many single-threaded
        worker processes, bound to 127.0.0.1.
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler to use instead.
    progress : bool, default=True
        Show a progress bar on stderr.
    scorer : callable, optional
        Scoring function with the signature of ``layersize.score.near_score``
        (the default). It must be picklable to run on a cluster.
    num_classes : int, default=10
        Output width of the classifier.
    retries : int, default=1
        On a cluster, how often a task is run again after an exception or after
        its worker died. For a local cluster the death limit is set through
        ``distributed.scheduler.allowed-failures``; an external scheduler
        keeps its own limit. Dask counts a worker's death against every task
        running or queued on it, so with ``retries=0`` one death can fail
        more than one architecture.
    device : str, optional
        Device of the forward passes (see :func:`score_architecture`).
    torch_threads : int, default=1
        Torch threads of each architecture's scoring, serially and on every
        worker. The thread count changes how convolutions round, so serial and
        parallel runs agree exactly only at equal counts. One thread is also
        the safer setting on a CPU that other processes share: on two busy
        cores, two threads gave the same median time as one but stalled single
        architectures for up to 10x the median (docs/benchmarks.md).
    classifier : bool, default=True
        Count the classifier's output (see :func:`score_architecture`).

    Returns
    -------
    list of ArchitectureResult
        One per requested architecture, in the requested order, taken from the
        file or newly scored.

    Raises
    ------
    ValueError
        If both ``workers`` and ``scheduler`` are given, ``repetitions`` or
        ``workers`` is below 1, ``device`` is not usable, ``classifier`` is
        False with a custom ``scorer``, the default scorer counts the classifier but there are
        fewer images than classes, the file has a different architecture at
        a requested index, or the file's scores were made with other
        settings (see :func:`settings_path`).
    """
    _check_images(images)
    _check_classifier_option(classifier, scorer)
    if classifier and scorer is None and images.shape[0] < num_classes:
        raise ValueError(
            f"The classifier is {num_classes} wide, so each repetition needs {num_classes} images, "
            f"but there are only {images.shape[0]}. Give at least {num_classes} images, or leave "
            f"the classifier out of the score (classifier=False, near-bench --no-classifier)."
        )
    if repetitions < 1:
        raise ValueError(f"repetitions must be at least 1, got {repetitions}.")
    if workers is not None and scheduler is not None:
        raise ValueError("Give either workers (start a local cluster) or scheduler (use a running one), not both.")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, got {retries}.")
    if torch_threads < 1:
        raise ValueError(f"torch_threads must be at least 1, got {torch_threads}.")

    requested = _normalise_archs(archs)
    settings = _run_settings(images, repetitions, seed, num_classes, classifier, scorer)
    # Converted once here rather than for each architecture in score_architecture.
    images = images.contiguous(memory_format=torch.channels_last)
    results_file = ResultsFile(results_csv)
    previous = results_file.read()
    for index, arch in requested:
        if index in previous and previous[index].arch != arch:
            raise ValueError(
                f"{results_file.path} has architecture {previous[index].arch} at index {index}, "
                f"but the benchmark has {arch}. The file belongs to another search space or order; "
                f"choose another output path."
            )
    has_scores = any(result.status == "ok" for result in previous.values())
    _check_settings(results_file.path, settings, has_scores)

    done = {index: previous[index] for index, _ in requested
            if index in previous and previous[index].status == "ok"}
    pending = [(index, arch) for index, arch in requested if index not in done]
    if pending and scheduler is None:
        # The workers of a running scheduler may have devices that this machine lacks.
        _check_device(device)
    logger.info("Skipping %d of %d architectures already scored in %s; %d to score.",
                len(done), len(requested), results_file.path, len(pending))

    new_results: dict[int, ArchitectureResult] = {}
    # The record is written with the first score, so that a run that scores
    # nothing cannot claim the settings of scores that other runs made.
    recorded = False
    if pending:
        with results_file, _progress_bar(len(pending), progress) as bar:
            def record(result: ArchitectureResult) -> None:
                nonlocal recorded
                if result.status == "ok" and not recorded:
                    _record_settings(results_file.path, settings)
                    recorded = True
                results_file.append(result)
                new_results[result.index] = result
                bar.update(1)

            options = dict(images=images, repetitions=repetitions, seed=seed, scorer=scorer,
                           num_classes=num_classes, device=device, torch_threads=torch_threads,
                           classifier=classifier)
            if workers is None and scheduler is None:
                for index, arch in pending:
                    record(score_architecture(index, arch, **options))
            else:
                _score_on_cluster(pending, options, workers, scheduler, retries, record)

    n_bad = sum(result.status != "ok" for result in new_results.values())
    if n_bad:
        logger.warning("%d of %d architectures failed to score; see the status and error columns of %s.",
                       n_bad, len(new_results), results_file.path)
    return [done[index] if index in done else new_results[index] for index, _ in requested]


def settings_path(results_csv: str | os.PathLike) -> Path:
    """Return the path of the settings record of a results CSV.

    The record of ``scores.csv`` is ``scores.csv.settings.json``. It contains
    the repetitions, seed, number of classes, classifier option and scorer
    that the scores were made with, and the shape, dtype and SHA-256 digest of
    the input images. It is written with the first score of a file.
    """
    path = Path(results_csv)
    return path.with_name(path.name + ".settings.json")


def _describe(value: Any) -> str:
    if callable(value):
        module = getattr(value, "__module__", None) or type(value).__module__
        name = getattr(value, "__qualname__", None) or type(value).__qualname__
        return f"{module}.{name}"
    # Default reprs name a memory address, which differs from run to run.
    return re.sub(r" at 0x[0-9A-Fa-f]+", "", repr(value))


def _scorer_name(scorer: Scorer) -> str:
    """Name a scorer by its function and, for a partial, its bound arguments."""
    if not isinstance(scorer, functools.partial):
        return _describe(scorer)
    arguments = [_describe(value) for value in scorer.args]
    arguments += [f"{key}={_describe(value)}" for key, value in sorted(scorer.keywords.items())]
    return f"{_describe(scorer.func)}({', '.join(arguments)})"


def _run_settings(
    images: torch.Tensor,
    repetitions: int,
    seed: int,
    num_classes: int,
    classifier: bool,
    scorer: Scorer | None,
) -> dict[str, Any]:
    """Collect the settings besides the architecture that a score depends on, as JSON values.

    The device and the torch thread count are left out: they change how the
    forward passes round, not what is computed.
    """
    pixels = images.detach().cpu().contiguous().numpy()
    return {
        "space": "nats-tss",
        "repetitions": int(repetitions),
        "seed": int(seed),
        "num_classes": int(num_classes),
        "classifier": bool(classifier),
        "scorer": _scorer_name(scorer if scorer is not None else _default_scorer(classifier)),
        "images_shape": list(pixels.shape),
        "images_dtype": str(pixels.dtype),
        "images_sha256": hashlib.sha256(memoryview(pixels).cast("B")).hexdigest(),
    }


# The near-bench option behind each setting, named in the message about a changed one.
_SETTING_OPTIONS = {
    "repetitions": "--repetitions",
    "seed": "--seed",
    "num_classes": "--num-classes",
    "classifier": "--classifier/--no-classifier",
    "images_shape": "--images",
    "images_dtype": "--images",
    "images_sha256": "--images and --normalise",
}


def _check_settings(results_csv: Path, settings: dict[str, Any], has_scores: bool) -> None:
    """Raise if the scores in a results file were made with other settings than this run's."""
    if not has_scores:
        return
    record = settings_path(results_csv)
    if not record.is_file():
        logger.warning(
            "%s has no settings record %s, so this run cannot check that the scores in it were "
            "made with the same settings. This run's settings are recorded with its first score.",
            results_csv, record.name,
        )
        return

    def unreadable(problem: str) -> ValueError:
        return ValueError(
            f"Cannot read the settings record {record} of {results_csv}: {problem}. Delete the "
            f"record if the scores were made with the settings of this run, or choose another "
            f"output path."
        )

    try:
        stored = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise unreadable(str(exc)) from exc
    if not isinstance(stored, dict):
        raise unreadable("it does not contain a JSON object")

    changed = [key for key in settings if stored.get(key) != settings[key]]
    if not changed:
        return

    def shown(key: str, value: Any) -> str:
        if key == "images_sha256":
            return f"images of SHA-256 {str(value)[:12]}"
        return f"{key}={value!r}"

    options = sorted({_SETTING_OPTIONS[key] for key in changed if key in _SETTING_OPTIONS})
    raise ValueError(
        f"{results_csv} contains scores made with "
        f"{', '.join(shown(key, stored.get(key)) for key in changed)}, but this run has "
        f"{', '.join(shown(key, settings[key]) for key in changed)}. Scores made with other "
        f"settings do not compare with them. Rerun with the settings in {record.name}"
        + (f" (near-bench {'option' if len(options) == 1 else 'options'} {', '.join(options)})"
           if options else "")
        + ", or choose another output path."
    )


def _record_settings(results_csv: Path, settings: dict[str, Any]) -> None:
    write_json(settings_path(results_csv), settings)


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="NEAR", unit="arch", disable=not enabled)
    try:
        yield bar
    finally:
        bar.close()


def _score_on_cluster(
    pending: list[tuple[int, str]],
    options: dict[str, Any],
    workers: int | None,
    scheduler: str | None,
    retries: int,
    record: Callable[[ArchitectureResult], None],
) -> None:
    """Run :func:`score_architecture` as dask tasks and record results as they complete."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ImportError(
            "Parallel scoring needs dask.distributed; install it with pip install 'dask[distributed]'."
        ) from exc

    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            logger.info("Connecting to the dask scheduler at %s.", scheduler)
            client = stack.enter_context(Client(scheduler))
        else:
            logger.info("Starting a local dask cluster of %d worker processes on 127.0.0.1.", workers)
            # The scheduler reads this limit when it starts.
            with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None,
                ))
            client = stack.enter_context(Client(cluster))

        options = dict(options)
        run_id = uuid.uuid4().hex[:8]
        # The images go into the graph once, as the argument of a task rather
        # than scattered data, so that the scheduler can recompute them when
        # every worker holding them has died.
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GiB"}):
            options["images"] = client.submit(_pass_through, options["images"],
                                              key=f"near-images-{run_id}", pure=False)
        futures = {}
        for index, arch in pending:
            future = client.submit(
                score_architecture, index, arch, **options,
                key=f"near-{run_id}-{index}", retries=retries, pure=False,
            )
            futures[future] = (index, arch)

        for future in as_completed(futures):
            index, arch = futures.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost task is recorded, not raised
                logger.error("Architecture %d (%s) failed on the cluster: %s: %s",
                             index, arch, type(exc).__name__, exc)
                result = ArchitectureResult(index, arch, math.nan, math.nan, -1, math.nan,
                                            "failed", f"{type(exc).__name__}: {exc}")
            record(result)
            future.release()


def _pass_through(value: Any) -> Any:
    return value


# --- Correlation with accuracy -------------------------------------------------


@dataclass(frozen=True)
class Correlation:
    """Rank correlations of a score with accuracy, with bootstrap intervals.

    Attributes
    ----------
    n : int
        Number of (score, accuracy) pairs.
    kendall_tau, spearman_rho : float
        Kendall's τ-b and Spearman's ρ on all pairs.
    kendall_interval, spearman_interval : (float, float)
        Percentile bootstrap confidence intervals.
    confidence : float
        Confidence level of the intervals, for example 0.95.
    n_bootstrap : int
        Number of bootstrap resamples.
    """

    n: int
    kendall_tau: float
    kendall_interval: tuple[float, float]
    spearman_rho: float
    spearman_interval: tuple[float, float]
    confidence: float
    n_bootstrap: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank_correlation(
    scores: Sequence[float] | np.ndarray,
    accuracy: Sequence[float] | np.ndarray,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Correlation:
    """Compute Kendall's τ-b and Spearman's ρ with percentile bootstrap intervals.

    Parameters
    ----------
    scores, accuracy : array-like of shape (n,)
        Paired values; pairs with a NaN in either are dropped.
    n_bootstrap : int, default=1000
        Resamples of the pairs, drawn with replacement. 0 skips the intervals
        (they are NaN).
    confidence : float, default=0.95
        Confidence level of the intervals.
    seed : int, default=0
        Seed of the resampling.

    Returns
    -------
    Correlation

    Raises
    ------
    ValueError
        If the arrays differ in length or fewer than 3 complete pairs remain.

    Notes
    -----
    Resamples in which one variable is constant have no correlation; they are
    left out of the percentiles.
    """
    from scipy import stats

    x = np.asarray(scores, dtype=float)
    y = np.asarray(accuracy, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"scores and accuracy must be 1-D arrays of one length, got shapes {x.shape} and {y.shape}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}.")
    complete = np.isfinite(x) & np.isfinite(y)
    x, y = x[complete], y[complete]
    if x.size < 3:
        raise ValueError(f"A rank correlation needs at least 3 complete pairs, got {x.size}.")

    def correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        return float(stats.kendalltau(a, b).statistic), float(stats.spearmanr(a, b).statistic)

    with np.errstate(invalid="ignore", divide="ignore"), _ignore_constant_input():
        tau, rho = correlations(x, y)
        resampled = np.full((n_bootstrap, 2), np.nan)
        rng = np.random.default_rng(seed)
        for draw in range(n_bootstrap):
            rows = rng.integers(0, x.size, size=x.size)
            resampled[draw] = correlations(x[rows], y[rows])

    tail = 100 * (1 - confidence) / 2
    if n_bootstrap > 0 and np.isfinite(resampled).any():
        kendall_low, kendall_high = np.nanpercentile(resampled[:, 0], [tail, 100 - tail])
        spearman_low, spearman_high = np.nanpercentile(resampled[:, 1], [tail, 100 - tail])
    else:
        kendall_low = kendall_high = spearman_low = spearman_high = math.nan
    return Correlation(
        n=int(x.size),
        kendall_tau=tau,
        kendall_interval=(float(kendall_low), float(kendall_high)),
        spearman_rho=rho,
        spearman_interval=(float(spearman_low), float(spearman_high)),
        confidence=confidence,
        n_bootstrap=n_bootstrap,
    )


@contextlib.contextmanager
def _ignore_constant_input() -> Iterator[None]:
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        yield


@dataclass(frozen=True)
class AccuracyTable:
    """A benchmark accuracy table: one row per architecture.

    Attributes
    ----------
    index : numpy.ndarray of shape (n,), int
        Benchmark indices.
    arch : list of str
        Architecture strings.
    columns : dict of str to numpy.ndarray of shape (n,)
        Accuracy columns in file order; missing values are NaN.
    """

    index: np.ndarray
    arch: list[str]
    columns: dict[str, np.ndarray] = field(default_factory=dict)


def read_accuracy_table(path: str | os.PathLike) -> AccuracyTable:
    """Read a CSV with columns ``index,arch`` and one or more numeric accuracy columns.

    Raises
    ------
    ValueError
        If ``index`` or ``arch`` is missing, there is no other column, or a
        value is not a number (the message names the line and column).
    """
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or header[:2] != ["index", "arch"] or len(header) < 3:
            raise ValueError(
                f"{path} must start with the columns index,arch followed by at least one "
                f"accuracy column, got header {header}."
            )
        names = header[2:]
        indices: list[int] = []
        archs: list[str] = []
        values: list[list[float]] = []
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}, line {line_number}: expected {len(header)} fields, got {len(row)}.")
            try:
                indices.append(int(row[0]))
            except ValueError:
                raise ValueError(f"{path}, line {line_number}: index {row[0]!r} is not an integer.") from None
            archs.append(row[1])
            values.append([_parse_accuracy(cell, name, path, line_number) for cell, name in zip(row[2:], names)])

    table = np.array(values, dtype=float).reshape(len(values), len(names))
    return AccuracyTable(
        index=np.array(indices, dtype=np.int64),
        arch=archs,
        columns={name: table[:, column] for column, name in enumerate(names)},
    )


def _parse_accuracy(cell: str, column: str, path: Path, line_number: int) -> float:
    if not cell.strip():
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise ValueError(
            f"{path}, line {line_number}: {column} value {cell!r} is not a number; "
            f"leave the cell empty for a missing accuracy."
        ) from None


def _remove_stale_summary(out_dir: Path, results_csv: Path) -> None:
    """Remove the summary and plot of an earlier run on ``results_csv``, which no longer describe it.

    Only a summary that names ``results_csv`` is removed, with the plot that it
    names, so that files near-bench did not write stay.
    """
    summary_path = out_dir / "summary.json"
    try:
        earlier = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(earlier, dict) or earlier.get("results_csv") != str(results_csv):
        return
    stale = [summary_path]
    plot = earlier.get("plot")
    if isinstance(plot, str) and Path(plot).parent == out_dir and Path(plot).is_file():
        stale.append(Path(plot))
    for path in stale:
        path.unlink()
    logger.warning(
        "Removed %s of an earlier run, because this run added scores without an accuracy table "
        "and they would describe the older scores. Rerun with --accuracy to make new ones.",
        " and ".join(str(path) for path in stale),
    )


def _check_table_order(table: AccuracyTable, indices: Sequence[int], path: Path) -> None:
    """Raise before any scoring if a requested index has another architecture in the table."""
    archs = all_architectures()
    requested = set(indices)
    for row, index in enumerate(table.index):
        index = int(index)
        if index not in requested or not 0 <= index < len(archs):
            continue
        try:
            arch = str(parse_arch(table.arch[row]))
        except ValueError as exc:
            raise ValueError(f"The accuracy table {path} has an invalid architecture at index {index}: {exc}") from exc
        if arch != archs[index]:
            raise ValueError(
                f"The accuracy table {path} has architecture {table.arch[row]} at index {index}, "
                f"but the benchmark has {archs[index]} there. Check the index and arch columns of "
                f"that row. The table must use the benchmark's index order."
            )


def _join(results: Sequence[ArchitectureResult], table: AccuracyTable) -> tuple[list[ArchitectureResult], np.ndarray]:
    """Pair the ``ok`` results with their table rows; return them and the row positions."""
    position = {int(index): row for row, index in enumerate(table.index)}
    joined: list[ArchitectureResult] = []
    rows: list[int] = []
    n_missing = 0
    for result in results:
        if result.status != "ok":
            continue
        row = position.get(result.index)
        if row is None:
            n_missing += 1
            continue
        if str(parse_arch(table.arch[row])) != result.arch:
            raise ValueError(
                f"The accuracy table has architecture {table.arch[row]} at index {result.index}, "
                f"but the results have {result.arch}. Use a table in benchmark index order."
            )
        joined.append(result)
        rows.append(row)
    if n_missing:
        logger.warning("%d scored architectures have no row in the accuracy table and are left out.", n_missing)
    return joined, np.array(rows, dtype=np.int64)


def correlate_with_accuracy(
    results: Sequence[ArchitectureResult],
    table: AccuracyTable,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Correlate NEAR scores and parameter counts with every accuracy column.

    Parameters
    ----------
    results : sequence of ArchitectureResult
        Scored architectures; those without status ``ok`` are left out.
    table : AccuracyTable
        Accuracy of the benchmark's architectures, joined on ``index``.
    n_bootstrap, confidence, seed
        Passed to :func:`rank_correlation`.

    Returns
    -------
    dict
        JSON-ready: ``n_results``, ``n_joined``, and ``correlations``, which
        maps each accuracy column to ``{"near": ..., "n_params": ...}``
        dictionaries of :class:`Correlation` fields, or to None values when
        fewer than 3 scored architectures have that accuracy.

    Raises
    ------
    ValueError
        If the table and the results disagree on an architecture string.
    """
    joined, rows = _join(results, table)
    near = np.array([result.near_mean for result in joined])
    n_params = np.array([result.n_params for result in joined], dtype=float)
    correlations: dict[str, dict[str, Any]] = {}
    for name, column in table.columns.items():
        accuracy = column[rows]
        n_complete = int(np.isfinite(accuracy).sum())
        if n_complete < 3:
            logger.warning("Column %s has %d scored architectures with an accuracy; a rank "
                           "correlation needs at least 3, so it is left out.", name, n_complete)
            correlations[name] = {"near": None, "n_params": None}
            continue
        correlations[name] = {
            "near": rank_correlation(near, accuracy, n_bootstrap, confidence, seed).to_dict(),
            "n_params": rank_correlation(n_params, accuracy, n_bootstrap, confidence, seed).to_dict(),
        }
    return {"n_results": len(results), "n_joined": len(joined), "correlations": correlations}


def plot_scores(
    results: Sequence[ArchitectureResult],
    table: AccuracyTable,
    path: str | os.PathLike,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Draw NEAR score against each accuracy column and save the figure atomically.

    Parameters
    ----------
    results : sequence of ArchitectureResult
        Scored architectures; those without status ``ok`` are left out.
    table : AccuracyTable
        Accuracy table joined on ``index``.
    path : path-like
        Output image; the format follows the suffix (``.png``, ``.pdf``, ``.svg``).
    summary : dict, optional
        Output of :func:`correlate_with_accuracy`, to print τ and ρ in the titles.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from matplotlib.figure import Figure

    joined, rows = _join(results, table)
    near = np.array([result.near_mean for result in joined])
    names = list(table.columns)
    figure = Figure(figsize=(4.2 * len(names), 3.8), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for axis, name in zip(axes, names):
        axis.scatter(near, table.columns[name][rows], s=8, alpha=0.6, edgecolors="none")
        axis.set_xlabel("NEAR score")
        axis.set_ylabel(name)
        near_stats = (summary or {}).get("correlations", {}).get(name, {}).get("near")
        if near_stats is not None:
            axis.set_title(f"τ = {near_stats['kendall_tau']:.3f}, ρ = {near_stats['spearman_rho']:.3f}, "
                           f"n = {near_stats['n']}", fontsize=9)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=150)
    return Path(path)


def write_summary(path: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Write a JSON summary atomically (NaN written as null)."""
    return write_json(path, summary)


# --- The whole benchmark -------------------------------------------------------


def run_benchmark(
    indices: Sequence[int],
    images: torch.Tensor,
    out_dir: str | os.PathLike,
    accuracy_csv: str | os.PathLike | None = None,
    repetitions: int = 32,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    num_classes: int = 10,
    retries: int = 1,
    scorer: Scorer | None = None,
    device: str | None = None,
    torch_threads: int = 1,
    classifier: bool = True,
) -> dict[str, Any]:
    """Score benchmark architectures, then correlate, plot and summarise.

    Writes ``scores.csv`` (see :func:`score_architectures`), and with an
    accuracy table also ``summary.json`` and ``near_vs_accuracy.png``, into
    ``out_dir``. Arguments not listed here are those of
    :func:`score_architectures` and :func:`rank_correlation`.

    Parameters
    ----------
    indices : sequence of int
        Benchmark indices to score.
    images : torch.Tensor of shape (N, 3, H, W)
        Normalised input images.
    out_dir : path-like
        Output folder; a rerun with the same folder scores only what is missing.
    accuracy_csv : path-like, optional
        Accuracy table for :func:`read_accuracy_table`. Without it, no
        correlation, plot or summary file is made.

    Returns
    -------
    dict
        The summary: counts of requested, skipped and newly scored
        architectures and of each status, the run settings, output paths,
        and the correlations of :func:`correlate_with_accuracy` when there is
        an accuracy table.
    """
    out_dir = Path(out_dir)
    results_csv = out_dir / "scores.csv"
    table = read_accuracy_table(accuracy_csv) if accuracy_csv is not None else None
    if table is not None:
        _check_table_order(table, indices, Path(accuracy_csv))

    previous = ResultsFile(results_csv).read()
    n_skipped = sum(1 for index in dict.fromkeys(indices)
                    if index in previous and previous[index].status == "ok")
    results = score_architectures(
        indices, images, results_csv, repetitions=repetitions, seed=seed, workers=workers,
        scheduler=scheduler, progress=progress, scorer=scorer, num_classes=num_classes, retries=retries,
        device=device, torch_threads=torch_threads, classifier=classifier,
    )

    statuses = [result.status for result in results]
    summary: dict[str, Any] = {
        "space": "nats-tss",
        "n_requested": len(results),
        "n_skipped": n_skipped,
        "n_scored": len(results) - n_skipped,
        "n_ok": statuses.count("ok"),
        "n_error": statuses.count("error"),
        "n_failed": statuses.count("failed"),
        "repetitions": repetitions,
        "seed": seed,
        "torch_threads": torch_threads,
        "classifier": classifier,
        "n_images": int(images.shape[0]),
        "results_csv": str(results_csv),
    }
    if table is None:
        if summary["n_scored"]:
            _remove_stale_summary(out_dir, results_csv)
        return summary

    summary.update(correlate_with_accuracy(results, table, n_bootstrap, confidence, seed))
    summary["accuracy_csv"] = str(accuracy_csv)
    summary["plot"] = str(plot_scores(results, table, out_dir / "near_vs_accuracy.png", summary))
    summary["summary_json"] = str(out_dir / "summary.json")
    write_summary(out_dir / "summary.json", summary)
    return summary
