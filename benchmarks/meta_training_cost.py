"""What meta-training a GTN costs, config against config, measured side by side in one run.

    python benchmarks/meta_training_cost.py --data-root ../shared/data \
        benchmarks/configs/gtn_fashion_nas_long.yaml benchmarks/configs/gtn_fashion_nas_t64.yaml \
        [--iterations 6] [--threads 1] [--json benchmarks/results/meta_training_cost.json]

For each config it builds the meta-trainer and runs the same meta-iterations (the same iteration
indices, so configs that differ only in their inner loop sample the same learner cells), alternating
which config goes first per iteration so the machine's drift cancels in the per-iteration ratios.
It reports, per config, the median seconds per meta-iteration, the FLOPs of one meta-iteration
(counted with torch's flop formulas over the same iterations, forward and backward, first- and
second-order), and the whole meta-training's cost: per-iteration figures times ``meta_iterations``.
The first config is the reference of the ratios. Wall-clock figures from the training histories are
not comparable when the runs shared the cores; these are.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gtn_search.data import load_dataset  # noqa: E402
from gtn_search.gtn.config import load_config  # noqa: E402
from gtn_search.gtn.meta_train import MetaTrainer  # noqa: E402
from gtn_search.host_memory import retain_freed_memory  # noqa: E402
from learner_speed import flops_of  # noqa: E402  (torch's flop formulas, usable inside autograd.grad)


def _run(trainer: MetaTrainer, iteration: int) -> float:
    trainer.iteration = iteration
    start = time.perf_counter()
    trainer.step()
    return time.perf_counter() - start


def _flops(trainer: MetaTrainer, iteration: int) -> int:
    trainer.iteration = iteration
    return int(flops_of(trainer.step))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="GTN config files or preset names; the first is the reference")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=6, help="meta-iterations timed per config")
    parser.add_argument("--flop-iterations", type=int, default=2, help="of those, how many are also counted")
    parser.add_argument("--first", type=int, default=1, help="index of the first meta-iteration run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    configs = [load_config(c, {"monitor_every": 0}) for c in args.configs]
    datasets = {c.dataset: load_dataset(c.dataset, args.data_root) for c in configs}
    trainers = [MetaTrainer(c, datasets[c.dataset]) for c in configs]
    for trainer in trainers:  # warm-up: allocator, oneDNN primitive caches
        _run(trainer, 0)
    seconds: list[list[float]] = [[] for _ in trainers]
    flops: list[list[int]] = [[] for _ in trainers]
    indices = list(range(args.first, args.first + args.iterations))
    for n, iteration in enumerate(indices):
        order = list(range(len(trainers)))
        if n % 2:
            order.reverse()
        for k in order:
            seconds[k].append(_run(trainers[k], iteration))
        print(f"iteration {iteration}: " + ", ".join(f"{seconds[k][-1]:.2f} s" for k in range(len(trainers))),
              flush=True)
    for iteration in indices[: args.flop_iterations]:
        for k, trainer in enumerate(trainers):
            flops[k].append(_flops(trainer, iteration))
    rows: list[dict[str, Any]] = []
    for k, (name, config) in enumerate(zip(args.configs, configs)):
        per_it = statistics.median(seconds[k])
        flop_it = statistics.mean(flops[k])
        ratios = [a / b for a, b in zip(seconds[k], seconds[0])]
        rows.append({
            "config": name,
            "inner_steps": config.inner_steps,
            "meta_iterations": config.meta_iterations,
            "learners_per_iteration": config.learners_per_iteration,
            "seconds_per_iteration": per_it,
            "seconds_per_iteration_all": seconds[k],
            "gflop_per_iteration": flop_it / 1e9,
            "ratio_to_first_per_iteration_median": statistics.median(ratios),
            "total_hours": per_it * config.meta_iterations / 3600,
            "total_tflop": flop_it * config.meta_iterations / 1e12,
        })
    first = rows[0]
    print(f"\n{args.threads} thread(s), iterations {indices[0]}-{indices[-1]} "
          f"(FLOPs over the first {args.flop_iterations})")
    print(f"{'config':58} {'T':>3} {'its':>4} {'s/it':>6} {'GFLOP/it':>9} {'x ref/it':>8} {'total h':>8} "
          f"{'TFLOP':>7} {'x ref':>6}")
    for row in rows:
        print(f"{row['config']:58} {row['inner_steps']:3d} {row['meta_iterations']:4d} "
              f"{row['seconds_per_iteration']:6.2f} {row['gflop_per_iteration']:9.1f} "
              f"{row['ratio_to_first_per_iteration_median']:8.2f} {row['total_hours']:8.2f} "
              f"{row['total_tflop']:7.1f} {row['total_hours'] / first['total_hours']:6.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory of this process (the most demanding config's): {peak:.1f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "iterations": indices, "rows": rows,
                                               "peak_rss_gib": peak,
                                               "command": "python " + " ".join(sys.argv)},
                                              indent=2) + "\n")
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
