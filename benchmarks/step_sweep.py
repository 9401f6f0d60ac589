"""Benchmark: a proxy's step sweep trained once (scored on the way) against one training per step count.

    python benchmarks/step_sweep.py --data-root ../shared/data --archs 2 --threads 1

``gtn-search compare`` scores each architecture with every setting of a proxy's ``steps`` list.
``Evaluator.evaluate_sweep`` trains once to the largest step count and scores on the way, bit for
bit the separate evaluations. For the proxies of ``benchmarks/configs/compare_fashion_gt100.yaml``
named by ``--labels`` (default: the GTN proxy at 8/16/32 steps and the real-data proxy at
16..512), on ``--archs`` architectures sampled as that comparison samples them, this script runs
the sweep and the separate evaluations in alternating order (paired: the machine's drift cancels),
asserts that every score, cost and failure is identical, and prints the seconds of both and their
ratio. Writes ``benchmarks/results/step_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from gtn_search.compare import load_compare_config
from gtn_search.compare.run import Comparison
from gtn_search.seeding import derive_seed

CONFIG = "benchmarks/configs/compare_fashion_gt100.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--archs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--labels", nargs="+", default=["gtn", "real"])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--out", default="benchmarks/results/step_sweep.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_compare_config(args.config, {"data_root": args.data_root})
    comparison = Comparison(cfg, progress=False, read_only=True)
    settings = cfg.settings()
    archs = comparison.architectures()[: args.archs]
    rows = []
    for label in args.labels:
        names = sorted((s for s, (p, _) in settings.items() if p.label == label),
                       key=lambda s: settings[s][1]["steps"])
        steps = [int(settings[s][1]["steps"]) for s in names]
        evaluator = comparison.proxy_evaluators()[names[-1]][0]
        evaluator.setup()
        for i, arch in enumerate(archs):
            seed = derive_seed(cfg.seed, "compare-proxy", arch.hash)
            seconds: dict[str, float] = {}
            order = ("sweep", "separate") if i % 2 == 0 else ("separate", "sweep")
            for how in order:
                start = time.perf_counter()
                if how == "sweep":
                    swept = evaluator.evaluate_sweep(arch, comparison.blueprint, seed, steps)
                else:
                    separate = {s: evaluator.with_steps(s).evaluate(arch, comparison.blueprint, seed) for s in steps}
                seconds[how] = time.perf_counter() - start
            for s in steps:
                a, b = swept[s], separate[s]
                assert (a.status, a.score, a.error, a.train_flops, a.eval_flops, a.sgd_steps) == \
                    (b.status, b.score, b.error, b.train_flops, b.eval_flops, b.sgd_steps), (label, s, a, b)
            rows.append({"label": label, "steps": steps, "arch": arch.hash, "sweep_s": seconds["sweep"],
                         "separate_s": seconds["separate"], "ratio": seconds["separate"] / seconds["sweep"],
                         "scores": [swept[s].score for s in steps],
                         "swept_step_seconds": [swept[s].wall_seconds for s in steps],
                         "separate_step_seconds": [separate[s].wall_seconds for s in steps]})
            print(f"{label} {steps} arch {arch.short_hash}: sweep {seconds['sweep']:.1f} s, separate "
                  f"{seconds['separate']:.1f} s ({rows[-1]['ratio']:.2f}x), identical scores", flush=True)
    summary = {label: statistics.median(r["ratio"] for r in rows if r["label"] == label) for label in args.labels}
    print("median speed-up of the sweep: " + ", ".join(f"{k} {v:.2f}x" for k, v in summary.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python benchmarks/step_sweep.py --data-root ../shared/data "
                                          f"--archs {args.archs} --threads {args.threads} --labels "
                                          + " ".join(args.labels),
                               "threads": args.threads, "rows": rows, "median_ratio": summary}, indent=2))


if __name__ == "__main__":
    main()
