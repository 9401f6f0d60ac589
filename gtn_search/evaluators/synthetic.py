"""A zero-cost synthetic objective: for testing strategies and measuring framework overhead."""

from __future__ import annotations

from pydantic import Field

from gtn_search.configio import StrictModel
from gtn_search.evaluators.base import Evaluator, Measurement
from gtn_search.registry import EVALUATORS
from gtn_search.seeding import numpy_rng
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.space import CellSearchSpace


class SyntheticConfig(StrictModel):
    """The hidden target is a random architecture of ``space`` drawn with ``target_seed``."""

    space: str | dict = "gtn-nas"
    target_seed: int = Field(default=0, ge=0)


@EVALUATORS.register("synthetic")
class SyntheticEvaluator(Evaluator):
    """Zero-cost score: fraction of choices equal to a hidden target architecture (no training)."""

    Config = SyntheticConfig

    def _target(self) -> tuple[CellSearchSpace, list[int]]:
        cached = getattr(self, "_cached", None)
        if cached is None:
            space = CellSearchSpace.from_mapping(self.config.space, where="evaluator 'synthetic' space")
            rng = numpy_rng(self.config.target_seed, "synthetic-target")
            cached = (space, space.encode(space.sample(rng)))
            self._cached = cached
        return cached

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_cached"}

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        space, target = self._target()
        vec = space.encode(arch)
        score = sum(a == b for a, b in zip(vec, target)) / len(vec)
        return Measurement(score=score, sgd_steps=0, images_seen=0, train_flops=0.0, eval_flops=0.0, params=0)
