"""How the next candidate is CHOSEN: the Strategy base and the built-in strategies.

Built-ins: ``random`` (random search), ``evolution`` (regularized evolution), ``mo-evolution``
(multi-objective regularized evolution, NSGA-II order) and ``nevergrad``
(any Nevergrad optimizer; also spelt ``ng:<Optimizer>``). Add your own with
``@STRATEGIES.register("name")`` or an entry point in the ``gtn_search.strategies`` group.
"""

from __future__ import annotations

from strategies.base import Candidate, Strategy
from strategies.evolution import RegularizedEvolution
from strategies.nevergrad_adapter import NevergradStrategy, make_strategy
from strategies.pareto_evolution import ParetoEvolution
from strategies.random_search import RandomSearch

__all__ = ["Candidate", "NevergradStrategy", "ParetoEvolution", "RandomSearch", "RegularizedEvolution", "Strategy", "make_strategy"]
