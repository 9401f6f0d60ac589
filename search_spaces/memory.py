"""How much memory training a built network will need, estimated before anything is allocated.

The network is built on PyTorch's ``meta`` device (shapes only, no storage) and run forward on a
meta batch under ``torch.autograd.graph.saved_tensors_hooks``, which sees every tensor autograd
keeps for the backward pass; their elements are added up. The estimate is

    4 bytes x (4 x parameters [weights, gradients, two optimizer buffers]
               + batch x activation elements per image x 2 [saved activations + their gradients])

A network whose estimate exceeds the memory available is refused up front with the estimate in
the message, instead of crashing the process (or the machine) with an out-of-memory error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from gtn_search.errors import GTNSearchError
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint

GIB = 1024**3


class MemoryLimitError(GTNSearchError):
    """A network would need more memory than is available."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated training memory of one network at one batch size."""

    params: int
    activations_per_image: int
    batch: int

    @property
    def bytes(self) -> int:
        return 4 * (4 * self.params + 2 * self.batch * self.activations_per_image)

    @property
    def gib(self) -> float:
        return self.bytes / GIB


def estimate_training_memory(arch: Architecture, blueprint: Blueprint, batch: int) -> MemoryEstimate:
    """Estimate (see the module docstring) without allocating the network."""
    from search_spaces.network import Network

    with torch.device("meta"):
        module = Network(arch, blueprint)
    params = {id(p) for p in module.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if id(t) not in seen and id(t) not in params:
            seen.add(id(t))
            total += t.numel()
        return t

    module.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(torch.empty((2, *blueprint.input_shape), device="meta"))  # 2: batch norm needs > 1
    del out
    params = sum(p.numel() for p in module.parameters())
    return MemoryEstimate(params=params, activations_per_image=total // 2, batch=batch)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: do not refuse


def check_fits(arch: Architecture, blueprint: Blueprint, batch: int, where: str,
               limit: int | None = None) -> MemoryEstimate:
    """Raise :class:`MemoryLimitError` when training would need more than ``limit`` bytes
    (default: the memory available now); returns the estimate otherwise."""
    estimate = estimate_training_memory(arch, blueprint, batch)
    limit = available_memory() if limit is None else limit
    if estimate.bytes > limit:
        raise MemoryLimitError(
            f"{where}: training this network at batch {batch} would need about {estimate.gib:.1f} GiB "
            f"({estimate.params / 1e6:.1f}M parameters, {estimate.activations_per_image / 1e6:.1f}M activations per "
            f"image) but {limit / GIB:.1f} GiB are available; use fewer channels/cells or a smaller batch")
    return estimate
