"""Benchmark: how long a pool of local worker processes takes to start, forked or spawned.

    python benchmarks/worker_start.py --workers 2 --rounds 3 --out benchmarks/results/worker_start.json

A pool is ready when every worker has imported what a trial needs (``gtn_search.executors._warm_up``
imports the evaluators, the work a first trial would do before it trains, then holds its worker for
0.2 s so that each task lands on another worker: a floor of 0.2 s in every figure). Timed per round and
start method, side by side in interleaved rounds (this VM's speed drifts by 20% within minutes):

- ``spawn``: every worker is a fresh interpreter that imports torch, torchvision and gtn-search (how
  workers started before the fork server);
- ``forkserver``: every worker is forked from the fork server, which imported them once: the first
  pool of a process also starts the fork server (reported apart, ``forkserver_first``), every later
  pool (a new search in the same process, a pool rebuilt after a worker died or timed out) does not.

Each method runs in its own child process, so nothing imported by one run helps the next.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for r in range(args.rounds):
        order = ["spawn", "forkserver"] if r % 2 == 0 else ["forkserver", "spawn"]
        got = {m: pool_start_seconds(m, args.workers, 2) for m in order}
        row = {"round": r, "spawn": statistics.mean(got["spawn"]), "forkserver_first": got["forkserver"][0],
               "forkserver": got["forkserver"][1]}
        row["speedup"] = row["spawn"] / row["forkserver"]
        rows.append(row)
        print(f"round {r}: spawned pool {row['spawn']:.2f} s, forked pool {row['forkserver']:.3f} s "
              f"(first, with the fork server's start: {row['forkserver_first']:.2f} s): {row['speedup']:.0f}x")
    summary = {k: statistics.median(row[k] for row in rows) for k in ("spawn", "forkserver_first", "forkserver",
                                                                     "speedup")}
    print(f"median over {args.rounds} rounds, {args.workers} workers: spawned {summary['spawn']:.2f} s, forked "
          f"{summary['forkserver']:.3f} s ({summary['speedup']:.0f}x), first forked pool "
          f"{summary['forkserver_first']:.2f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"workers": args.workers, "rounds": rows, "median": summary,
                                        "cpu_count": os.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
