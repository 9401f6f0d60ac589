"""The real-data evaluator: train the candidate on real training images, score on validation."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator

from gtn_search.augment import random_crop_flip
from gtn_search.device import (
    AmpOption,
    DeviceOption,
    LossWatch,
    autocast,
    host_to_device,
)
from gtn_search.evaluators.base import (
    Measurement,
    NonFiniteScore,
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
from gtn_search.registry import EVALUATORS
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.replicas import stack_inputs


class RealDataEvaluatorConfig(DeviceOption, AmpOption):
    """Options of the real-data evaluator (exactly one of ``steps`` and ``epochs``); ``amp: bf16``
    runs forward passes (training and scoring) under bfloat16 autocast."""

    dataset: str = "mnist"
    steps: int | None = Field(default=None, ge=1)
    epochs: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=64, ge=2)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(default=0.05, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    augment: Literal["none", "crop_flip"] = "none"
    style: Literal["learner", "blueprint"] = "learner"
    val_size: int = Field(default=2000, ge=2)
    eval_batch: int = Field(default=1000, ge=2)
    #: the learner's base width C instead of the blueprint's (e.g. 16 for a 4-channel mnist-tiny:
    #: a wider learner, more compute per step, possibly a better ranking)
    channels: int | None = Field(default=None, ge=1, le=4096)
    #: independent initialisations per candidate (score = their mean, cost = their sum)
    seeds: int = Field(default=1, ge=1, le=64)
    #: train the seeds side by side as one stacked network (search_spaces.replicas); false: one by one
    batch_seeds: bool = True

    @model_validator(mode="after")
    def _one_length(self) -> RealDataEvaluatorConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'steps' and 'epochs'")
        return self


def make_optimizer(params, cfg: RealDataEvaluatorConfig) -> torch.optim.Optimizer:  # type: ignore[no-untyped-def]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _raise_if_nonfinite(bad: tuple[int, float] | None) -> None:
    if bad is not None:
        raise NonFiniteScore(f"training loss {bad[1]} at step {bad[0]}")


@EVALUATORS.register("real")
class RealDataEvaluator(SeedBatchingEvaluator):
    """T steps (or E epochs) of SGD/Adam on real training data, then validation accuracy."""

    Config = RealDataEvaluatorConfig

    def setup(self) -> None:
        dataset_for(self.config.dataset, self.data_root)

    def can_sweep(self) -> bool:
        """A sweep over ``steps`` trains once: with a constant learning rate the first s steps of a
        longer training are exactly an s-step training (a cosine schedule depends on the length)."""
        return self.config.steps is not None and self.config.schedule == "constant"

    def _step_limit(self) -> int:
        cfg = self.config
        if cfg.steps is not None:
            return cfg.steps
        n = len(dataset_for(cfg.dataset, self.data_root).train_x)
        return max(1, math.ceil(cfg.epochs * n / cfg.batch_size))  # type: ignore[operator]

    def _trained(self, arch: Architecture, blueprint: Blueprint, seeds: list[int], steps: list[int],
                 clock: SweepClock) -> list[SweepPoint]:
        """Train one network per seed (several: stacked side by side, each replica drawing its own
        batches and augmentations from its own seed, as it would alone), scored after each of ``steps``."""
        cfg, device = self.config, self.device
        data = dataset_for(cfg.dataset, self.data_root, device)
        bp = candidate_blueprint(blueprint, data, cfg.style, channels=cfg.channels)
        module, params, fwd = build_candidates(arch, bp, seeds, cfg.batch_size, device)
        n = len(data.train_x)
        total = steps[-1]
        opt = make_optimizer(module.parameters(), cfg)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total) if cfg.schedule == "cosine" else None
        rngs = [torch.Generator().manual_seed(s) for s in seeds]
        orders = [host_to_device(torch.randperm(n, generator=rng), device) for rng in rngs]
        pos = 0  # every replica's epoch ends at the same step
        watch = LossWatch()
        x, y = validation_split(data, cfg.val_size)
        points: list[SweepPoint] = []

        def scoring(done: int) -> list[Measurement]:
            if cfg.style == "blueprint":
                module.eval()
            try:
                with autocast(device, cfg.amp):
                    results = score_seeds(module, dict(module.named_parameters()), x, y, cfg.eval_batch, seeds)
            finally:
                module.train()
            return seed_measurements(results, steps=done, images=done * cfg.batch_size, forward_flops=fwd,
                                     val_images=len(x), params=params, dataset=data.name, after=f"{done} steps")

        module.train()
        try:
            for step in range(total):
                if pos + cfg.batch_size > n:
                    orders, pos = [host_to_device(torch.randperm(n, generator=rng), device) for rng in rngs], 0
                xs, ys = [], []
                for order, rng in zip(orders, rngs):
                    idx = order[pos : pos + cfg.batch_size]
                    xb = data.train_x[idx]
                    xs.append(random_crop_flip(xb, rng) if cfg.augment == "crop_flip" else xb)
                    ys.append(data.train_y[idx])
                pos += cfg.batch_size
                xb, yb = (xs[0], ys[0]) if len(seeds) == 1 else (stack_inputs(xs), torch.stack(ys, dim=1))
                with autocast(device, cfg.amp):
                    loss = module.training_loss(xb, yb)
                _raise_if_nonfinite(watch.add(step + 1, loss))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                if step + 1 in steps:
                    _raise_if_nonfinite(watch.check())
                    points.append(clock.score(step + 1, lambda: scoring(step + 1)))
        except Exception as exc:  # noqa: BLE001  (training stopped: the step counts not reached fail with it)
            if not points and len(steps) == 1:
                raise
            return points + clock.failed(steps[len(points):], exc)
        return points
