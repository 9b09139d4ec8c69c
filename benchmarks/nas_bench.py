"""NAS-Bench-201 benchmark of the NEAR score: correlation with accuracy, proxy comparison, speed.

Five subcommands, each printing lines for docs/benchmarks.md:

``score``
    Score a seeded random sample of benchmark indices and the architectures of
    the NASLib zero-cost table into one resumable results CSV, alternating
    between the two lists so that both grow evenly, and stop starting new
    chunks after ``--minutes``.
``report``
    Kendall's τ and Spearman's ρ with bootstrap intervals of the NEAR score and
    the parameter count against the three accuracy columns on the random
    sample, and Spearman's ρ of NEAR beside the twelve NASLib proxies on the
    NASLib architectures.
``throughput``
    Seconds per architecture at 32 repetitions, serially with 1 and 2 torch
    threads, and the wall time of a two-worker local Dask cluster.
``forward-share``
    For a seeded sample of architectures, the scoring time on one thread
    beside the time of the same number of plain forward passes (no hooks, no
    fresh weights, no ranks), which no change to the scoring can remove, and
    with ``--vmap`` the same passes as one vmapped call over stacked weights.
``profile``
    A cProfile of the second, warm scoring of one architecture, by own time.

Example (the commands behind the NAS-Bench-201 section of docs/benchmarks.md)::

    python benchmarks/nas_bench.py score --sample 1000 --seed 0 --out /tmp/nas-bench --workers 2 --minutes 34
    python benchmarks/nas_bench.py report --sample 1000 --seed 0 --out /tmp/nas-bench
    python benchmarks/nas_bench.py throughput --n 12 --seed 1
    python benchmarks/nas_bench.py forward-share --n 10 --seed 5 --vmap
    python benchmarks/nas_bench.py profile --index 9765
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from layersize import bench
from layersize.nas import EDGES, all_architectures, arch_index, build_network, is_disconnected

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGES = DATA / "cifar10_test_1000.npz"
ACCURACY = DATA / "nats_bench_tss_accuracy.csv"
NASLIB = DATA / "naslib_zc_nasbench201_725.json"

# NASLib's operation codes and edge order (source → target) in its tuple keys.
NASLIB_OPERATIONS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
NASLIB_DATASETS = {"cifar10": "cifar10_test_acc", "cifar100": "cifar100_test_acc",
                   "ImageNet16-120": "imagenet16_120_test_acc"}
NASLIB_PROXIES = ("synflow", "nwot", "jacov", "snip", "grad_norm", "fisher", "grasp", "epe_nas",
                  "l2_norm", "plain", "params", "flops")

logger = logging.getLogger("nas_bench")


def naslib_key_to_arch(key: str) -> str:
    """Convert a NASLib tuple key such as ``"(0, 2, 3, 2, 3, 1)"`` to an architecture string."""
    codes = [int(code) for code in key.strip("()").split(",")]
    operation_of = {(target, source): NASLIB_OPERATIONS[code]
                    for (source, target), code in zip(NASLIB_EDGES, codes)}
    groups = [[] for _ in range(3)]
    for target, source in EDGES:
        groups[target - 1].append(f"{operation_of[(target, source)]}~{source}")
    return "+".join("|" + "|".join(group) + "|" for group in groups)


def read_naslib(path: Path) -> dict[str, dict[int, dict]]:
    """Read the NASLib table as {dataset: {benchmark index: entry}}."""
    table = json.loads(path.read_text())
    return {dataset: {arch_index(naslib_key_to_arch(key)): entry for key, entry in entries.items()}
            for dataset, entries in table.items()}


def naslib_indices(path: Path, seed: int) -> list[int]:
    """Return the benchmark indices of the NASLib architectures in a seeded random order."""
    indices = sorted(set().union(*(entries.keys() for entries in read_naslib(path).values())))
    return np.random.default_rng(seed).permutation(indices).tolist()


def interleave(first: list[int], second: list[int]) -> list[int]:
    """Alternate between two lists in proportion to their lengths, dropping repeats."""
    order: dict[int, None] = {}
    n_first, n_second = len(first), len(second)
    i = j = 0
    while i < n_first or j < n_second:
        if j >= n_second or (i < n_first and i * n_second <= j * n_first):
            order.setdefault(first[i])
            i += 1
        else:
            order.setdefault(second[j])
            j += 1
    return list(order)


def command_score(arguments: argparse.Namespace) -> None:
    images = bench.load_cifar_images(IMAGES)
    sample = bench.select_indices(sample=arguments.sample, seed=arguments.seed)
    order = interleave(sample, naslib_indices(NASLIB, arguments.seed)) if NASLIB.is_file() else sample
    out = Path(arguments.out)
    out.mkdir(parents=True, exist_ok=True)
    results_csv = out / "scores.csv"
    deadline = time.monotonic() + 60 * arguments.minutes
    started = time.perf_counter()

    cluster = None
    if arguments.workers > 1:
        from dask.distributed import LocalCluster

        cluster = LocalCluster(n_workers=arguments.workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
    try:
        for begin in range(0, len(order), arguments.chunk):
            if time.monotonic() > deadline:
                logger.warning("Time limit of %g minutes reached before index %d of %d.",
                               arguments.minutes, begin, len(order))
                break
            chunk = order[begin:begin + arguments.chunk]
            bench.score_architectures(
                chunk, images, results_csv, repetitions=arguments.repetitions, seed=arguments.seed,
                scheduler=cluster.scheduler_address if cluster is not None else None, progress=False,
                classifier=arguments.classifier,
            )
            done = sum(1 for result in bench.ResultsFile(results_csv).read().values() if result.status == "ok")
            logger.info("%d architectures scored after %.0f s.", done, time.perf_counter() - started)
    finally:
        if cluster is not None:
            cluster.close()
    print(f"Wall time {time.perf_counter() - started:.0f} s; scores in {results_csv}")


def _format(value: float, interval: tuple[float, float] | list[float]) -> str:
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def command_report(arguments: argparse.Namespace) -> None:
    results = {index: result for index, result in bench.ResultsFile(Path(arguments.out) / "scores.csv").read().items()
               if result.status == "ok"}
    table = bench.read_accuracy_table(ACCURACY)
    sample = bench.select_indices(sample=arguments.sample, seed=arguments.seed)
    scored = [results[index] for index in sample if index in results]
    seconds = [result.seconds for result in scored]
    print(f"Random sample: {len(scored)} of {len(sample)} indices scored "
          f"(seed {arguments.seed}); median {statistics.median(seconds):.2f} s per architecture in a worker.\n")
    disconnected = [result for result in scored if is_disconnected(result.arch)]
    print(f"{len(disconnected)} of them have disconnected cells, with "
          f"{len({result.near_mean for result in disconnected})} distinct NEAR score(s).\n")
    summary = bench.correlate_with_accuracy(scored, table, n_bootstrap=arguments.bootstrap, seed=arguments.seed)
    print("| accuracy column | n | NEAR τ [95% CI] | NEAR ρ [95% CI] | params τ [95% CI] | params ρ [95% CI] |")
    print("| --- | --- | --- | --- | --- | --- |")
    for column, entry in summary["correlations"].items():
        near, params = entry["near"], entry["n_params"]
        print(f"| {column} | {near['n']} | {_format(near['kendall_tau'], near['kendall_interval'])} | "
              f"{_format(near['spearman_rho'], near['spearman_interval'])} | "
              f"{_format(params['kendall_tau'], params['kendall_interval'])} | "
              f"{_format(params['spearman_rho'], params['spearman_interval'])} |")

    if not NASLIB.is_file():
        return
    naslib = read_naslib(NASLIB)
    print("\nSpearman ρ (number of architectures) with NASLib's validation accuracy, on the NASLib "
          "architectures that have a NEAR score and, for each proxy, that proxy's score:\n")
    print("| proxy | " + " | ".join(naslib) + " |")
    print("| --- | " + " | ".join("---" for _ in naslib) + " |")
    rows: dict[str, list[str]] = {}
    for dataset, entries in naslib.items():
        scored_here = [index for index in entries if index in results]
        near = [results[index].near_mean for index in scored_here]
        accuracy = [entries[index]["val_accuracy"] for index in scored_here]
        rows.setdefault("NEAR (this run)", []).append(
            f"{stats.spearmanr(near, accuracy)[0]:.3f} ({len(scored_here)})")
        for proxy in NASLIB_PROXIES:
            having = [index for index in scored_here if proxy in entries[index]]
            rho = stats.spearmanr([entries[index][proxy]["score"] for index in having],
                                  [entries[index]["val_accuracy"] for index in having])[0]
            rows.setdefault(proxy, []).append(f"{rho:.3f} ({len(having)})")
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


def command_throughput(arguments: argparse.Namespace) -> None:
    images = bench.load_cifar_images(IMAGES)
    indices = bench.select_indices(sample=arguments.n + 1, seed=arguments.seed)
    archs = all_architectures()
    previous_threads = torch.get_num_threads()
    # One warm-up architecture, so that the first timing does not include imports and allocations.
    bench.score_architecture(indices[0], archs[indices[0]], images, repetitions=2, classifier=arguments.classifier)
    lines = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        seconds = []
        for index in indices[1:]:
            start = time.perf_counter()
            result = bench.score_architecture(index, archs[index], images, repetitions=arguments.repetitions,
                                              classifier=arguments.classifier)
            seconds.append(time.perf_counter() - start)
            assert result.status == "ok", result.error
        median = statistics.median(seconds)
        lines.append(f"serial, {threads} torch thread(s): median {median:.2f} s per architecture = "
                     f"{1 / median:.2f} arch/s ({1 / median / 2:.2f} × the 2 arch/s target); "
                     f"min {min(seconds):.2f} s, max {max(seconds):.2f} s, n = {len(seconds)}")
        print(lines[-1], flush=True)
    torch.set_num_threads(previous_threads)

    if arguments.workers:
        out = Path(arguments.scratch)
        results_csv = out / f"throughput-{time.time_ns()}.csv"
        start = time.perf_counter()
        results = bench.score_architectures(indices[1:], images, results_csv, repetitions=arguments.repetitions,
                                            seed=0, workers=arguments.workers, progress=False,
                                            classifier=arguments.classifier)
        wall = time.perf_counter() - start
        per_task = statistics.median(result.seconds for result in results)
        lines.append(f"--workers {arguments.workers}: {len(results)} architectures in {wall:.1f} s wall "
                     f"(cluster start included) = {len(results) / wall:.2f} arch/s "
                     f"({len(results) / wall / 2:.2f} × target); median {per_task:.2f} s per task")
        print(lines[-1], flush=True)


def command_forward_share(arguments: argparse.Namespace) -> None:
    """Compare the scoring time of each architecture with its plain forward passes alone."""
    images = bench.load_cifar_images(IMAGES).contiguous(memory_format=torch.channels_last)
    indices = bench.select_indices(sample=arguments.n, seed=arguments.seed)
    archs = all_architectures()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    totals, forwards = [], []
    try:
        for index in indices:
            start = time.perf_counter()
            bench.score_architecture(index, archs[index], images, repetitions=arguments.repetitions)
            totals.append(time.perf_counter() - start)
            # The same network and batch size, without hooks, fresh weights or ranks.
            network = build_network(archs[index]).to(memory_format=torch.channels_last).train()
            batch = images[:10]
            with torch.no_grad():
                network(batch)
                start = time.perf_counter()
                for _ in range(arguments.repetitions):
                    network(batch)
                forwards.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous_threads)
    shares = [forward / total for forward, total in zip(forwards, totals)]
    print(f"{len(indices)} architectures (seed {arguments.seed}), 1 torch thread: scoring median "
          f"{statistics.median(totals):.2f} s, {arguments.repetitions} plain forward passes median "
          f"{statistics.median(forwards):.2f} s, median share {100 * statistics.median(shares):.0f} %")
    if arguments.vmap:
        batched = [_time_vmapped_forwards(archs[index], images[:10], arguments.repetitions)
                   for index in indices]
        print(f"the same forward passes as one torch.func.vmap call over stacked weights: median "
              f"{statistics.median(batched):.2f} s")


def _time_vmapped_forwards(arch: str, batch: torch.Tensor, repetitions: int) -> float:
    """Time one forward pass of ``repetitions`` weight sets of a network, batched with vmap."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    network = build_network(arch).to(memory_format=torch.channels_last).train()
    parameters, buffers = stack_module_state([copy.deepcopy(network) for _ in range(repetitions)])
    skeleton = copy.deepcopy(network).to("meta")
    inputs = batch.unsqueeze(0).expand(repetitions, *batch.shape).contiguous()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            forward = vmap(lambda weights, states, images: functional_call(skeleton, (weights, states), (images,)))
            forward(parameters, buffers, inputs)
            start = time.perf_counter()
            forward(parameters, buffers, inputs)
            return time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)


