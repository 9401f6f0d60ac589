"""Benchmark: each Optuna sampler under both encodings of the choice vector, on the strategy-suite objective.

    nice -n 10 python benchmarks/optuna_encodings.py --out benchmarks/results/optuna_encodings.json
    python benchmarks/optuna_encodings.py --samplers TPESampler CmaEsSampler --seeds 1

The objective is the shared strategy suite's (``tests/test_strategies.py``): the fraction of a
hidden target architecture's choices matched (gtn-nas space, target sampled with seed 99). For
each sampler, encoding (``categorical``, ``ordinal``) and seed: the best score within ``--trials``
trials, told one at a time, and the seconds taken. The default encoding of each sampler in
``strategies/optuna_adapter.py`` is the better one here.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces.presets import get_space
from strategies import make_strategy

SPACE = get_space("gtn-nas")
TARGET = SPACE.encode(SPACE.sample(np.random.default_rng(99)))
SAMPLERS = ["TPESampler", "NSGAIISampler", "NSGAIIISampler", "CmaEsSampler", "QMCSampler", "RandomSampler",
            "GPSampler", "BruteForceSampler"]


def objective(arch: Any) -> float:
    v = SPACE.encode(arch)
    return sum(a == b for a, b in zip(v, TARGET)) / len(v)


def best_score(sampler: str, encoding: str, seed: int, trials: int) -> float:
    s = make_strategy(f"optuna:{sampler}", SPACE, seed, encoding=encoding)
    best = 0.0
    for _ in range(trials):
        c = s.ask()
        score = objective(c.architecture)
        best = max(best, score)
        s.tell(c.number, score)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", nargs="+", default=SAMPLERS)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    chance = [objective(SPACE.sample(rng)) for _ in range(2000)]
    results: dict[str, Any] = {"trials": args.trials, "seeds": args.seeds, "python": platform.python_version(),
                               "chance": [float(np.mean(chance)), float(np.std(chance))], "samplers": {}}
    for sampler in args.samplers:
        for encoding in ("categorical", "ordinal"):
            start = time.monotonic()
            best = [best_score(sampler, encoding, seed, args.trials) for seed in range(args.seeds)]
            seconds = (time.monotonic() - start) / args.seeds
            results["samplers"].setdefault(sampler, {})[encoding] = {"best": best, "seconds_per_run": seconds}
            print(f"{sampler:<18} {encoding:<12} best {min(best):.2f}-{max(best):.2f} (mean {np.mean(best):.3f})"
                  f"  {seconds:.1f} s per run", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
