"""Benchmark: GTN-evaluator trial time with and without Dask's ``MALLOC_TRIM_THRESHOLD_``.

    python benchmarks/dask_malloc.py --data-root ../shared/data

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; setting it switches off glibc's
dynamic mmap threshold. This script times the same trials (quickstart teaching set, ``mnist-tiny``,
one torch thread) in a fresh process without the variable and with it, one after the other, and
saves the figures to ``benchmarks/results/dask_malloc.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from gtn_search.cli.quickstart import shipped_teaching_set
from gtn_search.evaluators import make_evaluator
from search_spaces.blueprint import blueprint_preset
from search_spaces.space import CellSearchSpace
space = CellSearchSpace.from_mapping("gtn-nas", where="space")
bp = blueprint_preset("mnist-tiny", where="blueprint")
archs = [space.sample(np.random.default_rng(1)) for _ in range(int(sys.argv[2]))]
ev = make_evaluator("gtn", {"teaching_set": str(shipped_teaching_set()), "val_size": 1000}, data_root=sys.argv[1] or None)
ev.setup()
ev.evaluate(archs[0], bp, 0)  # warm-up
start = time.perf_counter()
for i, a in enumerate(archs):
    ev.evaluate(a, bp, i)
print(json.dumps((time.perf_counter() - start) / len(archs)))
"""


def trial_seconds(env_value: str | None, data_root: str, trials: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    if env_value is not None:
        env["MALLOC_TRIM_THRESHOLD_"] = env_value
    out = subprocess.run([sys.executable, "-c", CHILD, data_root, str(trials)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/dask_malloc.json")
    args = parser.parse_args()
    results = {}
    for label, value in (("unset", None), ("65536 (Dask's default)", "65536")):
        results[label] = trial_seconds(value, args.data_root, args.trials)
        print(f"MALLOC_TRIM_THRESHOLD_ {label:<24} {results[label]:.2f} s per trial", flush=True)
    ratio = results["65536 (Dask's default)"] / results["unset"]
    print(f"slowdown with Dask's setting: {ratio:.2f}x")
    Path(args.out).write_text(json.dumps({"seconds_per_trial": results, "slowdown": ratio, "trials": args.trials},
                                         indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
