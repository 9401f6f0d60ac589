"""Teaching sets: a meta-trained curriculum frozen into tensors, usable without the generator.

A teaching set holds T batches of synthetic images (stored as float16), their targets, and the
learned per-step learning rate and momentum. Training a network on it replays exactly the inner
loop of meta-training (:func:`gtn_search.gtn.unroll.unroll`), so an evaluator can score NAS
candidates with nothing but this file and a validation split.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gtn_search.errors import CheckpointError
from gtn_search.gtn.unroll import Params, unroll
from gtn_search.tensorfile import load_tensor_file, require_keys, save_tensor_file

FORMAT = "gtn-search/teaching-set"
VERSION = 1


@dataclass(frozen=True)
class TeachingSet:
    """T synthetic batches plus the lr/momentum schedule to train on them, for one dataset."""

    images: torch.Tensor  # [T, B, C, H, W] float32
    targets: torch.Tensor  # [T, B] int64, or [T, B, K] float32 soft labels
    lr: torch.Tensor  # [T]
    momentum: torch.Tensor  # [T]
    dataset: str
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.images.shape[0])

    @property
    def batch(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[2:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device) -> TeachingSet:
        """The same teaching set with its tensors on ``device`` (``self`` if they are there already)."""
        if self.images.device == device:
            return self
        return dataclasses.replace(self, images=self.images.to(device), targets=self.targets.to(device),
                                   lr=self.lr.to(device), momentum=self.momentum.to(device))

    def train(self, module: nn.Module, steps: int | None = None,
              intermediate: Callable[[int, Params], None] | None = None) -> Params:
        """Train a fresh ``module`` for ``steps`` (default all T) steps; return its final params.
        ``intermediate(t, params)`` is called after every step t (0-based) with the params so far."""
        steps = self.steps if steps is None else steps
        if not 1 <= steps <= self.steps:
            raise CheckpointError(f"teaching set has {self.steps} steps; cannot train for {steps}")
        return unroll(module, self.images, self.targets, self.lr, self.momentum, steps=steps,
                      intermediate=intermediate).params

    def summary(self) -> str:
        """One line: dataset, steps x batch, shape, lr range."""
        return (f"teaching set for {self.dataset}: {self.steps} steps x {self.batch} images "
                f"({'x'.join(map(str, self.image_shape))}), lr {float(self.lr.min()):.3g}..{float(self.lr.max()):.3g}, "
                f"momentum {float(self.momentum.min()):.2f}..{float(self.momentum.max()):.2f}")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically; images as float16 (about 2 bytes per pixel)."""
        return save_tensor_file(path, {
            "format": FORMAT,
            "version": VERSION,
            "images": self.images.to(torch.float16).contiguous(),
            "targets": self.targets.contiguous(),
            "lr": self.lr.detach().float(),
            "momentum": self.momentum.detach().float(),
            "dataset": self.dataset,
            "num_classes": int(self.num_classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "info": self.info,
        })

    @classmethod
    def load(cls, path: str | os.PathLike[str], dataset: str | None = None) -> TeachingSet:
        """Read and validate a teaching set; ``dataset`` (if given) must match."""
        data = load_tensor_file(path, FORMAT, VERSION, "teaching set")
        require_keys(data, ("images", "targets", "lr", "momentum", "dataset", "num_classes"), path, "teaching set")
        images, targets, lr, mom = data["images"], data["targets"], data["lr"], data["momentum"]
        for name, value in (("images", images), ("targets", targets), ("lr", lr), ("momentum", mom)):
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{path}: field '{name}' is not a tensor")
        k = data["num_classes"]
        if not isinstance(k, int) or k < 2:
            raise CheckpointError(f"{path}: field 'num_classes' must be an integer >= 2, got {k!r}")
        if images.dim() != 5 or min(images.shape) < 1:
            raise CheckpointError(f"{path}: images must be [T, B, C, H, W], got shape {list(images.shape)}")
        t, b = images.shape[:2]
        hard = targets.dim() == 2 and not targets.is_floating_point()
        soft = targets.dim() == 3 and targets.is_floating_point() and targets.shape[2] == k
        if targets.shape[:2] != (t, b) or not (hard or soft):
            raise CheckpointError(f"{path}: targets must be [T, B] labels or [T, B, {k}] soft labels matching "
                                  f"images [T={t}, B={b}], got {list(targets.shape)}")
        if hard and (int(targets.min()) < 0 or int(targets.max()) >= k):
            raise CheckpointError(f"{path}: labels must be in [0, {k}), got {int(targets.min())}..{int(targets.max())}")
        if lr.shape != (t,) or mom.shape != (t,):
            raise CheckpointError(f"{path}: lr and momentum must have shape [{t}], got {list(lr.shape)}, {list(mom.shape)}")
        for name, value in (("images", images), ("lr", lr), ("momentum", mom)):
            if not torch.isfinite(value.float()).all():
                raise CheckpointError(f"{path}: field '{name}' contains NaN or inf; the teaching set is unusable")
        if dataset is not None and data["dataset"] != dataset:
            raise CheckpointError(f"{path}: teaching set was made for dataset '{data['dataset']}', not '{dataset}'; "
                                  f"meta-train a GTN on '{dataset}' (gtn-search gtn train)")
        info = data.get("info", {})
        return cls(
            images=images.float(), targets=targets if hard else targets.float(), lr=lr.float(), momentum=mom.float(),
            dataset=str(data["dataset"]), num_classes=k,
            mean=tuple(float(x) for x in data.get("mean", [])), std=tuple(float(x) for x in data.get("std", [])),
            info=info if isinstance(info, dict) else {},
        )

    def images_seen(self, steps: int | None = None) -> int:
        """Synthetic images used by ``steps`` training steps."""
        return (self.steps if steps is None else steps) * self.batch

    def check_compatible(self, image_shape: tuple[int, int, int], num_classes: int, where: str = "teaching set") -> None:
        """Raise if the teaching set cannot train networks for this input shape / class count."""
        if tuple(image_shape) != self.image_shape or num_classes != self.num_classes:
            raise CheckpointError(
                f"{where}: images {self.image_shape} with {self.num_classes} classes do not fit a network for "
                f"{tuple(image_shape)} with {num_classes} classes"
            )

