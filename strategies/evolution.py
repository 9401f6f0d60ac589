"""Regularized (aging) evolution, Real et al. 2019 (AmoebaNet).

The first ``population`` candidates are random. Afterwards each candidate is a mutation (op or
input rewiring; identity optional) of the best of ``sample_size`` members drawn at random from the
population, and when a result comes back it joins the population while the *oldest* member
leaves. Ageing instead of removing the worst favours architectures that retrain well and keeps
exploring. Works asynchronously: results may arrive in any order.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gtn_search.errors import ConfigError
from gtn_search.registry import STRATEGIES
from search_spaces.architecture import Architecture
from search_spaces.space import MUTATIONS, CellSearchSpace
from strategies.base import Candidate, Strategy


def check_evolution_options(name: str, population: object, sample_size: object,
                            mutation_weights: dict[str, float] | None) -> dict[str, float]:
    """Refuse bad population / tournament / mutation options (one line naming the option); the weights."""
    if not isinstance(population, int) or isinstance(population, bool) or population < 2:
        raise ConfigError(f"{name}: 'population' must be an integer >= 2, got {population!r}")
    if not isinstance(sample_size, int) or isinstance(sample_size, bool) or not 1 <= sample_size <= population:
        raise ConfigError(f"{name}: 'sample_size' must be in [1, population={population}], got {sample_size!r}")
    weights = dict(mutation_weights or {"op": 0.5, "input": 0.5})
    unknown = [k for k in weights if k not in MUTATIONS]
    if unknown or any(not isinstance(v, (int, float)) or v < 0 for v in weights.values()) or not any(weights.values()):
        raise ConfigError(f"{name}: 'mutation_weights' takes non-negative weights for {', '.join(MUTATIONS)} "
                          f"(at least one > 0), got {weights}")
    return weights


@STRATEGIES.register("evolution")
class RegularizedEvolution(Strategy):
    """Regularized (aging) evolution: tournament of S from a population of P, the oldest dies."""

    def __init__(
        self,
        space: CellSearchSpace,
        seed: int = 0,
        population: int = 100,
        sample_size: int = 25,
        mutation_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__(space, seed)
        weights = check_evolution_options("evolution", population, sample_size, mutation_weights)
        self.population_size = population
        self.sample_size = sample_size
        self.mutation_weights = weights
        self.population: deque[tuple[Architecture, float]] = deque()
        self._initial_asked = 0

    def _ask(self) -> Architecture:
        if self._initial_asked < self.population_size or not self.population:
            self._initial_asked += 1
            return self.space.sample(self.rng)
        members = list(self.population)
        k = min(self.sample_size, len(members))
        picks = self.rng.choice(len(members), size=k, replace=False)
        parent = max((members[int(i)] for i in picks), key=lambda m: m[1])[0]
        return self.space.mutate(parent, self.rng, weights=self.mutation_weights)

    def _tell(self, candidate: Candidate, score: float | None) -> None:
        if score is None:
            return
        self.population.append((candidate.architecture, score))
        while len(self.population) > self.population_size:
            self.population.popleft()

    def _state(self) -> dict[str, Any]:
        return {
            "initial_asked": self._initial_asked,
            "population": [[self.encode(a), s] for a, s in self.population],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._initial_asked = int(state["initial_asked"])
        self.population = deque((self.decode(v), float(s)) for v, s in state["population"])
