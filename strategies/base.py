"""The Strategy contract: ask/tell with several candidates in flight, and a resumable state.

Template method (as in nevergrad): the public :meth:`Strategy.ask`, :meth:`Strategy.tell`,
:meth:`Strategy.state_dict` and :meth:`Strategy.load_state_dict` are fixed; a strategy overrides
small hooks:

* ``_ask() -> Architecture`` - propose the next architecture (use ``self.rng`` and ``self.space``);
* ``_tell(candidate, score)`` - learn from a finished candidate (``score`` is None if it failed);
* ``_state() -> dict`` / ``_load_state(dict)`` - the strategy's own JSON-serialisable state.

Scores are maximised (accuracy-like). Every random draw must come from ``self.rng`` (a seeded
``numpy.random.Generator`` whose state is saved with the strategy), which is what makes a strategy
reproducible and resumable. Strategies never touch torch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
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

    def __init__(self, space: CellSearchSpace, seed: int = 0) -> None:
        if not isinstance(space, CellSearchSpace):
            raise ConfigError(f"a strategy needs a CellSearchSpace, got {type(space).__name__}")
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self._asked = 0
        self._told = 0
        self._pending: dict[int, Architecture] = {}

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

    def tell(self, number: int, score: float | None) -> None:
        """Report the score of candidate ``number`` (None, NaN or inf: the evaluation failed)."""
        if number not in self._pending:
            raise ConfigError(f"tell: candidate {number} was not asked or was already told")
        arch = self._pending.pop(number)
        if score is not None and not math.isfinite(score):
            score = None
        self._tell(Candidate(number, arch), None if score is None else float(score))
        self._told += 1

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
            "own": self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (the same space and options are assumed)."""
        if state.get("strategy") != type(self).__name__:
            raise ConfigError(f"saved strategy state is for {state.get('strategy')!r}, not {type(self).__name__}")
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

    def _tell(self, candidate: Candidate, score: float | None) -> None:
        """Learn from a result (default: nothing to learn)."""

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
