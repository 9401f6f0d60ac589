"""How the next candidate is CHOSEN: the Strategy base and the built-in strategies.

Built-ins: ``random`` (random search), ``evolution`` (regularized evolution), ``mo-evolution``
(multi-objective regularized evolution, NSGA-II order), ``nevergrad`` (any Nevergrad optimizer;
also spelt ``ng:<Optimizer>``) and ``optuna`` (any Optuna sampler, e.g. TPE, NSGA-II, CMA-ES; also
spelt ``optuna:<Sampler>``; needs ``pip install 'gtn-search[optuna]'``). Add your own with
``@STRATEGIES.register("name")`` or an entry point in the ``gtn_search.strategies`` group.
"""

from __future__ import annotations

from strategies.base import Candidate, Strategy
from strategies.evolution import RegularizedEvolution
from strategies.nevergrad_adapter import NevergradStrategy, make_strategy
from strategies.optuna_adapter import OptunaStrategy
from strategies.pareto_evolution import ParetoEvolution
from strategies.random_search import RandomSearch

__all__ = ["Candidate", "NevergradStrategy", "OptunaStrategy", "ParetoEvolution", "RandomSearch",
           "RegularizedEvolution", "Strategy", "make_strategy"]
