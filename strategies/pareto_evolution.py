"""Multi-objective regularized evolution (``mo-evolution``): Real et al. 2019 with NSGA-II's order.

Regularized evolution (:mod:`strategies.evolution`) made multi-objective as NSGA-II (Deb et al.
2002) ranks candidates. Every result is a tuple of maximised values (one per objective; a float
with one objective):

* the first ``population`` candidates are random samples of the space;
* every later candidate is a mutation (op or input rewiring, as in ``evolution``) of the winner of
  a tournament among ``sample_size`` members drawn at random without replacement. Members are
  compared by **NSGA-II's crowded-comparison order**: the lower Pareto rank wins
  (:func:`gtn_search.pareto.non_dominated_ranks` over the whole population), then the larger
  crowding distance within its front (:func:`gtn_search.pareto.crowding_distances`); a tie of both
  goes to the member drawn first (the draw is random, so ties are broken at random);
* a result joins the population when it arrives (asynchronously, in any order); failed (None,
  NaN) and infeasible candidates never join. While the population is larger than
  ``population``, one member leaves, chosen by ``removal``:

  - ``"worst"`` (default): the worst by NSGA-II's order: a member of the last front with the
    smallest crowding distance; **tie rule: the oldest of the tied members leaves** (ageing as
    the tie-breaker). The front's two extremes per objective have infinite crowding, so the
    extremes of the last front stay as long as it has interior members;
  - ``"oldest"``: the oldest member leaves, as in single-objective regularized evolution (ageing);
    the Pareto order then only chooses parents.

Why ``"worst"`` is the default, measured by ``benchmarks/mo_hypervolume.py`` (gtn-nas, P=20, S=5,
hypervolume of every result from a fixed reference point, mean +- sd over seeds 0, 1, 2; results
in ``benchmarks/results/mo_hypervolume.json``):

==========================  ==============  ==============  ==============  ==============
problem, trials             ``worst``       ``oldest``      random          ng:DE
==========================  ==============  ==============  ==============  ==============
toy (A vs B), 300           0.139 +- 0.053  0.151 +- 0.014  0.083 +- 0.009  0.099 +- 0.010
toy (A vs B), 1000          0.320 +- 0.062  0.219 +- 0.019  0.094 +- 0.003  0.131 +- 0.015
synthetic vs params, 300    0.183 +- 0.029  0.177 +- 0.006  0.116 +- 0.015  0.113 +- 0.005
synthetic vs params, 1000   0.251 +- 0.021  0.209 +- 0.012  0.118 +- 0.016  0.146 +- 0.014
==========================  ==============  ==============  ==============  ==============

(toy: agreement with hidden target A vs with hidden target B, reference (0, 0); synthetic vs
params: the ``synthetic`` evaluator's score vs minus millions of parameters on the mnist-search
blueprint, reference (0, -0.4).) At 300 trials the two removals are equal within their spread
(toy, seeds 0-7, sd with ddof 0: 0.147 +- 0.032 vs 0.144 +- 0.010); from 1000 trials on, removing
the worst is clearly ahead (seeds 0-7: 0.317 +- 0.045 vs 0.233 +- 0.018): ageing keeps the population a
sliding window of recent children and so throws front members away, while the crowding distance
already keeps the population spread along the front. Ageing stays available as
``removal: oldest``.

With one objective the ranks are plain score ranks, the member that leaves has the lowest score,
and ``mo-evolution`` is a steady-state elitist evolution; it passes the shared strategy suite of
``tests/test_strategies.py``.

State: the population (choice vectors, values, birth numbers), how many random candidates were
handed out and the birth counter, as JSON; a restored strategy continues exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gtn_search.errors import ConfigError
from gtn_search.pareto import crowding_distances, non_dominated_ranks
from gtn_search.registry import STRATEGIES
from search_spaces.architecture import Architecture
from search_spaces.space import CellSearchSpace
from strategies.base import Candidate, Strategy
from strategies.evolution import check_evolution_options

#: what leaves an over-full population
REMOVALS = ("worst", "oldest")


class Member:
    """One member of the population: its architecture, maximised values and birth number."""

    __slots__ = ("architecture", "birth", "values")

    def __init__(self, architecture: Architecture, values: tuple[float, ...], birth: int) -> None:
        self.architecture = architecture
        self.values = values
        self.birth = birth


def nsga2_keys(values: list[tuple[float, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Pareto rank (0 = front) and crowding distance within its front, for each row of ``values``."""
    arr = np.asarray(values, dtype=float)
    ranks = non_dominated_ranks(arr)
    crowding = np.zeros(len(arr))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distances(arr[members])
    return ranks, crowding


