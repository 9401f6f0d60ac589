"""Benchmark: GTN-evaluator trials per hour with 1 and 2 local workers, and on a Dask LocalCluster.

    python benchmarks/search_throughput.py --trials 120 --rounds 3 --out benchmarks/results/search_throughput.json

Each configuration runs the same random search (same seed, so the same architectures) with the
GTN evaluator on the quickstart teaching set and the ``mnist-tiny`` blueprint, in a fresh study.
Two rates are reported: end to end (the whole ``run_search`` call, worker start-up included: each
spawned worker imports torch and loads the dataset, several seconds on this machine) and steady
state (trials finished after every worker has finished its first one, over the time from then to
the last trial; the rate a long search runs at).

The configurations run in interleaved rounds (every round runs each of them once, with
``trials / rounds`` trials, in a rotated order) and speed-ups are taken between runs of the same
round: a shared VM's speed drifts by 20% or more over the minutes a benchmark takes, and one
configuration measured after another would carry that drift into the ratio.
Target: >= 1.7x the trials per hour with 2 local workers as with 1 on a 2-core machine (a local
worker runs one torch thread; the speed-up against one worker using both cores with 2 threads is
reported too).

The machine's own ceiling is measured before each round (no torch, no shared data): a cache-resident
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


def _run(key: str, trials: int, teaching: str, data_root: str | None) -> dict:
    """One search of ``trials`` trials in configuration ``key``, in a fresh study."""
    return timed_search(RUNS[key][1], trials, teaching, data_root)


def timed_search(extra: dict, trials: int, teaching: str, data_root: str | None) -> dict:
    """One seeded random search (GTN evaluator, ``mnist-tiny``) of ``trials`` trials with the search
    settings ``extra`` (workers, executor, device, ...), in a fresh study: its seconds, end to end and
    in the steady state, and every trial's seconds and score."""
    from gtn_search.storage import Study

    with tempfile.TemporaryDirectory() as tmp:
        config = SearchConfig.model_validate({
            "study": str(Path(tmp) / "study.db"), "space": "gtn-nas", "blueprint": "mnist-tiny",
            "strategy": "random", "evaluator": {"name": "gtn", "options": {"teaching_set": teaching,
                                                                            "val_size": 1000}},
            "budget": {"trials": trials}, "seed": 0, "data_root": data_root, **extra,
        })
        start = time.perf_counter()
        summary = run_search(config, progress=False)
        seconds = time.perf_counter() - start
        study = Study(config.study)
        done = study.trials()
        study.close()
    workers = extra["workers"]
    finished = sorted(t.finished_at for t in done if t.finished_at is not None)
    return {
        "trials": summary.evaluated, "seconds": seconds,
        # steady state: the trials finished after every worker finished its first one
        "steady_trials": len(finished) - workers, "steady_seconds": finished[-1] - finished[workers - 1],
        "trial_seconds": [t.wall_seconds for t in done if t.wall_seconds is not None],
        "scores": [(t.number, t.hash, round(t.score, 4) if t.score is not None else None) for t in done],
    }


def _spread(values: list[float]) -> dict[str, float | list[float]]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "per_round": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120, help="trials per configuration, over all rounds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds: every round runs every configuration (trials/rounds trials "
                             "each, in a rotated order), so a change of the machine's speed during the benchmark "
                             "hits all of them alike; ratios are taken within a round")
    parser.add_argument("--teaching-set", default=None, help="default: the shipped quickstart teaching set")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="benchmarks/results/search_throughput.json")
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS),
                        help="run only these configurations")
    args = parser.parse_args()
    teaching = args.teaching_set or str(shipped_teaching_set())
    per_run = -(-args.trials // args.rounds)
    if per_run < 8:
        parser.error(f"--trials / --rounds gives {per_run} trials per run; the steady-state rate needs at least 8")
    keys = [k for k in RUNS if k in args.only]
    runs: dict[str, list[dict]] = {k: [] for k in keys}
    ceilings = []
    for r in range(args.rounds):
        print(f"round {r + 1} of {args.rounds}", flush=True)
        ceilings.append(machine_ceiling())
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            run = _run(key, per_run, teaching, args.data_root)
            runs[key].append(run)
            print(f"  {RUNS[key][0]:<36} {run['trials']} trials in {run['seconds']:6.1f} s, steady state "
                  f"{3600 * run['steady_trials'] / run['steady_seconds']:7.0f} trials/hour, "
                  f"{statistics.mean(run['trial_seconds']):.2f} s per trial", flush=True)

    def steady(key: str, r: int) -> float:
        run = runs[key][r]
        return 3600 * run["steady_trials"] / run["steady_seconds"]

    singles = [k for k in ("1w1t", "1w2t") if k in runs]
    results: dict[str, object] = {"settings": {"trials": per_run * args.rounds, "rounds": args.rounds,
                                               "trials_per_run": per_run, "val_size": 1000,
                                               "blueprint": "mnist-tiny", "strategy": "random", "seed": 0}}
    configs: dict[str, dict] = {}
    for key in keys:
        rs = runs[key]
        entry: dict[str, object] = {
            "key": key, "trials": sum(x["trials"] for x in rs), "seconds": sum(x["seconds"] for x in rs),
            "trials_per_hour": 3600 * sum(x["trials"] for x in rs) / sum(x["seconds"] for x in rs),
            "steady_trials_per_hour": 3600 * sum(x["steady_trials"] for x in rs) / sum(x["steady_seconds"] for x in rs),
            "mean_trial_seconds": statistics.mean(s for x in rs for s in x["trial_seconds"]),
            "steady_trials_per_hour_per_round": [steady(key, r) for r in range(args.rounds)],
        }
        for base in singles:
            entry[f"steady_speedup_vs_{base}"] = _spread([steady(key, r) / steady(base, r) for r in range(args.rounds)])
        configs[RUNS[key][0]] = entry
    results["configs"] = configs
    for label, entry in configs.items():
        line = f"{label:<36} {entry['steady_trials_per_hour']:7.0f} trials/hour steady state"
        for base in singles:
            x = entry[f"steady_speedup_vs_{base}"]
            line += (f"; {x['median']:.2f}x {RUNS[base][0].removeprefix('local, ')} (median of {args.rounds} "
                     f"rounds, range {x['min']:.2f}-{x['max']:.2f})")
        print(line)
    groups: dict[int, set[str]] = {}  # torch threads per trial -> the distinct score lists of its runs
    for key, rs in runs.items():
        groups.setdefault(RUNS[key][1]["threads_per_worker"], set()).update(json.dumps(r["scores"]) for r in rs)
    identical = all(len(v) == 1 for v in groups.values())
    results["identical_trials"] = identical
    print(f"identical trials and scores (4 decimals) in every run with the same torch threads per trial: {identical}")
    results["machine"] = ceilings
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
