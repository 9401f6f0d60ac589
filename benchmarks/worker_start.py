"""Benchmark: how long a pool of local worker processes takes to start, forked or spawned.

    python benchmarks/worker_start.py --workers 2 --rounds 3 --data-root ../shared/data --out benchmarks/results/worker_start.json

A pool is ready when every worker has imported what a trial needs (``gtn_search.executors._warm_up``
imports ``TRIAL_PRELOAD``: torchvision's datasets and the evaluators, the work a first trial would
otherwise do before it trains; the saved figures were measured when it also imported final training
and the comparison's jobs, now ``COMPARISON_PRELOAD``), then holds its worker for
0.2 s so that each task lands on another worker: a floor of 0.2 s in every figure. Timed per round and
start method, side by side in interleaved rounds (this VM's speed drifts by 20% within minutes):

- ``spawn``: every worker is a fresh interpreter that imports torch, torchvision and gtn-search (how
  workers started before the fork server);
- ``forkserver``: every worker is forked from the fork server, which imported them once: the first
  pool of a process also starts the fork server (reported apart, ``forkserver_first``), every later
  pool (a new search in the same process, a pool rebuilt after a worker died or timed out) does not.

Each method runs in its own child process, so nothing imported by one run helps the next.

With ``--data-root``, each round also times a whole command per method, as a user runs it:
``gtn-search search`` of ``--trials`` random GTN-evaluator trials (the quickstart teaching set,
``mnist-tiny``, 1,000 validation images) with 2 local workers, in a fresh study, from the command's
start to its exit (the fork server starts at the search's start, beside the reading of the data).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

_CHILD = r"""
import concurrent.futures as cf, json, sys, time
from gtn_search import executors
workers, pools = int(sys.argv[1]), int(sys.argv[2])
times = []
for _ in range(pools):
    t = time.perf_counter()
    pool = executors.local_pool(workers, 1)
    cf.wait([pool.submit(executors._warm_up, 1) for _ in range(workers)])
    times.append(time.perf_counter() - t)
    pool.shutdown()
print(json.dumps(times))
"""


def pool_start_seconds(method: str, workers: int, pools: int) -> list[float]:
    """Seconds until each of ``pools`` successive pools of ``workers`` started by ``method`` is ready."""
    env = {**os.environ, "GTN_SEARCH_START_METHOD": method, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(workers), str(pools)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def search_seconds(method: str, trials: int, data_root: str) -> float:
    """Seconds of one ``gtn-search search`` command (2 local workers) with workers started by ``method``."""
    from gtn_search.cli.quickstart import shipped_teaching_set

    with tempfile.TemporaryDirectory() as tmp:
        config = {"study": str(Path(tmp) / "study.db"), "space": "gtn-nas", "blueprint": "mnist-tiny",
                  "strategy": "random", "evaluator": {"name": "gtn", "options": {
                      "teaching_set": str(shipped_teaching_set()), "val_size": 1000}},
                  "budget": {"trials": trials}, "seed": 0, "data_root": data_root, "workers": 2,
                  "threads_per_worker": 1}
        path = Path(tmp) / "search.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "GTN_SEARCH_START_METHOD": method}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gtn_search", "search", str(path), "--no-progress"], env=env,
                       check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data-root", default=None, help="also time a whole `gtn-search search` per method")
    ap.add_argument("--trials", type=int, default=8, help="trials of that search")
    args = ap.parse_args()
    rows = []
    for r in range(args.rounds):
        order = ["spawn", "forkserver"] if r % 2 == 0 else ["forkserver", "spawn"]
        got = {m: pool_start_seconds(m, args.workers, 2) for m in order}
        row = {"round": r, "spawn": statistics.mean(got["spawn"]), "forkserver_first": got["forkserver"][0],
               "forkserver": got["forkserver"][1]}
        row["speedup"] = row["spawn"] / row["forkserver"]
        print(f"round {r}: spawned pool {row['spawn']:.2f} s, forked pool {row['forkserver']:.3f} s "
              f"(first, with the fork server's start: {row['forkserver_first']:.2f} s): {row['speedup']:.0f}x",
              flush=True)
        if args.data_root:
            got = {m: search_seconds(m, args.trials, args.data_root) for m in order}
            row["search_spawn"], row["search_forkserver"] = got["spawn"], got["forkserver"]
            row["search_speedup"] = got["spawn"] / got["forkserver"]
            print(f"round {r}: `gtn-search search`, {args.trials} trials, 2 workers: spawned {got['spawn']:.1f} s, "
                  f"forked {got['forkserver']:.1f} s ({row['search_speedup']:.2f}x)", flush=True)
        rows.append(row)
    keys = ["spawn", "forkserver_first", "forkserver", "speedup"]
    if args.data_root:
        keys += ["search_spawn", "search_forkserver", "search_speedup"]
    summary = {k: statistics.median(row[k] for row in rows) for k in keys}
    print(f"median over {args.rounds} rounds, {args.workers} workers: spawned {summary['spawn']:.2f} s, forked "
          f"{summary['forkserver']:.3f} s ({summary['speedup']:.0f}x), first forked pool "
          f"{summary['forkserver_first']:.2f} s")
    if args.data_root:
        print(f"median `gtn-search search` ({args.trials} trials, 2 workers): spawned {summary['search_spawn']:.1f} s, "
              f"forked {summary['search_forkserver']:.1f} s ({summary['search_speedup']:.2f}x)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"workers": args.workers, "search_trials": args.trials if args.data_root else None,
                                        "rounds": rows, "median": summary, "cpu_count": os.cpu_count()},
                                       indent=2) + "\n")


if __name__ == "__main__":
    main()