@STRATEGIES.register("mo-evolution")
class ParetoEvolution(Strategy):
    """Multi-objective regularized evolution: NSGA-II tournament of S from P, the worst (or oldest) leaves."""

    multi_objective = True

    def __init__(
        self,
        space: CellSearchSpace,
        seed: int = 0,
        population: int = 100,
        sample_size: int = 25,
        mutation_weights: dict[str, float] | None = None,
        removal: str = "worst",
    ) -> None:
        super().__init__(space, seed)
        weights = check_evolution_options("mo-evolution", population, sample_size, mutation_weights)
        if removal not in REMOVALS:
            raise ConfigError(f"mo-evolution: 'removal' must be one of {', '.join(REMOVALS)}, got {removal!r}")
        self.population_size = population
        self.sample_size = sample_size
        self.mutation_weights = weights
        self.removal = removal
        self.population: list[Member] = []
        self._initial_asked = 0
        self._births = 0

    # -- NSGA-II order ------------------------------------------------------------------------------
    def _keys(self) -> tuple[np.ndarray, np.ndarray]:
        return nsga2_keys([m.values for m in self.population])

    def _ask(self) -> Architecture:
        if self._initial_asked < self.population_size or not self.population:
            self._initial_asked += 1
            return self.space.sample(self.rng)
        k = min(self.sample_size, len(self.population))
        picks = [int(i) for i in self.rng.choice(len(self.population), size=k, replace=False)]
        ranks, crowding = self._keys()
        # lower rank, then larger crowding; ties: the first drawn (min keeps the first of equals)
        winner = min(picks, key=lambda i: (ranks[i], -crowding[i]))
        return self.space.mutate(self.population[winner].architecture, self.rng, weights=self.mutation_weights)

    def _tell(self, candidate: Candidate, score: Any) -> None:
        if score is None:
            return  # failed (or infeasible: the base tells those as failures); it never joins
        values = (float(score),) if self.num_objectives == 1 else tuple(float(v) for v in score)
        self.population.append(Member(candidate.architecture, values, self._births))
        self._births += 1
        while len(self.population) > self.population_size:
            self.population.pop(self._leaver())

    def _leaver(self) -> int:
        """Index of the member that leaves: the oldest, or the worst by NSGA-II's order (ties: oldest)."""
        if self.removal == "oldest":
            return min(range(len(self.population)), key=lambda i: self.population[i].birth)
        ranks, crowding = self._keys()
        last = int(ranks.max())
        return min((i for i in range(len(self.population)) if ranks[i] == last),
                   key=lambda i: (crowding[i], self.population[i].birth))

    def pareto_front(self) -> list[tuple[Architecture, tuple[float, ...]]]:
        """The non-dominated members of the current population, oldest first."""
        if not self.population:
            return []
        ranks, _ = self._keys()
        return [(m.architecture, m.values) for m, r in zip(self.population, ranks) if r == 0]

    # -- state ----------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "initial_asked": self._initial_asked,
            "births": self._births,
            "removal": self.removal,
            "population": [[self.encode(m.architecture), list(m.values), m.birth] for m in self.population],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        if state.get("removal", self.removal) != self.removal:
            raise ConfigError(f"mo-evolution: saved state was made with removal {state['removal']!r}, "
                              f"this search has {self.removal!r}")
        self._initial_asked = int(state["initial_asked"])
        self._births = int(state["births"])
        self.population = [Member(self.decode(v), tuple(float(x) for x in values), int(birth))
                           for v, values, birth in state["population"]]
