"""Benchmark: GTN-evaluator trials with glibc's default malloc behaviour and with freed memory retained.

    python benchmarks/host_memory.py --data-root ../shared/data [--trials 4] [--rounds 2]

``gtn_search.host_memory`` makes every training process keep freed memory for reuse (glibc
``mallopt``: no ``mmap`` blocks, no heap trimming) instead of faulting fresh pages in for every
large activation. This script times the same GTN-evaluator trials (shipped quickstart teaching set,
``mnist-tiny``, 1,000 validation images, 2 torch threads): one seed, four seeds batched as one
stacked network, and four seeds one by one, each in a fresh process under four settings:

- glibc's defaults (``GTN_SEARCH_RETAIN_MEMORY=0``; the code as it was);
- Dask's nanny environment (``MALLOC_TRIM_THRESHOLD_=65536``) with glibc's defaults otherwise;
- retained (the default now);
- retained under Dask's nanny environment (the ``mallopt`` call overrides the variable).

Settings alternate within each round (the order rotates); ratios are taken within a round. Results
go to ``benchmarks/results/host_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(2)
from gtn_search.cli.quickstart import shipped_teaching_set
from gtn_search.evaluators import make_evaluator
from gtn_search.host_memory import retaining_freed_memory
from search_spaces.blueprint import blueprint_preset
from search_spaces.space import CellSearchSpace
space = CellSearchSpace.from_mapping("gtn-nas", where="space")
bp = blueprint_preset("mnist-tiny", where="blueprint")
rng = np.random.default_rng(1)
archs = [space.sample(rng) for _ in range(int(sys.argv[2]))]
t = str(shipped_teaching_set())
kinds = {"one seed": {}, "K=4 batched": {"seeds": 4}, "K=4 one by one": {"seeds": 4, "batch_seeds": False}}
out = {}
for kind, extra in kinds.items():
    ev = make_evaluator("gtn", {"teaching_set": t, "val_size": 1000, **extra}, data_root=sys.argv[1] or None)
    ev.setup()
    ev.evaluate(archs[0], bp, 0)  # warm-up
    start = time.perf_counter()
    for i, a in enumerate(archs):
        ev.evaluate(a, bp, i)
    out[kind] = (time.perf_counter() - start) / len(archs)
out["retained"] = retaining_freed_memory()
print(json.dumps(out))
"""

SETTINGS = {
    "glibc defaults (before)": {"GTN_SEARCH_RETAIN_MEMORY": "0"},
    "Dask nanny env, glibc defaults": {"GTN_SEARCH_RETAIN_MEMORY": "0", "MALLOC_TRIM_THRESHOLD_": "65536"},
    "retained (now)": {},
    "retained, Dask nanny env": {"MALLOC_TRIM_THRESHOLD_": "65536"},
}


def run_child(extra_env: dict[str, str], data_root: str, trials: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_TRIM_THRESHOLD_", "GTN_SEARCH_RETAIN_MEMORY")}
    env.update(extra_env)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", CHILD, data_root, str(trials)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "host_memory.json"))
    args = parser.parse_args()
    names = list(SETTINGS)
    rounds = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        row = {name: run_child(SETTINGS[name], args.data_root, args.trials) for name in order}
        rounds.append(row)
        base = row["glibc defaults (before)"]
        for name in names:
            cells = ", ".join(f"{k} {v:.2f} s ({base[k] / v:.2f}x)" for k, v in row[name].items() if k != "retained")
            print(f"round {r + 1} | {name:<32} | {cells}", flush=True)
    kinds = [k for k in rounds[0][names[0]] if k != "retained"]
    summary = {name: {k: statistics.median(rd[name][k] for rd in rounds) for k in kinds} for name in names}
    speedup = {name: {k: statistics.median(rd["glibc defaults (before)"][k] / rd[name][k] for rd in rounds)
                      for k in kinds} for name in names}
    k4 = {name: statistics.median(rd[name]["K=4 batched"] / rd[name]["one seed"] for rd in rounds) for name in names}
    result = {"trials": args.trials, "rounds": rounds, "seconds_per_trial": summary,
              "speedup_over_glibc_defaults": speedup, "k4_batched_over_one_seed": k4}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print("\n| setting | one seed | K=4 batched | K=4 one by one | K=4 batched / one seed |")
    print("|---|---|---|---|---|")
    for name in names:
        s, x = summary[name], speedup[name]
        print(f"| {name} | {s['one seed']:.2f} s ({x['one seed']:.2f}x) | {s['K=4 batched']:.2f} s "
              f"({x['K=4 batched']:.2f}x) | {s['K=4 one by one']:.2f} s ({x['K=4 one by one']:.2f}x) | "
              f"{k4[name]:.2f}x |")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
