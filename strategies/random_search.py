"""Random search: every candidate a uniform sample of the space (the paper's GTN-NAS strategy)."""

from __future__ import annotations

from gtn_search.registry import STRATEGIES
from search_spaces.architecture import Architecture
from strategies.base import Strategy


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Uniform random sampling of the search space (with any number of objectives: it ignores them)."""

    multi_objective = True

    def _ask(self) -> Architecture:
        return self.space.sample(self.rng)
