"""Helpers shared by evaluators: building a candidate network and scoring it on validation data."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch
from torch import nn

from gtn_search.data import DatasetTensors, load_dataset
from gtn_search.device import memory_limit
from gtn_search.errors import ConfigError
from gtn_search.evaluators.base import Measurement, NonFiniteScore
from gtn_search.gtn.unroll import Params, evaluate, evaluate_replicas
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.memory import check_fits
from search_spaces.network import build, count_flops
from search_spaces.replicas import stack_replicas

Style = Literal["learner", "blueprint"]


def dataset_for(name: str, data_root: str | None, device: torch.device | None = None) -> DatasetTensors:
    """The dataset, loaded once per process (``load_dataset`` caches it), on ``device`` (default CPU)."""
    data = load_dataset(name, data_root)
    if device is None or device.type == "cpu":
        return data
    return _on_device(name, data_root, str(device))


@lru_cache(maxsize=4)
def _on_device(name: str, data_root: str | None, device: str) -> DatasetTensors:
    return load_dataset(name, data_root).to(torch.device(device))


def candidate_blueprint(blueprint: Blueprint, data: DatasetTensors, style: str, norm: str = "batch_stats",
                        weight_norm: bool = True, channels: int | None = None) -> Blueprint:
    """The blueprint fitted to the dataset's shape and classes, in learner or in its own style.

    ``learner`` style (weight norm, batch-statistics norm, LeakyReLU, Kaiming) is how GTN learners
    are built; using it for every proxy evaluator makes their scores comparable. ``channels``
    replaces the blueprint's base width C (an evaluator's ``channels`` option: a wider learner).
    """
    update: dict[str, object] = {"input_shape": data.shape, "num_classes": data.num_classes}
    if channels is not None:
        update["channels"] = channels
    bp = blueprint.model_copy(update=update)
    if style == "learner":
        bp = bp.model_copy(update={"norm": norm, "weight_norm": weight_norm, "activation": "leaky_relu",
                                   "init": "kaiming", "drop_path": 0.0, "auxiliary_weight": 0.0})
    elif style != "blueprint":
        raise ConfigError(f"evaluator style must be 'learner' or 'blueprint', got {style!r}")
    return bp


def build_candidate(arch: Architecture, bp: Blueprint, seed: int, batch: int,
                    device: torch.device | None = None) -> tuple[nn.Module, int, int]:
    """The network (built on the CPU, then moved to ``device``), its parameter count and its forward FLOPs per image.

    Before anything is allocated, the training memory at ``batch`` is estimated on the meta
    device; a network that would not fit (in host memory, or on a CUDA device in the GPU memory
    free now) raises :class:`MemoryLimitError` (the trial fails with the estimate instead of the
    process dying of out-of-memory).
    """
    check_fits(arch, bp, batch, f"candidate {arch.short_hash}", memory_limit(device) if device is not None else None)
    module = build(arch, bp, seed=seed)
    params = sum(p.numel() for p in module.parameters())
    flops = count_flops(module, bp.input_shape)
    return (module if device is None else module.to(device)), params, flops


def build_candidates(arch: Architecture, bp: Blueprint, seeds: list[int], batch: int,
                     device: torch.device | None = None) -> tuple[nn.Module, int, int]:
    """:func:`build_candidate` for the first seed; with several seeds, one network holding all of
    them side by side (``search_spaces.replicas.stack_replicas``; memory checked at ``batch`` times
    the number of seeds). Parameter count and FLOPs are those of one network."""
    module, params, flops = build_candidate(arch, bp, seeds[0], batch * len(seeds), device)
    if len(seeds) > 1:
        others = [build(arch, bp, seed=s) for s in seeds[1:]]
        module = stack_replicas([module] + [m if device is None else m.to(device) for m in others])
    return module, params, flops


def validation_split(data: DatasetTensors, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``size`` validation images (never the test set)."""
    if size < 2:
        raise ConfigError(f"val_size must be >= 2, got {size}")
    return data.val_x[:size], data.val_y[:size]


def score_seeds(module: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, batch: int,
                seeds: list[int]) -> list[tuple[float, float]]:
    """``(accuracy, mean loss)`` on ``x``/``y`` of each seed's network (``module`` holds them all
    side by side when there are several, see :func:`build_candidates`)."""
    if len(seeds) > 1:
        return evaluate_replicas(module, params, x, y, batch)
    return [evaluate(module, params, x, y, batch)]


def seed_measurements(results: list[tuple[float, float]], *, steps: int, images: int, forward_flops: int,
                      val_images: int, params: int, dataset: str, after: str) -> list[Measurement]:
    """One :class:`Measurement` per seed from :func:`score_seeds`' results; a non-finite validation
    loss raises :class:`NonFiniteScore` ("validation loss ... after ``after``")."""
    out = []
    for acc, loss in results:
        if not math.isfinite(loss):
            raise NonFiniteScore(f"validation loss {loss} after {after}")
        out.append(Measurement(score=acc, sgd_steps=steps, images_seen=images,
                               train_flops=3.0 * forward_flops * images,
                               eval_flops=float(forward_flops * val_images), params=params,
                               metrics={"val_loss": loss, "forward_flops": forward_flops, "dataset": dataset}))
    return out
