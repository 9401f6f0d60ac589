"""Training-free ("zero-cost") proxy evaluators: NASWOT, synflow and parameter count.

They score an untrained candidate from one mini-batch (or none) and are the strongest cheap peers
a GTN must be compared against (published Spearman on NAS-Bench-201 CIFAR-10: synflow 0.74,
params 0.75, jacob_cov 0.73). Higher score = predicted better, like every evaluator here; they
read training images only (never validation or test) and report their compute as ``eval_flops``.

* ``naswot`` (Mellor et al. 2021, "Neural Architecture Search without Training"): for a batch of
  N images, each rectifier unit gives a binary code per image (pre-activation > 0); the kernel
  ``K[i, j]`` counts the units on which images i and j agree; the score is ``log|K|``. Networks
  whose rectifiers separate the images well score high.
* ``synflow`` (Tanaka et al. 2020, used as a NAS proxy by Abdelfattah et al. 2021): weights
  replaced by their absolute values, an all-ones input, in float64; the score is
  ``sum |theta * dR/dtheta|`` over the weights, with ``R`` the sum of the outputs. Reported as
  ``log(1 + synflow)`` (the raw value spans hundreds of orders of magnitude); the rank order is
  unchanged. Norm layers use their initial running statistics (eval mode), as in the reference.
* ``params``: the number of trainable parameters.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from gtn_search.configio import StrictModel
from gtn_search.evaluators.base import Evaluator, Measurement, NonFiniteScore
from gtn_search.evaluators.common import (
    build_candidate,
    candidate_blueprint,
    dataset_for,
)
from gtn_search.registry import EVALUATORS
from gtn_search.seeding import torch_rng
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint


class ZeroCostConfig(StrictModel):
    """Options shared by the zero-cost evaluators."""

    dataset: str = "mnist"
    batch_size: int = Field(default=64, ge=2, le=4096)
    #: 'learner' builds candidates like GTN learners (comparable with the GTN evaluator);
    #: 'blueprint' uses the blueprint's own layer style
    style: Literal["learner", "blueprint"] = "learner"


class _ZeroCost(Evaluator):
    Config = ZeroCostConfig

    def setup(self) -> None:
        dataset_for(self.config.dataset, self.data_root)

    def _candidate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> tuple[nn.Module, int, int, Blueprint]:
        data = dataset_for(self.config.dataset, self.data_root)
        bp = candidate_blueprint(blueprint, data, self.config.style)
        module, params, fwd = build_candidate(arch, bp, seed, self.config.batch_size)
        return module, params, fwd, bp

    def _batch(self, seed: int) -> torch.Tensor:
        data = dataset_for(self.config.dataset, self.data_root)
        g = torch_rng(seed, "zero-cost-batch")
        idx = torch.randperm(len(data.train_x), generator=g)[: self.config.batch_size]
        return data.train_x[idx]


def naswot_score(module: nn.Module, x: torch.Tensor) -> float:
    """``log|K|`` of the rectifier-agreement kernel of ``module`` on the images ``x``."""
    n = len(x)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(_mod: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        codes = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    if not handles:
        raise NonFiniteScore("naswot: the network has no ReLU/LeakyReLU units to read binary codes from")
    try:
        module.train()  # batch statistics, as in the reference implementation
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign <= 0:  # singular (two images with identical codes everywhere): below every regular kernel,
        return -1e6 + float(torch.linalg.matrix_rank(kernel))  # ordered by rank
    return float(logdet)


def synflow_score(module: nn.Module, input_shape: tuple[int, ...]) -> float:
    """``log(1 + sum |theta * grad|)`` of the linearised network on an all-ones input."""
    module = module.double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.abs_()
    module.zero_grad(set_to_none=True)
    out = module(torch.ones((1, *input_shape), dtype=torch.float64))
    if isinstance(out, tuple):  # auxiliary head
        out = out[0]
    out.sum().backward()
    total = 0.0
    for p in module.parameters():  # weights (and weight-norm directions/gains), not biases or norm affine
        if p.grad is not None and p.dim() > 1:
            total += float((p.detach() * p.grad).abs().sum())
    if not math.isfinite(total):
        raise NonFiniteScore(f"synflow overflowed ({total}) even in float64")
    return math.log1p(total)


@EVALUATORS.register("naswot")
class NASWOTEvaluator(_ZeroCost):
    """Training-free: log-determinant of the ReLU code kernel on one batch (Mellor et al. 2021)."""

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        module, params, fwd, _ = self._candidate(arch, blueprint, seed)
        x = self._batch(seed)
        score = naswot_score(module, x)
        return Measurement(score=score, sgd_steps=0, images_seen=len(x), train_flops=0.0,
                           eval_flops=float(fwd * len(x)), params=params, metrics={"forward_flops": fwd})


@EVALUATORS.register("synflow")
class SynflowEvaluator(_ZeroCost):
    """Training-free: synaptic flow of the linearised network, log scale (Tanaka et al. 2020)."""

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        module, params, fwd, bp = self._candidate(arch, blueprint, seed)
        score = synflow_score(module, tuple(bp.input_shape))
        return Measurement(score=score, sgd_steps=0, images_seen=1, train_flops=0.0, eval_flops=3.0 * fwd,
                           params=params, metrics={"forward_flops": fwd})


@EVALUATORS.register("params")
class ParamsEvaluator(_ZeroCost):
    """Training-free: the number of trainable parameters (bigger predicted better)."""

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        module, params, fwd, _ = self._candidate(arch, blueprint, seed)
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        return Measurement(score=float(trainable), sgd_steps=0, images_seen=0, train_flops=0.0, eval_flops=0.0,
                           params=params, metrics={"forward_flops": fwd})
