"""Benchmark: GTN-evaluator trials per hour with 1 and 2 local workers, and on a Dask LocalCluster.

    python benchmarks/search_throughput.py --trials 120 --out benchmarks/results/search_throughput.json

Each configuration runs the same random search (same seed, so the same architectures) with the
GTN evaluator on the quickstart teaching set and the ``mnist-tiny`` blueprint, in a fresh study.
Two rates are reported: end to end (the whole ``run_search`` call, worker start-up included: each
spawned worker imports torch and loads the dataset, several seconds on this machine) and steady
state (trials finished after every worker has finished its first one, over the time from then to
the last trial; the rate a long search runs at).
Target: >= 1.7x the trials per hour with 2 workers as with 1 on a 2-core machine.

The machine's own ceiling is measured first (no torch, no shared data): a cache-resident
pure-Python loop and a memory-bound array copy, each run alone and as two processes at once;
``2 x alone / together`` is the most two processes doing such work can gain here.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from gtn_search.cli.quickstart import shipped_teaching_set
from gtn_search.runner import run_search
from gtn_search.search_config import SearchConfig

#: configuration key -> (label, search settings); the first one is the baseline
RUNS = {
    "1w2t": ("local, 1 worker (2 threads)", {"workers": 1, "threads_per_worker": 2}),
    "1w1t": ("local, 1 worker (1 thread)", {"workers": 1, "threads_per_worker": 1}),
    "2w": ("local, 2 workers (1 thread each)", {"workers": 2, "threads_per_worker": 1}),
    "dask": ("dask LocalCluster, 2 workers", {"workers": 2, "threads_per_worker": 1, "executor": "dask"}),
}


def _spin(n: int = 20_000_000) -> tuple[float, float]:
    """(start, end) wall-clock times of a fixed pure-Python loop (stays in the core's own caches)."""
    start = time.time()
    total = 0
    for i in range(n):
        total += i * i
    return start, time.time()


def _stream(repeats: int = 60) -> tuple[float, float]:
    """(start, end) wall-clock times of copying a 64 MiB array ``repeats`` times (memory-bound)."""
    import numpy as np

    src = np.ones(8 * 2**20)
    dst = np.empty_like(src)
    start = time.time()
    for _ in range(repeats):
        np.copyto(dst, src)
    return start, time.time()


def machine_ceiling() -> dict[str, float]:
    """How well two independent processes scale on this machine (no torch, no shared data): a
    loop that stays in the core's caches and one that streams through memory."""
    out: dict[str, float] = {}
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1000, 1000])  # start both processes first
        for name, fn in (("loop", _spin), ("memory_stream", _stream)):
            start, end = pool.apply(fn)
            alone = end - start
            both = [pool.apply_async(fn) for _ in range(2)]
            spans = [job.get() for job in both]
            together = max(e for _, e in spans) - min(s for s, _ in spans)  # both jobs, start to finish
            out[f"{name}_seconds_alone"], out[f"{name}_seconds_two_at_once"] = alone, together
            out[f"{name}_two_process_ceiling"] = 2 * alone / together
            print(f"machine ceiling ({name}): one job {alone:.2f} s alone, two jobs at once {together:.2f} s start to "
                  f"finish, so two processes gain at most {2 * alone / together:.2f}x", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--teaching-set", default=None, help="default: the shipped quickstart teaching set")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="benchmarks/results/search_throughput.json")
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS),
                        help="run only these configurations; the others are kept from --out")
    args = parser.parse_args()
    teaching = args.teaching_set or str(shipped_teaching_set())
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() and set(args.only) != set(RUNS) else {}
    scores = {}
    ceiling = machine_ceiling()
    for key in args.only:
        label, extra = RUNS[key]
        with tempfile.TemporaryDirectory() as tmp:
            config = SearchConfig.model_validate({
                "study": str(Path(tmp) / "study.db"), "space": "gtn-nas", "blueprint": "mnist-tiny",
                "strategy": "random", "evaluator": {"name": "gtn", "options": {"teaching_set": teaching,
                                                                                "val_size": 1000}},
                "budget": {"trials": args.trials}, "seed": 0, "data_root": args.data_root, **extra,
            })
            start = time.perf_counter()
            summary = run_search(config, progress=False)
            seconds = time.perf_counter() - start
            from gtn_search.storage import Study

            study = Study(config.study)
            trials = study.trials()
            scores[label] = [(t.number, t.hash, round(t.score, 4) if t.score is not None else None) for t in trials]
            study.close()
        workers = extra["workers"]
        finished = sorted(t.finished_at for t in trials if t.finished_at is not None)
        steady = 3600 * (len(finished) - workers) / (finished[-1] - finished[workers - 1])
        per_trial = statistics.mean(t.wall_seconds for t in trials if t.wall_seconds is not None)
        per_hour = 3600 * summary.evaluated / seconds
        results[label] = {"trials": summary.evaluated, "seconds": seconds, "trials_per_hour": per_hour,
                          "steady_trials_per_hour": steady, "mean_trial_seconds": per_trial}
        print(f"{label:<36} {summary.evaluated} trials in {seconds:6.1f} s = {per_hour:7.0f} trials/hour end to end, "
              f"{steady:7.0f} steady state; {per_trial:.2f} s per trial", flush=True)
    results.pop("identical_trials", None)
    results.pop("machine", None)
    base = results.get(RUNS["1w2t"][0])
    single = results.get(RUNS["1w1t"][0])
    for entry in results.values():
        if base:
            entry["speedup_vs_1_worker"] = entry["trials_per_hour"] / base["trials_per_hour"]
            entry["steady_speedup_vs_1_worker"] = entry["steady_trials_per_hour"] / base["steady_trials_per_hour"]
        if single:
            entry["steady_speedup_vs_1_worker_1_thread"] = (entry["steady_trials_per_hour"]
                                                            / single["steady_trials_per_hour"])
    for label, entry in results.items():
        print(f"{label:<36} steady state {entry.get('steady_speedup_vs_1_worker', float('nan')):.2f}x the 1-worker "
              f"(2 threads) rate, {entry.get('steady_speedup_vs_1_worker_1_thread', float('nan')):.2f}x the 1-worker "
              f"(1 thread) rate")
    if len(scores) > 1:
        print(f"identical trials and scores (4 decimals) in this run's configurations: "
              f"{len({json.dumps(v) for v in scores.values()}) == 1}")
    results["machine"] = ceiling
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
