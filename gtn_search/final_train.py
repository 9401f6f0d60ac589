"""Final training: an architecture, expanded by a (usually larger) blueprint, trained to convergence.

The standard recipe of cell-based NAS papers: SGD with Nesterov-free momentum, cosine learning-rate
decay, weight decay, augmentation where it fits the dataset (random crop + flip for RGB images,
cutout), optional auxiliary head and drop-path (both from the blueprint). It trains on the training
split, reports validation accuracy after every epoch and the **test** accuracy once at the end
(final training is where the test set is used; searches never touch it).

A checkpoint is written atomically after every epoch; calling :func:`train_final` again with the same
output folder continues from it (the data order and augmentation of each epoch are derived from the
seed and the epoch number, so a resumed run trains exactly like an uninterrupted one; on CUDA with
``deterministic: true``); a finished run returns the ``result.json`` it wrote, without training or
evaluating the test set again, even where its checkpoint is gone (a ``result.json`` of another run
in the folder is an error, never overwritten). The result is saved as ``result.json``: test/validation accuracy, params,
FLOPs, epochs, wall seconds. The recipe's ``device`` is where it trains (the checkpoint loads on any
device); ``amp: bf16`` runs forward passes under bfloat16 autocast.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from gtn_search.augment import cutout, random_crop_flip
from gtn_search.configio import write_text_atomic
from gtn_search.data import DatasetTensors
from gtn_search.device import (
    AmpOption,
    DeviceOption,
    LossWatch,
    autocast,
    device_settings,
    host_to_device,
    memory_limit,
    oom_message,
    resolve_device,
)
from gtn_search.errors import ConfigError, TrainingError
from gtn_search.seeding import derive_seed
from gtn_search.tensorfile import load_tensor_file, require_keys, save_tensor_file
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.memory import check_fits
from search_spaces.network import Network, build, count_flops

CHECKPOINT_FORMAT = "gtn-search/final-train-checkpoint"
CHECKPOINT_VERSION = 1


class TrainConfig(DeviceOption, AmpOption):
    """The final-training recipe (``device``: None is auto, or the comparison's device)."""

    epochs: float = Field(default=10, gt=0, le=10_000)
    batch_size: int = Field(default=96, ge=2, le=65_536)
    lr: float = Field(default=0.05, gt=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=3e-4, ge=0, le=1)
    grad_clip: float = Field(default=5.0, gt=0)
    #: 'auto': random crop + horizontal flip for RGB datasets, none for grey-scale digits/clothes
    augment: Literal["auto", "none", "crop_flip"] = "auto"
    cutout: int = Field(default=0, ge=0, le=64)
    eval_batch: int = Field(default=1000, ge=2)
    #: evaluate on validation after every epoch (the last epoch is always evaluated)
    validate_every: int = Field(default=1, ge=1)
    #: on CUDA: deterministic algorithms and cuDNN kernels (bit-identical reruns and resumes, slower)
    deterministic: bool = Field(default=False, exclude=True)

    def total_steps(self, n_train: int) -> int:
        return max(1, math.ceil(self.epochs * n_train / self.batch_size))


@dataclass
class TrainResult:
    """What final training reports (also written to ``result.json``)."""

    test_accuracy: float
    test_loss: float
    val_accuracy: float
    params: int
    forward_flops: int
    epochs: float
    steps: int
    seconds: float
    dataset: str
    architecture_hash: str
    blueprint: dict[str, Any]
    recipe: dict[str, Any]
    history: list[dict[str, float]]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _evaluate(module: Network, x: torch.Tensor, y: torch.Tensor, batch: int, amp: str) -> tuple[float, float]:
    module.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    with torch.no_grad(), autocast(x.device, amp):  # type: ignore[arg-type]
        for i in range(0, len(x), batch):
            logits = module(x[i : i + batch])
            correct += (logits.argmax(1) == y[i : i + batch]).sum()
            loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").double()
    module.train()
    return int(correct) / len(x), float(loss) / len(x)


def _augment(xb: torch.Tensor, cfg: TrainConfig, rng: torch.Generator) -> torch.Tensor:
    kind = cfg.augment
    if kind == "auto":
        kind = "crop_flip" if xb.shape[1] == 3 else "none"
    if kind == "crop_flip":
        xb = random_crop_flip(xb, rng)
    if cfg.cutout:
        xb = cutout(xb, rng, cfg.cutout)
    return xb


def _raise_if_nonfinite(bad: tuple[int, float] | None, steps_per_epoch: int, cfg: TrainConfig) -> None:
    """The NaN/inf error for the first bad step (raised before the epoch's checkpoint is written)."""
    if bad is not None:
        step, value = bad
        raise TrainingError(f"final training: loss became {value} at epoch {step // steps_per_epoch + 1}, "
                            f"step {step + 1}; lower --lr (now {cfg.lr}) or raise --grad-clip; the last checkpoint "
                            f"is kept")


def _read_result(path: Path) -> TrainResult | None:
    """The ``result.json`` a finished run wrote, if it is there and readable."""
    try:
        return TrainResult(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _identity_of(result: TrainResult) -> dict[str, Any]:
    return {"hash": result.architecture_hash, "blueprint": result.blueprint, "recipe": result.recipe,
            "dataset": result.dataset, "seed": result.seed}


def train_final(
    arch: Architecture,
    blueprint: Blueprint,
    data: DatasetTensors,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = False,
) -> TrainResult:
    """Train ``arch`` expanded by ``blueprint`` on ``data``; resumable through ``out_dir``.

    The blueprint's input shape and class count are taken from the dataset. Raises
    :class:`TrainingError` (with the epoch and step) when the loss becomes NaN/inf; the last good
    checkpoint is kept. The caller's global torch RNG is left untouched.
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            device_settings(device, config.deterministic):
        try:
            return _train(arch, blueprint, data.to(device), config, device, out_dir, seed, progress)
        except torch.cuda.OutOfMemoryError as exc:
            raise TrainingError(f"final training: {oom_message(exc)}; lower --batch-size or use a smaller "
                                f"--blueprint") from None


def _train(arch: Architecture, blueprint: Blueprint, data: DatasetTensors, cfg: TrainConfig, device: torch.device,
           out_dir: str | Path | None, seed: int, progress: bool) -> TrainResult:
    from tqdm.auto import tqdm

    bp = blueprint.model_copy(update={"input_shape": data.shape, "num_classes": data.num_classes})
    out = Path(out_dir) if out_dir is not None else None
    identity = {"hash": arch.hash, "blueprint": bp.to_mapping(), "recipe": cfg.model_dump(mode="json"),
                "dataset": data.name, "seed": seed}
    if out is not None:
        # A finished run returns its result, without training or evaluating again, even where its
        # checkpoint is gone (result folders are kept without their checkpoints); a result of
        # another run is never overwritten.
        saved = _read_result(out / "result.json")
        if saved is not None and _identity_of(saved) == identity:
            return saved
        if saved is not None and not (out / "checkpoint.pt").exists():
            mine = _identity_of(saved)
            diff = sorted(k for k in identity if mine.get(k) != identity[k])
            raise ConfigError(f"{out / 'result.json'}: this result is for another run (different "
                              f"{', '.join(diff)}); use another --out folder or move the result away")
    check_fits(arch, bp, cfg.batch_size, "final training", memory_limit(device))
    module = build(arch, bp, seed=derive_seed(seed, "final-init"))
    params = sum(p.numel() for p in module.parameters())
    flops = count_flops(module, bp.input_shape)
    module.to(device)
    n = len(data.train_x)
    total = cfg.total_steps(n)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    opt = torch.optim.SGD(module.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    ckpt = out / "checkpoint.pt" if out is not None else None
    step, history, seconds = 0, [], 0.0
    if ckpt is not None and ckpt.exists():
        state = load_tensor_file(ckpt, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "final-training checkpoint")
        require_keys(state, ("identity", "model", "optimizer", "scheduler", "step", "history", "seconds"), ckpt,
                     "final-training checkpoint")
        saved = json.loads(state["identity"])
        if saved != identity:
            diff = sorted(k for k in identity if saved.get(k) != identity[k])
            raise ConfigError(f"{ckpt}: this checkpoint is for another run (different {', '.join(diff)}); "
                              f"use another --out folder or delete the checkpoint")
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, history, seconds = int(state["step"]), json.loads(state["history"]), float(state["seconds"])
    module.train()
    bar = tqdm(total=total, initial=step, disable=not progress, desc="train", unit="step", dynamic_ncols=True)
    start = time.monotonic() - seconds
    watch = LossWatch()
    while step < total:
        epoch = step // steps_per_epoch
        rng = torch.Generator().manual_seed(derive_seed(seed, "final-epoch", epoch))
        torch.manual_seed(derive_seed(seed, "final-drop-path", epoch))  # drop-path draws (global RNG)
        order = host_to_device(torch.randperm(n, generator=rng), device)
        end = min(total, (epoch + 1) * steps_per_epoch)
        # replay the epoch's random draws up to the resume point so augmentation matches exactly
        for s in range(epoch * steps_per_epoch, end):
            idx = order[(s - epoch * steps_per_epoch) * cfg.batch_size:][: cfg.batch_size]
            xb = _augment(data.train_x[idx], cfg, rng)
            if s < step:
                continue
            module.set_drop_path(bp.drop_path * s / total)
            with autocast(device, cfg.amp):
                loss = module.training_loss(xb, data.train_y[idx])
            _raise_if_nonfinite(watch.add(s, loss), steps_per_epoch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step = s + 1
            bar.update(1)
        _raise_if_nonfinite(watch.check(), steps_per_epoch, cfg)
        done_epoch = step / steps_per_epoch
        last = step >= total
        if last or (epoch + 1) % cfg.validate_every == 0:
            val_acc, val_loss = _evaluate(module, data.val_x, data.val_y, cfg.eval_batch, cfg.amp)
            history.append({"epoch": round(done_epoch, 4), "step": step, "val_accuracy": val_acc,
                            "val_loss": val_loss, "seconds": time.monotonic() - start})
            bar.set_postfix(val=f"{val_acc:.4f}")
        if ckpt is not None:
            save_tensor_file(ckpt, {
                "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "identity": json.dumps(identity),
                "model": module.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "step": step, "history": json.dumps(history), "seconds": time.monotonic() - start,
            })
    bar.close()
    test_acc, test_loss = _evaluate(module, data.test_x, data.test_y, cfg.eval_batch, cfg.amp)
    result = TrainResult(
        test_accuracy=test_acc, test_loss=test_loss,
        val_accuracy=history[-1]["val_accuracy"] if history else float("nan"),
        params=params, forward_flops=flops, epochs=cfg.epochs, steps=total, seconds=time.monotonic() - start,
        dataset=data.name, architecture_hash=arch.hash, blueprint=bp.to_mapping(),
        recipe=cfg.model_dump(mode="json"), history=history, seed=seed,
    )
    if out is not None:
        write_text_atomic(out / "result.json", json.dumps(result.to_dict(), indent=2))
    return result
