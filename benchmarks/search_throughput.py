"""Benchmark: GTN-evaluator trials per hour with 1 and 2 local workers, and on a Dask LocalCluster.

    python benchmarks/search_throughput.py --trials 24 --out benchmarks/results/search_throughput.json

Each configuration runs the same random search (same seed, so the same architectures) with the
GTN evaluator on the quickstart teaching set and the ``mnist-tiny`` blueprint, in a fresh study.
Target: >= 1.7x the trials per hour with 2 workers as with 1 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from gtn_search.cli.quickstart import shipped_teaching_set
from gtn_search.runner import run_search
from gtn_search.search_config import SearchConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--teaching-set", default=None, help="default: the shipped quickstart teaching set")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="benchmarks/results/search_throughput.json")
    args = parser.parse_args()
    teaching = args.teaching_set or str(shipped_teaching_set())
    runs = {"local, 1 worker (2 threads)": {"workers": 1, "threads_per_worker": 2},
            "local, 2 workers (1 thread each)": {"workers": 2, "threads_per_worker": 1},
            "dask LocalCluster, 2 workers": {"workers": 2, "threads_per_worker": 1, "executor": "dask"}}
    results = {}
    scores = {}
    for label, extra in runs.items():
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
            scores[label] = [(t.number, t.hash, t.score) for t in study.trials()]
            study.close()
        per_hour = 3600 * summary.evaluated / seconds
        results[label] = {"trials": summary.evaluated, "seconds": seconds, "trials_per_hour": per_hour}
        print(f"{label:<36} {summary.evaluated} trials in {seconds:6.1f} s = {per_hour:7.0f} trials/hour", flush=True)
    base = results["local, 1 worker (2 threads)"]["trials_per_hour"]
    for entry in results.values():
        entry["speedup_vs_1_worker"] = entry["trials_per_hour"] / base
    same = len({json.dumps(v) for v in scores.values()}) == 1
    print(f"2 local workers: {results['local, 2 workers (1 thread each)']['speedup_vs_1_worker']:.2f}x; "
          f"Dask: {results['dask LocalCluster, 2 workers']['speedup_vs_1_worker']:.2f}x; "
          f"identical trials and scores in all three: {same}")
    results["identical_trials"] = same
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
