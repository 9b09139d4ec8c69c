"""Check the NEAR ranking of activation × initialisation pairs by training on MNIST digits.

For every pair of the five activations and four initialisations (kaiming_uniform,
xavier_uniform, uniform, stanh), the script

1. scores a 784-200-200-10 MLP before training with
   :func:`layersize.selection.rank_activation_init` on the training images, and
2. trains it with Adam (learning rate 1e-3, batches of 128, cross-entropy) with
   early stopping on a validation split, once per training seed, and records
   the test loss and accuracy of the weights with the lowest validation loss.

It then prints Markdown tables and the Spearman correlation between score and
test loss over the pairs, writes every number to ``results.json`` in the output
folder, and plots test loss against score in ``score_vs_loss.png``. It also
scores the MLP with weights from U(-1, 1) to show how much the range of the
"uniform" initialisation matters.

Run from the repository root::

    python examples/activation_init_mnist.py ../shared/data/mnist_5k.csv.gz

The data file is 5,000 MNIST digits, one a row: 784 pixels (0-255), then the label.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from layersize.atomic import write_atomic
from layersize.images import load_images
from layersize.nets import ACTIVATIONS, build_mlp, get_initialization
from layersize.score import near_score
from layersize.selection import rank_activation_init

logger = logging.getLogger("activation_init_mnist")

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist_5k.csv.gz"
INITS = ["kaiming_uniform", "xavier_uniform", "uniform", "stanh"]
HIDDEN_WIDTHS = (200, 200)
SPLIT_SIZES = (3500, 750, 750)  # train, validation, test


@dataclass
class TrainingRun:
    """Outcome of training one pair with one seed."""

    seed: int
    epochs: int
    best_epoch: int
    validation_loss: float
    test_loss: float
    test_accuracy: float


def split_stratified(labels: np.ndarray, sizes: tuple[int, int, int], seed: int) -> list[np.ndarray]:
    """Split row indices into train, validation and test sets with the class shares of ``labels``.

    Each class is shuffled and cut in the proportions of ``sizes``. Rounding can
    move a few rows between the sets when the classes are not equally large.
    """
    rng = np.random.default_rng(seed)
    total = sum(sizes)
    if total > labels.size:
        raise ValueError(f"The split needs {total} images, but the data set contains {labels.size}.")
    parts: list[list[int]] = [[], [], []]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_class = round(members.size * total / labels.size)
        n_train = round(n_class * sizes[0] / total)
        n_validation = round(n_class * sizes[1] / total)
        parts[0].extend(members[:n_train])
        parts[1].extend(members[n_train:n_train + n_validation])
        parts[2].extend(members[n_train + n_validation:n_class])
    return [rng.permutation(np.asarray(part, dtype=np.int64)) for part in parts]


@torch.no_grad()
def evaluate(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Return the mean cross-entropy loss and the accuracy of ``model`` on a data set."""
    model.eval()
    logits = model(features)
    loss = nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
    return loss, accuracy