def command_profile(arguments: argparse.Namespace) -> None:
    """Print a cProfile of the second, warm scoring of one architecture on one thread."""
    import cProfile
    import pstats

    images = bench.load_cifar_images(IMAGES)
    arch = all_architectures()[arguments.index]
    options = dict(repetitions=arguments.repetitions, torch_threads=1, classifier=arguments.classifier)
    bench.score_architecture(arguments.index, arch, images, **options)
    profiler = cProfile.Profile()
    profiler.runcall(bench.score_architecture, arguments.index, arch, images, **options)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(arguments.top)


def add_classifier_option(parser: argparse.ArgumentParser) -> None:
    """Add --no-classifier, which leaves the classifier's output out of the scores."""
    parser.add_argument("--no-classifier", dest="classifier", action="store_false",
                        help="Leave the classifier's output out: one image per repetition.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="Log progress at INFO level.")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="Score the random sample and the NASLib architectures.")
    score.add_argument("--sample", type=int, default=1000, help="Size of the random sample of indices.")
    score.add_argument("--seed", type=int, default=0, help="Seed of the sample and of the NEAR scores.")
    score.add_argument("--out", required=True, help="Folder of scores.csv; a rerun resumes it.")
    score.add_argument("--workers", type=int, default=2, help="Local Dask worker processes (1: serial).")
    score.add_argument("--repetitions", type=int, default=32, help="Repetitions of each NEAR score.")
    score.add_argument("--minutes", type=float, default=20, help="Start no chunk after this many minutes.")
    score.add_argument("--chunk", type=int, default=40, help="Architectures per chunk between time checks.")
    add_classifier_option(score)
    score.set_defaults(run=command_score)

    report = commands.add_parser("report", help="Print the correlation and proxy tables.")
    report.add_argument("--sample", type=int, default=1000, help="Size of the random sample of indices.")
    report.add_argument("--seed", type=int, default=0, help="Seed of the sample and of the bootstrap.")
    report.add_argument("--out", required=True, help="Folder of scores.csv.")
    report.add_argument("--bootstrap", type=int, default=1000, help="Bootstrap resamples.")
    report.set_defaults(run=command_report)

    throughput = commands.add_parser("throughput", help="Time the scoring of architectures.")
    throughput.add_argument("--n", type=int, default=12, help="Architectures to time.")
    throughput.add_argument("--seed", type=int, default=1, help="Seed of the sample of architectures.")
    throughput.add_argument("--repetitions", type=int, default=32, help="Repetitions of each NEAR score.")
    throughput.add_argument("--workers", type=int, default=2, help="Also time a local cluster (0: skip).")
    throughput.add_argument("--scratch", default="/tmp", help="Folder for the cluster run's results CSV.")
    add_classifier_option(throughput)
    throughput.set_defaults(run=command_throughput)

    share = commands.add_parser("forward-share", help="Time plain forward passes against scoring.")
    share.add_argument("--n", type=int, default=10, help="Architectures to time.")
    share.add_argument("--seed", type=int, default=5, help="Seed of the sample of architectures.")
    share.add_argument("--repetitions", type=int, default=32, help="Repetitions and forward passes.")
    share.add_argument("--vmap", action="store_true",
                       help="Also time the forward passes batched with torch.func.vmap.")
    share.set_defaults(run=command_forward_share)

    profile = commands.add_parser("profile", help="Profile the scoring of one architecture.")
    profile.add_argument("--index", type=int, default=9765, help="Benchmark index to profile.")
    profile.add_argument("--repetitions", type=int, default=32, help="Repetitions of the NEAR score.")
    profile.add_argument("--top", type=int, default=25, help="Functions to list, by own time.")
    add_classifier_option(profile)
    profile.set_defaults(run=command_profile)

    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if arguments.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
