"""The GTN evaluator: train the candidate for T steps on a teaching set, score on real validation data."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch
from pydantic import Field

from gtn_search.device import DeviceOption
from gtn_search.errors import ConfigError
from gtn_search.evaluators.base import (
    Measurement,
    SeedBatchingEvaluator,
    SweepClock,
    SweepPoint,
)
from gtn_search.evaluators.common import (
    build_candidates,
    candidate_blueprint,
    dataset_for,
    score_seeds,
    seed_measurements,
    validation_split,
)
from gtn_search.gtn.teaching_set import TeachingSet
from gtn_search.gtn.unroll import Params
from gtn_search.paths import ConfigPath
from gtn_search.registry import EVALUATORS
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint


class GTNEvaluatorConfig(DeviceOption):
    """Options of the GTN evaluator."""

    teaching_set: ConfigPath
    steps: int | None = Field(default=None, ge=1)
    val_size: int = Field(default=2000, ge=2)
    eval_batch: int = Field(default=1000, ge=2)
    #: the learner's base width C instead of the blueprint's (e.g. 16 for a 4-channel mnist-tiny:
    #: a wider learner, more compute per step, possibly a better ranking)
    channels: int | None = Field(default=None, ge=1, le=4096)
    #: independent initialisations per candidate (score = their mean, cost = their sum)
    seeds: int = Field(default=1, ge=1, le=64)
    #: train the seeds side by side as one stacked network (search_spaces.replicas); false: one by one
    batch_seeds: bool = True


@lru_cache(maxsize=4)
def _load_teaching_set(path: str, mtime: float, device: str) -> TeachingSet:
    return TeachingSet.load(path).to(torch.device(device))


def load_teaching_set(path: str, device: torch.device | None = None) -> TeachingSet:
    """A teaching set on ``device`` (default CPU), loaded once per process (reloaded if the file changes)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"evaluator 'gtn': teaching set {p} is a folder; give the file, e.g. {p / 'teaching_set.pt'}")
    if not p.is_file():
        raise ConfigError(f"evaluator 'gtn': teaching set {p} does not exist; meta-train one with "
                          f"'gtn-search gtn train' (it writes teaching_set.pt) or fix 'teaching_set'")
    return _load_teaching_set(str(p.resolve()), os.path.getmtime(p), str(device or torch.device("cpu")))


@EVALUATORS.register("gtn")
class GTNEvaluator(SeedBatchingEvaluator):
    """T SGD steps on a GTN teaching set with its learned lr/momentum, then validation accuracy."""

    Config = GTNEvaluatorConfig

    def _style(self, teaching: TeachingSet) -> tuple[str, bool]:
        learner = teaching.info.get("config", {}).get("learner", {})
        if learner.get("kind") == "nas":
            return str(learner.get("norm", "batch_stats")), bool(learner.get("weight_norm", True))
        return "batch_stats", True

    def setup(self) -> None:
        teaching = load_teaching_set(self.config.teaching_set)
        data = dataset_for(teaching.dataset, self.data_root)
        teaching.check_compatible(data.shape, data.num_classes, f"teaching set {self.config.teaching_set}")
        steps = self.config.steps
        if steps is not None and steps > teaching.steps:
            raise ConfigError(f"evaluator 'gtn': steps={steps} but the teaching set has {teaching.steps} steps")

    def can_sweep(self) -> bool:
        """A sweep over ``steps`` trains once: the first s steps of the teaching set's schedule are
        exactly an s-step training."""
        return True

    def _step_limit(self) -> int:
        return self.config.steps or load_teaching_set(self.config.teaching_set).steps

    def _trained(self, arch: Architecture, blueprint: Blueprint, seeds: list[int], steps: list[int],
                 clock: SweepClock) -> list[SweepPoint]:
        """Train one network per seed on the teaching set (several: stacked side by side), scored
        after each of ``steps``."""
        device = self.device
        teaching = load_teaching_set(self.config.teaching_set, device)
        data = dataset_for(teaching.dataset, self.data_root, device)
        norm, wn = self._style(teaching)
        bp = candidate_blueprint(blueprint, data, "learner", norm, wn, self.config.channels)
        module, params, fwd = build_candidates(arch, bp, seeds, teaching.batch, device)
        x, y = validation_split(data, self.config.val_size)
        points: list[SweepPoint] = []

        def scoring(done: int, trained: Params) -> list[Measurement]:
            results = score_seeds(module, trained, x, y, self.config.eval_batch, seeds)
            return seed_measurements(results, steps=done, images=teaching.images_seen(done), forward_flops=fwd,
                                     val_images=len(x), params=params, dataset=data.name,
                                     after=f"{done} steps on the teaching set")

        def on_the_way(t: int, trained: Params) -> None:
            if t + 1 in steps[:-1]:
                points.append(clock.score(t + 1, lambda: scoring(t + 1, trained)))

        try:
            trained = teaching.train(module, steps[-1], intermediate=on_the_way if len(steps) > 1 else None)
        except Exception as exc:  # noqa: BLE001  (training stopped: the step counts not reached fail with it)
            if len(steps) == 1:
                raise
            return points + clock.failed(steps[len(points):], exc)
        return points + [clock.score(steps[-1], lambda: scoring(steps[-1], trained))]