def train_pair(
    activation: str,
    init: str,
    seed: int,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    max_epochs: int,
    patience: int,
) -> TrainingRun:
    """Train one MLP with Adam and early stopping, and evaluate its best weights on the test set.

    Training stops after ``patience`` epochs without a lower validation loss. A
    non-finite validation loss never counts as an improvement.
    """
    generator = torch.Generator().manual_seed(seed)
    model = build_mlp(784, HIDDEN_WIDTHS, activation, 10)
    get_initialization(init)(model, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_features, train_labels = splits["train"]

    best_loss, best_epoch = math.inf, 0
    best_state = {name: value.clone() for name, value in model.state_dict().items()}
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(train_features.shape[0], generator=generator)
        for start in range(0, order.numel(), 128):
            batch = order[start:start + 128]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(train_features[batch]), train_labels[batch])
            loss.backward()
            optimizer.step()

        validation_loss, _ = evaluate(model, *splits["validation"])
        if math.isfinite(validation_loss) and validation_loss < best_loss:
            best_loss, best_epoch = validation_loss, epoch
            best_state = {name: value.clone() for name, value in model.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break

    model.load_state_dict(best_state)
    test_loss, test_accuracy = evaluate(model, *splits["test"])
    return TrainingRun(seed, epoch, best_epoch, best_loss, test_loss, test_accuracy)


@torch.no_grad()
def uniform_symmetric(module: nn.Module, generator: torch.Generator) -> None:
    """Initialise every Linear layer with weights from U(-1, 1) and zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer.weight.copy_(2.0 * torch.rand(layer.weight.shape, generator=generator) - 1.0)
            layer.bias.zero_()


def describe_cpu() -> str:
    """Return the CPU model from /proc/cpuinfo, or the platform's processor string elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def format_tables(pairs: list[dict], symmetric_scores: dict[str, dict]) -> str:
    """Format the results as Markdown tables, ordered by NEAR score."""
    lines = [
        "| rank | activation | init | NEAR score ± stderr | test loss (mean ± std) | test accuracy (%) | best epoch per seed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for pair in pairs:
        losses = [run["test_loss"] for run in pair["runs"]]
        accuracies = [100 * run["test_accuracy"] for run in pair["runs"]]
        best_epochs = [run["best_epoch"] for run in pair["runs"]]
        lines.append(
            f"| {pair['rank_label']} | {pair['activation']} | {pair['init']} | "
            f"{pair['mean']:.1f} ± {pair['stderr']:.1f} | "
            f"{np.mean(losses):.3f} ± {np.std(losses, ddof=1):.3f} | "
            f"{np.mean(accuracies):.1f} ± {np.std(accuracies, ddof=1):.1f} | "
            f"{', '.join(str(epoch) for epoch in best_epochs)} |"
        )
    lines += ["", "| activation | U(0, 1) score | U(-1, 1) score |", "| --- | --- | --- |"]
    uniform = {pair["activation"]: pair for pair in pairs if pair["init"] == "uniform"}
    for activation, symmetric in symmetric_scores.items():
        lines.append(
            f"| {activation} | {uniform[activation]['mean']:.2f} ± {uniform[activation]['stderr']:.2f} | "
            f"{symmetric['mean']:.1f} ± {symmetric['stderr']:.1f} |"
        )
    return "\n".join(lines)


def plot_score_vs_loss(pairs: list[dict], path: Path) -> None:
    """Plot the mean test loss of every pair against its NEAR score, in two panels.

    The left panel shows all pairs with a logarithmic loss axis, because the
    U(0, 1) pairs can end with losses far above the rest. The right panel leaves
    out the U(0, 1) pairs, which score about 10, so the differences between the
    other pairs, which all score above 200, stay visible.
    """
    from matplotlib.figure import Figure

    markers = {"kaiming_uniform": "o", "xavier_uniform": "s", "stanh": "D", "uniform": "X", "pytorch": "^"}
    activations = sorted({pair["activation"] for pair in pairs})
    colours = dict(zip(activations, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))
    figure = Figure(figsize=(9.0, 4.0), layout="constrained")
    panels = figure.subplots(1, 2)

    without_uniform = [pair for pair in pairs if pair["init"] != "uniform"]
    for axes, pairs_in_panel in ((panels[0], pairs), (panels[1], without_uniform)):
        for pair in pairs_in_panel:
            losses = [run["test_loss"] for run in pair["runs"]]
            axes.errorbar(
                pair["mean"], np.mean(losses), xerr=pair["stderr"],
                yerr=np.std(losses, ddof=1) if len(losses) > 1 else None,
                marker=markers.get(pair["init"], "o"), color=colours[pair["activation"]],
                markersize=6, capsize=2, linestyle="none",
            )
        axes.set_xlabel("NEAR score before training (± stderr)")
        axes.grid(alpha=0.3)
    panels[0].set_yscale("log")
    panels[0].set_ylabel("test cross-entropy after training (± sd over seeds)")
    panels[0].set_title("all pairs", fontsize=10)
    panels[1].set_title("without the U(0, 1) pairs", fontsize=10)

    handles = [
        panels[1].plot([], [], linestyle="none", marker="o", color=colours[name], label=name)[0]
        for name in activations
    ]
    handles += [
        panels[1].plot([], [], linestyle="none", marker=markers[name], color="grey", label=name)[0]
        for name in markers if any(pair["init"] == name for pair in pairs)
    ]
    panels[1].legend(handles=handles, fontsize=7, loc="best")
    figure.savefig(path, dpi=90)


def summarise(pairs: list[dict]) -> dict:
    """Compute the Spearman correlations and the checks of the published pattern."""
    scores = [pair["mean"] for pair in pairs]
    losses = [pair["test_loss_mean"] for pair in pairs]
    accuracies = [pair["test_accuracy_mean"] for pair in pairs]
    others = [pair for pair in pairs if pair["init"] != "uniform"]
    uniform = [pair for pair in pairs if pair["init"] == "uniform"]
    kaiming = [pair for pair in pairs if pair["init"] == "kaiming_uniform"]

    def rho(x: list[float], y: list[float]) -> dict:
        result = spearmanr(x, y)
        return {"rho": float(result.statistic), "p_value": float(result.pvalue), "n": len(x)}

    return {
        "spearman_score_test_loss": rho(scores, losses),
        "spearman_score_test_accuracy": rho(scores, accuracies),
        "spearman_score_test_loss_without_uniform": rho(
            [pair["mean"] for pair in others], [pair["test_loss_mean"] for pair in others]
        ),
        "uniform_scores_lowest": max(pair["mean"] for pair in uniform) < min(pair["mean"] for pair in others),
        "uniform_test_loss_highest": min(pair["test_loss_mean"] for pair in uniform)
        > max(pair["test_loss_mean"] for pair in others),
        "kaiming_lowest_score": min(kaiming, key=lambda pair: pair["mean"])["activation"],
        "kaiming_highest_test_loss": max(kaiming, key=lambda pair: pair["test_loss_mean"])["activation"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA,
                        help="MNIST CSV file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("activation_init_mnist_out"),
                        help="folder for results.json and score_vs_loss.png (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per pair (default: %(default)s)")
    parser.add_argument("--max-epochs", type=int, default=50, help="default: %(default)s")
    parser.add_argument("--patience", type=int, default=5,
                        help="epochs without a lower validation loss before stopping (default: %(default)s)")
    parser.add_argument("--repetitions", type=int, default=8, help="NEAR repetitions per pair (default: %(default)s)")
    # One thread by default, because matrices of this size gain little from more.
    # On a 2-core machine shared with other jobs, two threads made each epoch about
    # 9 times slower (2.7 s against 0.29 s) while each thread waited for the other.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("layersize").setLevel(logging.WARNING)
    torch.set_num_threads(arguments.threads)
    started = time.perf_counter()

    data = load_images(arguments.data, label_column="last")
    indices = split_stratified(data.labels, SPLIT_SIZES, seed=0)
    splits = {
        name: (torch.from_numpy(data.features[part]), torch.from_numpy(data.labels[part]))
        for name, part in zip(("train", "validation", "test"), indices)
    }
    logger.info("Read %d images, split into %s.", data.n_images, [part.size for part in indices])

    # Score on the training images only, so the test images stay unseen.
    selection = rank_activation_init(
        splits["train"][0], HIDDEN_WIDTHS, 10, activations=list(ACTIVATIONS), inits=INITS,
        repetitions=arguments.repetitions, seed=0,
    )
    scored = time.perf_counter()
    logger.info("Scored %d pairs in %.0f s.", len(selection.pairs), scored - started)

    symmetric_scores = {}
    for activation in ACTIVATIONS:
        result = near_score(
            build_mlp(784, HIDDEN_WIDTHS, activation, 10), splits["train"][0],
            repetitions=arguments.repetitions, seed=0, init=uniform_symmetric,
        )
        symmetric_scores[activation] = {"mean": result.mean, "stderr": result.stderr}

    pairs = []
    for pair in selection.pairs:
        runs = [
            train_pair(pair.activation, pair.init, seed, splits, arguments.max_epochs, arguments.patience)
            for seed in range(arguments.seeds)
        ]
        entry = {key: value for key, value in pair.to_dict().items() if key not in ("layers", "totals")}
        entry["runs"] = [vars(run) for run in runs]
        entry["test_loss_mean"] = float(np.mean([run.test_loss for run in runs]))
        entry["test_accuracy_mean"] = float(np.mean([run.test_accuracy for run in runs]))
        pairs.append(entry)
        logger.info("%s + %s: score %.1f, test loss %.3f, accuracy %.3f", pair.activation, pair.init,
                    pair.mean, entry["test_loss_mean"], entry["test_accuracy_mean"])
    finished = time.perf_counter()

    summary = summarise(pairs)
    document = {
        "data": str(arguments.data),
        "architecture": selection.architecture,
        "split": list(SPLIT_SIZES),
        "settings": {key: value for key, value in vars(arguments).items() if key not in ("data", "out")},
        "machine": {"platform": platform.platform(), "cpu": describe_cpu(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "seconds": {"scoring": scored - started, "total": finished - started},
        "summary": summary,
        "uniform_symmetric_scores": symmetric_scores,
        "pairs": pairs,
    }
    write_atomic(arguments.out / "results.json", json.dumps(document, indent=2) + "\n")
    plot_score_vs_loss(pairs, arguments.out / "score_vs_loss.png")
    print(format_tables(pairs, symmetric_scores))
    print()
    print(json.dumps(summary, indent=2))
    print(f"Run time: {finished - started:.0f} s (scoring {scored - started:.0f} s)")


if __name__ == "__main__":
    main()
