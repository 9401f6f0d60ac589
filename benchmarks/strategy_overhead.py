"""Benchmark: framework overhead per trial (ask + tell + SQLite study) with a zero-cost evaluator.

    python benchmarks/strategy_overhead.py --trials 10000 --out benchmarks/results/strategy_overhead.json

Runs the real search runner (inline executor, a fresh SQLite study in a temporary folder, WAL,
snapshots every 25 events) with the ``synthetic`` evaluator, whose score costs microseconds, so
the wall time per trial is the framework's own cost. Target: <= 2 ms per trial for random search
and regularized evolution.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from gtn_search.errors import ConfigError
from gtn_search.runner import run_search
from gtn_search.search_config import SearchConfig
from gtn_search.storage import Study

#: label -> (strategy name, options)
STRATEGIES = {
    "random": ("random", {}),
    "evolution": ("evolution", {"population": 100, "sample_size": 25}),
    "ng:DiscreteOnePlusOne/categorical": ("ng:DiscreteOnePlusOne", {"encoding": "categorical"}),
    "ng:DiscreteOnePlusOne": ("ng:DiscreteOnePlusOne", {"encoding": "ordinal"}),
    "ng:NGOpt/categorical": ("ng:NGOpt", {"encoding": "categorical"}),
    "ng:NGOpt": ("ng:NGOpt", {"encoding": "ordinal"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--out", default="benchmarks/results/strategy_overhead.json")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    args = parser.parse_args()
    results = {}
    for label in args.strategies:
        name, options = STRATEGIES[label]
        with tempfile.TemporaryDirectory() as tmp:
            config = SearchConfig.model_validate({
                "study": str(Path(tmp) / "study.db"), "space": "gtn-nas", "blueprint": "mnist-tiny",
                "strategy": {"name": name, "options": options},
                "evaluator": {"name": "synthetic"}, "budget": {"trials": args.trials}, "seed": 0,
            })
            start = time.perf_counter()
            stopped = None
            try:
                run_search(config, progress=False)
            except ConfigError as exc:  # e.g. an optimizer that converged and only repeats itself
                stopped = str(exc)
            seconds = time.perf_counter() - start
            study = Study(config.study)
            trials, cached = len(study.trials()), study.counts().get("cached", 0)
            best = max((t.score for t in study.best(1)), default=float("nan"))
            study.close()
        ms = 1000 * seconds / trials
        results[label] = {"trials": trials, "seconds": seconds, "ms_per_trial": ms,
                          "duplicates_from_cache": cached, "best_score": best, "stopped": stopped}
        print(f"{label:<34} {trials} trials in {seconds:7.1f} s: {ms:6.2f} ms per trial "
              f"({cached} duplicates served from the cache, best synthetic score {best:.3f})"
              + (f"; stopped early: {stopped}" if stopped else ""), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and set(args.strategies) != set(STRATEGIES):  # a partial rerun updates those entries
        results = {**json.loads(out.read_text()), **results}
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
