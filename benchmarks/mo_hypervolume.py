"""Benchmark: hypervolume of the front found at equal budget, multi-objective strategies vs random.

    python benchmarks/mo_hypervolume.py --trials 300 1000 --out benchmarks/results/mo_hypervolume.json

A strategy-level ask/tell loop (no search runner, one candidate in flight), the same number of
trials per strategy (each budget of ``--trials``), seeds 0, 1, 2. The figure of merit is the hypervolume of every result a
strategy obtained (its whole history, not only its last population), from a fixed reference point.

Problems (both over the ``gtn-nas`` space, values maximised):

* ``toy``: (agreement with hidden target A, agreement with hidden target B): the fraction of the
  30 choices equal to a target's; the targets are random architectures (seeds 101, 202) and
  conflict where they differ. Reference point (0, 0); the best possible hypervolume is below 1.
* ``synthetic-params``: (the ``synthetic`` evaluator's score: agreement with its hidden target,
  ``target_seed`` 0; minus the parameter count of the network the ``mnist-search`` blueprint
  builds, in millions). Parameters are counted on the built network (cached per architecture
  hash); random samples of gtn-nas have 0.03-0.18 M, the largest network found (every op
  ``conv_1x7_7x1``) 0.38 M. Reference point (0, -0.4): every architecture lies inside it.

Strategies: ``random``; ``mo-evolution`` (P=20, S=5, removal ``worst``, the default, and
``oldest``: ageing); ``ng:DE`` and ``ng:NGOpt`` in Nevergrad's multi-objective mode (budget =
trials). Results (table printed, JSON saved) are quoted in ``strategies/pareto_evolution.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gtn_search.errors import ConfigError
from gtn_search.pareto import hypervolume, pareto_front
from search_spaces.architecture import Architecture
from search_spaces.presets import get_space
from strategies import Strategy, make_strategy

SPACE = get_space("gtn-nas")
SEEDS = (0, 1, 2)
BLUEPRINT = "mnist-search"
#: label -> (strategy name, options; ``budget`` is added for ng: strategies)
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "mo-evolution": ("mo-evolution", {"population": 20, "sample_size": 5}),
    "mo-evolution/oldest": ("mo-evolution", {"population": 20, "sample_size": 5, "removal": "oldest"}),
    "ng:DE": ("ng:DE", {}),
    "ng:NGOpt": ("ng:NGOpt", {}),
}


def _target(seed: int) -> list[int]:
    return SPACE.encode(SPACE.sample(np.random.default_rng(seed)))


TARGET_A, TARGET_B = _target(101), _target(202)


def agreement(arch: Architecture, target: list[int]) -> float:
    """Fraction of the architecture's choices equal to ``target``'s."""
    vector = SPACE.encode(arch)
    return sum(a == b for a, b in zip(vector, target)) / len(vector)


def toy_objectives(arch: Architecture) -> tuple[float, float]:
    """The toy problem: agreement with hidden target A and with hidden target B (both maximised)."""
    return agreement(arch, TARGET_A), agreement(arch, TARGET_B)


class SyntheticAndParams:
    """(``synthetic`` evaluator score, minus millions of parameters on the mnist-search blueprint)."""

    def __init__(self, target_seed: int = 0) -> None:
        from gtn_search.evaluators.synthetic import SyntheticEvaluator
        from search_spaces.blueprint import blueprint_preset

        self.evaluator = SyntheticEvaluator({"space": "gtn-nas", "target_seed": target_seed})
        self.blueprint = blueprint_preset(BLUEPRINT)
        self._params: dict[str, int] = {}

    def params(self, arch: Architecture) -> int:
        """Trainable parameters of the network the blueprint builds (cached by architecture hash)."""
        if arch.hash not in self._params:
            from search_spaces.network import build, count_parameters

            self._params[arch.hash] = count_parameters(build(arch, self.blueprint, seed=0))
        return self._params[arch.hash]

    def __call__(self, arch: Architecture) -> tuple[float, float]:
        result = self.evaluator.evaluate(arch, self.blueprint, seed=0)
        if result.status != "ok" or result.score is None:
            raise ConfigError(f"synthetic evaluator failed on {arch.short_hash}: {result}")
        return float(result.score), -self.params(arch) / 1e6


#: name -> (objective function factory, reference point)
PROBLEMS: dict[str, tuple[Callable[[], Callable[[Architecture], tuple[float, float]]], tuple[float, float]]] = {
    "toy": (lambda: toy_objectives, (0.0, 0.0)),
    "synthetic-params": (SyntheticAndParams, (0.0, -0.4)),
}


def make(label: str, seed: int, trials: int) -> Strategy:
    """The strategy of ``label`` for two objectives."""
    name, options = STRATEGIES[label]
    options = dict(options)
    if name.startswith("ng:"):
        options["budget"] = trials
    strategy = make_strategy(name, SPACE, seed, **options)
    strategy.set_objectives(2)
    return strategy


def run(strategy: Strategy, objectives: Callable[[Architecture], tuple[float, float]],
        trials: int) -> list[tuple[float, float]]:
    """Ask/tell ``trials`` candidates one at a time; the values of every result."""
    values = []
    for _ in range(trials):
        candidate = strategy.ask()
        value = objectives(candidate.architecture)
        strategy.tell(candidate.number, value)
        values.append(value)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[300, 1000], help="budgets (trials per search)")
    parser.add_argument("--out", default="benchmarks/results/mo_hypervolume.json")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    args = parser.parse_args()
    if min(args.trials) < 1:
        parser.error("--trials must be >= 1")
    report: dict[str, Any] = {"trials": args.trials, "seeds": list(SEEDS), "space": SPACE.name,
                              "blueprint": BLUEPRINT, "results": []}
    for problem, trials in ((p, t) for p in args.problems for t in args.trials):
        factory, reference = PROBLEMS[problem]
        objectives = factory()
        rows: dict[str, Any] = {}
        print(f"\n{problem}: hypervolume of all {trials} results, reference point {reference}")
        print(f"{'strategy':<22} {'mean +- sd':>18}   per seed {list(SEEDS)}   front sizes   seconds")
        for label in args.strategies:
            volumes, fronts, seconds = [], [], []
            for seed in SEEDS:
                start = time.perf_counter()
                values = run(make(label, seed, trials), objectives, trials)
                seconds.append(time.perf_counter() - start)
                volumes.append(hypervolume(values, reference))
                fronts.append(sorted({tuple(values[i]) for i in pareto_front(values)}))
            mean, sd = float(np.mean(volumes)), float(np.std(volumes, ddof=1))
            rows[label] = {"strategy": STRATEGIES[label][0], "options": STRATEGIES[label][1],
                           "hypervolume": volumes, "mean": mean, "sd": sd, "seconds": seconds,
                           "fronts": [[list(p) for p in f] for f in fronts]}
            print(f"{label:<22} {mean:>9.4f} +- {sd:.4f}   {' '.join(f'{v:.4f}' for v in volumes)}   "
                  f"{' '.join(str(len(f)) for f in fronts):>11}   {sum(seconds):7.1f}")
        report["results"].append({"problem": problem, "trials": trials, "reference": list(reference),
                                  "strategies": rows})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
