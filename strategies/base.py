"""The Strategy contract: ask/tell with several candidates in flight, and a resumable state.

Template method (as in nevergrad): the public :meth:`Strategy.ask`, :meth:`Strategy.tell`,
:meth:`Strategy.state_dict` and :meth:`Strategy.load_state_dict` are fixed; a strategy overrides
small hooks:

* ``_ask() -> Architecture`` - propose the next architecture (use ``self.rng`` and ``self.space``);
* ``_tell(candidate, score)`` - learn from a finished candidate (``score`` is None if it failed);
* ``_tell_infeasible(candidate, violations)`` - a candidate broke a constraint and was never
  trained (default: told as a failure, ``_tell(candidate, None)``);
* ``_state() -> dict`` / ``_load_state(dict)`` - the strategy's own JSON-serialisable state.

Scores are maximised (accuracy-like). With several objectives (a search's ``objectives:``), a
strategy whose class sets ``multi_objective = True`` is told a tuple of values, one per objective
in the declared order, each oriented so that larger is better (a minimised objective such as
parameters arrives negated); :meth:`Strategy.set_objectives` tells it how many before the first
ask (``self.num_objectives``). A single-objective strategy refuses several objectives; the search
then scalarises them (``scalarization:``) or stops with a clear message. Every random draw must come from ``self.rng`` (a seeded
``numpy.random.Generator`` whose state is saved with the strategy), which is what makes a strategy
reproducible and resumable. Strategies never touch torch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from gtn_search.errors import ConfigError
from search_spaces.architecture import Architecture
from search_spaces.space import CellSearchSpace


@dataclass(frozen=True)
class Candidate:
    """An architecture handed out by :meth:`Strategy.ask`, identified by its ask number."""

    number: int
    architecture: Architecture


class Strategy(ABC):
    """Base class of every search strategy (subclass it and override the hooks)."""

    #: False for strategies that need each result before proposing the next candidate.
    supports_parallel: ClassVar[bool] = True
    #: True for strategies that can be told a tuple of objective values (all maximised).
    multi_objective: ClassVar[bool] = False

    def __init__(self, space: CellSearchSpace, seed: int = 0) -> None:
        if not isinstance(space, CellSearchSpace):
            raise ConfigError(f"a strategy needs a CellSearchSpace, got {type(space).__name__}")
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self._asked = 0
        self._told = 0
        self._pending: dict[int, Architecture] = {}
        #: values in each tell (1: a float; more: a tuple, see :meth:`set_objectives`)
        self.num_objectives = 1

    def set_objectives(self, count: int) -> None:
        """Declare how many maximised objective values each :meth:`tell` carries (before any ask)."""
        if not isinstance(count, int) or count < 1:
            raise ConfigError(f"a strategy needs at least one objective, got {count!r}")
        if count > 1 and not self.multi_objective:
            raise ConfigError(
                f"strategy '{self.registered_name()}' optimises a single objective but the search declares {count}; "
                f"add 'scalarization: {{weights: {{...}}}}' to the search config to combine them, or choose a "
                f"multi-objective strategy (mo-evolution, random, ng:<Optimizer>, optuna:NSGAIISampler)")
        if self._asked and count != self.num_objectives:
            raise ConfigError("set_objectives must be called before the first ask")
        self.num_objectives = count

    @classmethod
    def registered_name(cls) -> str:
        """The name this strategy is registered under (the class name if it is not registered)."""
        from gtn_search.registry import STRATEGIES

        return next((e.name for e in STRATEGIES.entries() if e.obj is cls), cls.__name__)

    # -- the fixed public contract ----------------------------------------------------------------
    def ask(self) -> Candidate:
        """The next architecture to evaluate (any number may be in flight at once)."""
        arch = self._ask()
        if not isinstance(arch, Architecture):
            raise TypeError(f"{type(self).__name__}._ask() must return an Architecture, got {type(arch).__name__}")
        candidate = Candidate(self._asked, arch)
        self._pending[candidate.number] = arch
        self._asked += 1
        return candidate

    def tell(self, number: int, score: float | Sequence[float] | None) -> None:
        """Report the result of candidate ``number``: its score (a tuple of maximised values with
        several objectives); None, NaN or inf anywhere: the evaluation failed."""
        value = self._checked_value(score)
        arch = self._take(number)
        self._tell(Candidate(number, arch), value)
        self._told += 1

    def tell_infeasible(self, number: int, violations: dict[str, str]) -> None:
        """Report that candidate ``number`` broke constraints (``{objective: "value > bound"}``)
        and was not evaluated."""
        arch = self._take(number)
        self._tell_infeasible(Candidate(number, arch), dict(violations))
        self._told += 1

    def _take(self, number: int) -> Architecture:
        if number not in self._pending:
            raise ConfigError(f"tell: candidate {number} was not asked or was already told")
        return self._pending.pop(number)

    def _checked_value(self, score: float | Sequence[float] | None) -> Any:
        if score is None:
            return None
        if self.num_objectives == 1:
            if isinstance(score, (list, tuple, np.ndarray)):
                if len(score) != 1:
                    raise ConfigError(f"tell: expected one objective value, got {len(score)}")
                score = score[0]
            value = float(score)  # type: ignore[arg-type]
            return value if math.isfinite(value) else None
        if not isinstance(score, (list, tuple, np.ndarray)) or len(score) != self.num_objectives:
            raise ConfigError(f"tell: expected {self.num_objectives} objective values, got {score!r}")
        values = tuple(float(v) for v in score)
        return values if all(math.isfinite(v) for v in values) else None

    @property
    def pending(self) -> dict[int, Architecture]:
        """Candidates asked but not yet told."""
        return dict(self._pending)

    @property
    def num_asked(self) -> int:
        return self._asked

    @property
    def num_told(self) -> int:
        return self._told

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: RNG, counters, pending candidates and the strategy's own state."""
        return {
            "strategy": type(self).__name__,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "asked": self._asked,
            "told": self._told,
            "pending": {str(n): self.space.encode(a) for n, a in self._pending.items()},
            "objectives": self.num_objectives,
            "own": self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (the same space and options are assumed)."""
        if state.get("strategy") != type(self).__name__:
            raise ConfigError(f"saved strategy state is for {state.get('strategy')!r}, not {type(self).__name__}")
        if int(state.get("objectives", 1)) != self.num_objectives:
            raise ConfigError(f"saved strategy state has {state.get('objectives', 1)} objective(s), this search "
                              f"{self.num_objectives}")
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self._asked = int(state["asked"])
        self._told = int(state["told"])
        self._pending = {int(n): self.space.decode(v) for n, v in state["pending"].items()}
        self._load_state(state["own"])

    # -- hooks ----------------------------------------------------------------------------------
    @abstractmethod
    def _ask(self) -> Architecture:
        """Propose an architecture."""

    def _tell(self, candidate: Candidate, score: Any) -> None:
        """Learn from a result: a float, a tuple of floats with several objectives, None if it failed
        (default: nothing to learn)."""

    def _tell_infeasible(self, candidate: Candidate, violations: dict[str, str]) -> None:
        """Learn that a candidate broke constraints (default: as if it had failed)."""
        self._tell(candidate, None)

    def _state(self) -> dict[str, Any]:
        """The strategy's own state beyond RNG and pending candidates (JSON-serialisable)."""
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`_state`."""

    # -- helpers for subclasses -------------------------------------------------------------------
    def encode(self, arch: Architecture) -> list[int]:
        return self.space.encode(arch)

    def decode(self, vector: list[int]) -> Architecture:
        return self.space.decode(vector)


def replay_mismatch(name: str, first: list[Any], second: list[Any], instead: str) -> str | None:
    """The one-line refusal of a strategy whose two probe runs with one seed proposed different
    candidates (None when they agree); ``instead`` names what to choose, e.g. ``another optimizer``."""
    if first == second:
        return None
    ask = next((i for i, (a, b) in enumerate(zip(first, second)) if a != b), min(len(first), len(second)))
    return (f"strategy {name} cannot be resumed: run twice with the same seed it proposed different candidates "
            f"at ask {ask} (it draws randomness its seed does not fix), so a study made with it could never be "
            f"extended or resumed; choose {instead}")
