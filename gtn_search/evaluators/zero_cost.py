"""Training-free ("zero-cost") proxy evaluators: NASWOT, jacob_cov, synflow, parameters and FLOPs.

They score an untrained candidate from one mini-batch (or none) and are the strongest cheap peers
a GTN must be compared against (published Spearman on NAS-Bench-201 CIFAR-10: synflow 0.74,
params 0.75, jacob_cov 0.73; in the DARTS space params 0.563 beats synflow 0.394). Each is
computed as its authors' reference code computes it (SamsungLabs/zero-cost-nas for synflow and
jacob_cov, Mellor et al.'s code for NASWOT); tests check each against an independent computation.
Higher score = predicted better, like every evaluator here; they read training images only (never
validation or test) and report their compute as ``eval_flops``.

* ``naswot`` (Mellor et al. 2021, "Neural Architecture Search without Training"): for a batch of
  N images, each rectifier unit gives a binary code per image (pre-activation > 0); the kernel
  ``K[i, j]`` counts the units on which images i and j agree; the score is ``log|K|``. Networks
  whose rectifiers separate the images well score high. Norm layers use batch statistics.
* ``jacob_cov`` (Mellor et al. 2020, v1 of the same paper): the input gradients ``J`` of the
  summed outputs for a batch (one row per image, norm layers on batch statistics), their
  correlation matrix ``C`` with eigenvalues ``v``; the score is ``-sum(log(v + k) + 1/(v + k))``
  with ``k = 1e-5``.
* ``synflow`` (Tanaka et al. 2020, as a NAS proxy by Abdelfattah et al. 2021): a copy of the
  network with **batch norm switched off** (every norm layer is the identity, the reference's
  ``bn=False``), weight normalisation folded into plain **effective weights** ``w = g v/||v||``,
  every parameter and buffer replaced by its absolute value, in float64, on an all-ones input;
  the score is ``sum |w * dR/dw|`` over the weights of every convolution and linear layer
  (not biases), with ``R`` the sum of the outputs. Reported as ``log(1 + synflow)`` (the raw value
  spans hundreds of orders of magnitude); the rank order is unchanged.
* ``params``: the number of trainable parameters. ``flops``: forward FLOPs per image.
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn.utils import parametrize

from gtn_search.device import DeviceOption, host_to_device
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


class ZeroCostConfig(DeviceOption):
    """Options shared by the zero-cost evaluators."""

    dataset: str = "mnist"
    batch_size: int = Field(default=64, ge=2, le=4096)
    #: 'learner' builds candidates like GTN learners (comparable with the GTN evaluator);
    #: 'blueprint' uses the blueprint's own layer style
    style: Literal["learner", "blueprint"] = "learner"
    #: independent initialisations per candidate (score = their mean, cost = their sum)
    seeds: int = Field(default=1, ge=1, le=64)


class _ZeroCost(Evaluator):
    Config = ZeroCostConfig

    def setup(self) -> None:
        dataset_for(self.config.dataset, self.data_root)

    def _candidate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> tuple[nn.Module, int, int, Blueprint]:
        data = dataset_for(self.config.dataset, self.data_root, self.device)
        bp = candidate_blueprint(blueprint, data, self.config.style)
        module, params, fwd = build_candidate(arch, bp, seed, self.config.batch_size, self.device)
        return module, params, fwd, bp

    def _batch(self, seed: int) -> torch.Tensor:
        data = dataset_for(self.config.dataset, self.data_root, self.device)
        g = torch_rng(seed, "zero-cost-batch")
        idx = torch.randperm(len(data.train_x), generator=g)[: self.config.batch_size]
        return data.train_x[host_to_device(idx, self.device)]


def naswot_score(module: nn.Module, x: torch.Tensor) -> float:
    """``log|K|`` of the rectifier-agreement kernel of ``module`` on the images ``x``."""
    n = len(x)
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)

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


def jacob_cov_score(module: nn.Module, x: torch.Tensor) -> float:
    """``-sum(log(v + k) + 1/(v + k))`` over the eigenvalues ``v`` of the input-gradient correlations."""
    module.train()  # batch statistics, as in the reference (bn=True)
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    if isinstance(out, tuple):  # auxiliary head
        out = out[0]
    out.backward(torch.ones_like(out))
    jacobian = x.grad.reshape(len(x), -1).double().cpu().numpy()
    with np.errstate(all="ignore"):
        eigenvalues = np.linalg.eig(np.corrcoef(jacobian))[0]
        k = 1e-5
        score = float(-np.sum(np.log(eigenvalues + k) + 1.0 / (eigenvalues + k)).real)
    if not math.isfinite(score):
        raise NonFiniteScore("jacob_cov: the input-gradient correlation matrix has a constant row or a negative "
                             "eigenvalue (the reference scores such networks NaN)")
    return score


def _without_norms_and_weight_norm(module: nn.Module) -> nn.Module:
    """A copy with weight norm folded into plain weights and every norm layer made the identity."""
    from search_spaces.network import MeanOnlyBatchNorm

    net = copy.deepcopy(module)
    for m in list(net.modules()):
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, MeanOnlyBatchNorm)

    def strip(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, norms):
                setattr(parent, name, nn.Identity())
            else:
                strip(child)

    strip(net)
    return net


def synflow_score(module: nn.Module, input_shape: tuple[int, ...]) -> float:
    """``log(1 + sum |w * dR/dw|)`` of the linearised network (norms off, effective weights) on ones."""
    net = _without_norms_and_weight_norm(module).double().eval()
    device = next(net.parameters()).device
    with torch.no_grad():
        for value in net.state_dict().values():
            value.abs_()
    net.zero_grad(set_to_none=True)
    out = net(torch.ones((1, *input_shape), dtype=torch.float64, device=device))
    if isinstance(out, tuple):  # auxiliary head
        out = out[0]
    out.sum().backward()
    total = 0.0
    for layer in net.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.weight.grad is not None:
            total += float((layer.weight.detach() * layer.weight.grad).abs().sum())
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


@EVALUATORS.register("jacob_cov")
class JacobCovEvaluator(_ZeroCost):
    """Training-free: correlation of input gradients over one batch (Mellor et al. 2020)."""

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        module, params, fwd, _ = self._candidate(arch, blueprint, seed)
        x = self._batch(seed)
        score = jacob_cov_score(module, x)
        return Measurement(score=score, sgd_steps=0, images_seen=len(x), train_flops=0.0,
                           eval_flops=3.0 * float(fwd * len(x)), params=params, metrics={"forward_flops": fwd})


@EVALUATORS.register("synflow")
class SynflowEvaluator(_ZeroCost):
    """Training-free: synaptic flow of the linearised network, log scale (Tanaka et al. 2020)."""

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        module, params, fwd, bp = self._candidate(arch, blueprint, seed)
        score = synflow_score(module, tuple(bp.input_shape))
        return Measurement(score=score, sgd_steps=0, images_seen=1, train_flops=0.0, eval_flops=3.0 * fwd,
                           params=params, metrics={"forward_flops": fwd})


class _SizeProxy(_ZeroCost):
    """A proxy read off the built network without any data pass: bigger predicted better."""

    @abstractmethod
    def _size(self, module: nn.Module, forward_flops: int) -> float:
        """The score of the built ``module`` (``forward_flops`` per image already counted)."""

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        module, params, fwd, _ = self._candidate(arch, blueprint, seed)
        return Measurement(score=self._size(module, fwd), sgd_steps=0, images_seen=0, train_flops=0.0,
                           eval_flops=0.0, params=params, metrics={"forward_flops": fwd})


@EVALUATORS.register("params")
class ParamsEvaluator(_SizeProxy):
    """Training-free: the number of trainable parameters (bigger predicted better)."""

    def _size(self, module: nn.Module, forward_flops: int) -> float:
        return float(sum(p.numel() for p in module.parameters() if p.requires_grad))


@EVALUATORS.register("flops")
class FlopsEvaluator(_SizeProxy):
    """Training-free: forward FLOPs per image (bigger predicted better)."""

    def _size(self, module: nn.Module, forward_flops: int) -> float:
        return float(forward_flops)
