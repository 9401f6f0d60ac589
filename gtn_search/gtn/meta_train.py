"""Meta-training a GTN: the outer loop, NaN handling, checkpoints with exact resume, monitoring.

One meta-iteration: draw a fresh learner (weights and, for NAS learners, architecture), generate
the curriculum, train the learner T steps on it differentiably, take its loss on a batch of real
*training* images (plus optional intermediate real-data losses along the way), back-propagate
through the whole inner run into the generator, the curriculum and the lr/momentum schedule, and
take one Adam step (cosine-decayed learning rate, optional gradient clipping), optionally folding the
new parameters into an exponential moving average (``ema_decay``), which is what gets exported. The
validation split is only monitored. Every random draw of iteration i is derived from ``(seed, i)``,
so resuming from a checkpoint continues bit for bit like an uninterrupted run on CPU (on CUDA with
``deterministic: true``). The GTN, the learners and the data live on ``config.device``; the random
draws are made on the CPU and moved, and checkpoints are written from the CPU.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gtn_search.augment import random_crop_flip
from gtn_search.data import DatasetTensors
from gtn_search.device import device_settings, host_to_device, oom_message, resolve_device
from gtn_search.errors import CheckpointError, TrainingError
from gtn_search.gtn.config import GTNConfig
from gtn_search.gtn.learners import make_learner
from gtn_search.gtn.model import GTN
from gtn_search.gtn.teaching_set import TeachingSet
from gtn_search.gtn.unroll import evaluate, logits_of, unroll
from gtn_search.seeding import derive_seed, torch_rng, torch_seed
from gtn_search.tensorfile import load_tensor_file, require_keys, save_tensor_file

log = logging.getLogger("gtn_search.gtn")

CHECKPOINT_FORMAT = "gtn-search/gtn-checkpoint"
CHECKPOINT_VERSION = 1


class MetaTrainer:
    """Owns the GTN, its meta-optimiser and schedule, and the training history."""

    def __init__(self, config: GTNConfig, data: DatasetTensors) -> None:
        if data.train_x.shape[0] < 1 or data.val_x.shape[0] < 1:
            raise TrainingError(f"dataset {data.name} has an empty train or validation split")
        self.config = config
        self.device = resolve_device(config.device)
        self.data = data.to(self.device)
        with torch_seed(derive_seed(config.seed, "gtn-init")):
            self.gtn = GTN(config, data.shape, data.num_classes).to(self.device)
        #: the moving average of the GTN (``ema_decay``), or None
        self.ema: AveragedModel | None = None
        if config.ema_decay is not None:
            self.ema = AveragedModel(self.gtn, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
        self.meta_opt = torch.optim.Adam(self.gtn.parameters(), lr=config.lr, betas=tuple(config.betas))
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.meta_opt, T_max=config.meta_iterations, eta_min=config.lr * config.final_lr_fraction
        )
        self.iteration = 0
        self.nonfinite_streak = 0
        self.history: dict[str, list[Any]] = {
            "iteration": [], "meta_loss": [], "final_loss": [], "lr": [], "grad_norm": [], "seconds": [],
            "learner": [], "skipped": [], "monitor_iteration": [], "monitor_accuracy": [],
        }

    # -- one meta-iteration --------------------------------------------------------------------
    def _real_batch(self, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data.train_x, self.data.train_y
        idx = host_to_device(torch.randint(len(x), (self.config.meta_batch,), generator=rng), self.device)
        xb = x[idx]
        if self.config.augment == "crop_flip":
            xb = random_crop_flip(xb, rng)
        return xb, y[idx]

    def step(self) -> dict[str, Any]:
        """Run one meta-iteration; returns its record (also appended to the history)."""
        try:
            return self._step()
        except torch.cuda.OutOfMemoryError as exc:
            raise TrainingError(f"meta-iteration {self.iteration}: {oom_message(exc)}; lower inner_batch, inner_steps "
                                f"or meta_batch, or set gradient_checkpointing: true") from None

    def _learner_meta_loss(self, k: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Unroll learner ``k`` of this iteration on the teaching set; its meta-loss, final loss, description.

        Learner 0 uses the iteration's seeds (so one learner per iteration is what it always was);
        learner k > 0 its own architecture/initialisation and real batches.
        """
        cfg, it = self.config, self.iteration
        extra = () if k == 0 else (k,)
        learner, description = make_learner(cfg.learner, self.data.shape, self.data.num_classes,
                                             derive_seed(cfg.seed, "learner", it, *extra))
        learner.to(self.device)
        batch_rng = torch_rng(cfg.seed, "meta-batch", it, *extra)
        images, targets = self.gtn.teaching_batches(torch_rng(cfg.seed, "curriculum", it))
        lr, momentum = self.gtn.schedule()
        every = cfg.intermediate_every
        points = [t for t in range(cfg.inner_steps - 1) if every and (t + 1) % every == 0]

        def intermediate(t: int, params: dict[str, torch.Tensor]) -> torch.Tensor | None:
            if t not in points:
                return None
            xb, yb = self._real_batch(batch_rng)
            return F.cross_entropy(logits_of(learner, params, xb), yb) / len(points)

        result = unroll(learner, images, targets, lr, momentum, create_graph=True,
                        checkpoint=cfg.gradient_checkpointing, intermediate=intermediate if points else None)
        xb, yb = self._real_batch(batch_rng)
        final_loss = F.cross_entropy(logits_of(learner, result.params, xb), yb)
        meta_loss = final_loss
        if result.intermediate_loss is not None:
            meta_loss = meta_loss + cfg.intermediate_weight * result.intermediate_loss
        return meta_loss, final_loss, description

    def _step(self) -> dict[str, Any]:
        cfg, it = self.config, self.iteration
        start = time.perf_counter()
        self.gtn.train()
        self.meta_opt.zero_grad(set_to_none=True)
        count = cfg.learners_per_iteration
        losses, finals, descriptions = [], [], []
        skipped = False
        for k in range(count):  # each learner is back-propagated before the next is unrolled: one graph at a time
            meta_loss, final_loss, description = self._learner_meta_loss(k)
            losses.append(float(meta_loss.detach()))
            finals.append(float(final_loss.detach()))
            descriptions.append(description)
            if not torch.isfinite(meta_loss):
                skipped = True
                break
            (meta_loss / count if count > 1 else meta_loss).backward()
            del meta_loss, final_loss
        grad_norm = float("nan")
        if not skipped:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(
                self.gtn.parameters(), max_norm=cfg.grad_clip if cfg.grad_clip else float("inf")))
            skipped = not math.isfinite(grad_norm)
        if skipped:
            self.nonfinite_streak += 1
            log.warning("meta-iteration %d: non-finite meta-loss or meta-gradient; update skipped (%d in a row)",
                        it, self.nonfinite_streak)
        else:
            self.meta_opt.step()
            if self.ema is not None:
                self.ema.update_parameters(self.gtn)
            self.nonfinite_streak = 0
        self.meta_opt.zero_grad(set_to_none=True)
        record = {
            "iteration": it, "meta_loss": sum(losses) / len(losses), "final_loss": sum(finals) / len(finals),
            "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
            "seconds": time.perf_counter() - start, "learner": " | ".join(descriptions),
        }
        with warnings.catch_warnings():  # a skipped update is deliberate; the schedule still advances
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.scheduler.step()
        self.iteration += 1
        for key, value in record.items():
            self.history[key].append(value)
        if skipped:
            self.history["skipped"].append(it)
            if self.nonfinite_streak >= cfg.max_nonfinite:
                raise TrainingError(
                    f"meta-training diverged: non-finite meta-loss/gradient for {self.nonfinite_streak} iterations "
                    f"in a row (up to iteration {it}); lower 'lr' (now {cfg.lr}) or 'inner_lr', or set 'grad_clip'"
                )
        return record

    # -- monitoring and export -------------------------------------------------------------------
    def exported_gtn(self, averaged: bool = True) -> GTN:
        """The GTN that teaching sets come from: the moving average when ``ema_decay`` is set (and
        ``averaged``) and at least one update was averaged, else the GTN being meta-trained."""
        if averaged and self.ema is not None and int(self.ema.n_averaged) > 0:
            return self.ema.module  # type: ignore[return-value]
        return self.gtn

    def teaching_set(self, averaged: bool = True) -> TeachingSet:
        """The current curriculum frozen into CPU tensors (the learner-facing images and schedule),
        from :meth:`exported_gtn`."""
        return _freeze(self.exported_gtn(averaged), self.config, self.data.name, self.data.mean, self.data.std,
                       self.iteration)

    def monitor(self) -> float:
        """Validation accuracy (on ``monitor_size`` images) of a fixed fresh learner trained on the teaching set."""
        cfg = self.config
        learner, _ = make_learner(cfg.learner, self.data.shape, self.data.num_classes, derive_seed(cfg.seed, "monitor"))
        learner.to(self.device)
        params = self.teaching_set().to(self.device).train(learner)
        acc, _ = evaluate(learner, params, self.data.val_x[: cfg.monitor_size], self.data.val_y[: cfg.monitor_size])
        self.history["monitor_iteration"].append(self.iteration)
        self.history["monitor_accuracy"].append(acc)
        return acc

    def run(self, checkpoint_path: str | os.PathLike[str] | None = None, progress: bool = True,
            stop_after: int | None = None) -> dict[str, list[Any]]:
        """Meta-train up to ``meta_iterations`` (or ``stop_after`` more iterations), checkpointing."""
        from tqdm import tqdm

        cfg = self.config
        end = cfg.meta_iterations if stop_after is None else min(cfg.meta_iterations, self.iteration + stop_after)
        bar = tqdm(total=cfg.meta_iterations, initial=self.iteration, disable=not progress, unit="it",
                   desc=f"meta-train {cfg.dataset}", dynamic_ncols=True)
        acc = self.history["monitor_accuracy"][-1] if self.history["monitor_accuracy"] else float("nan")
        try:
            with device_settings(self.device, cfg.deterministic):
                while self.iteration < end:
                    record = self.step()
                    done = self.iteration
                    if cfg.monitor_every and (done % cfg.monitor_every == 0 or done == cfg.meta_iterations):
                        acc = self.monitor()
                    if checkpoint_path is not None and (done % cfg.checkpoint_every == 0 or done == end):
                        self.save_checkpoint(checkpoint_path)
                    bar.update(1)
                    bar.set_postfix(meta_loss=f"{record['meta_loss']:.3f}", val_acc=f"{acc:.3f}",
                                    s_per_it=f"{record['seconds']:.2f}")
        finally:
            bar.close()
        return self.history

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_mapping(),
            "dataset": self.data.name,
            "image_shape": list(self.data.shape),
            "num_classes": self.data.num_classes,
            "mean": list(self.data.mean),
            "std": list(self.data.std),
            "iteration": self.iteration,
            "nonfinite_streak": self.nonfinite_streak,
            "gtn": self.gtn.state_dict(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "optimizer": self.meta_opt.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": self.history,
        }

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically (temp file + rename)."""
        return save_tensor_file(path, self.state_dict())

    def load_state_dict(self, state: dict[str, Any], where: str = "checkpoint") -> None:
        if list(state["image_shape"]) != list(self.data.shape) or state["num_classes"] != self.data.num_classes:
            raise CheckpointError(f"{where}: made for images {state['image_shape']} with {state['num_classes']} "
                                  f"classes, but dataset {self.data.name} has {list(self.data.shape)}, "
                                  f"{self.data.num_classes}")
        try:
            self.gtn.load_state_dict(state["gtn"])
            if self.ema is not None:
                if "ema" not in state:
                    raise CheckpointError(f"{where}: has no moving average of the GTN, but ema_decay is "
                                          f"{self.config.ema_decay}; resume without ema_decay")
                self.ema.load_state_dict(state["ema"])
            self.meta_opt.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{where}: does not match this configuration ({str(exc).splitlines()[0][:160]})") from None
        self.iteration = int(state["iteration"])
        self.nonfinite_streak = int(state.get("nonfinite_streak", 0))
        self.history = {k: list(v) for k, v in state["history"].items()}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], data: DatasetTensors | None = None,
                        data_root: str | os.PathLike[str] | None = None, device: str = "auto",
                        deterministic: bool = False) -> MetaTrainer:
        """Rebuild a trainer from a checkpoint (loading its dataset unless ``data`` is given), on ``device``."""
        state = read_checkpoint(path)
        from gtn_search.configio import parse_model

        config = parse_model(GTNConfig, {**state["config"], "device": device, "deterministic": deterministic},
                             f"{path}: config")
        if data is None:
            from gtn_search.data import load_dataset

            data = load_dataset(config.dataset, data_root)
        if data.name != state["dataset"]:
            raise CheckpointError(f"{path}: checkpoint is for dataset '{state['dataset']}', not '{data.name}'")
        trainer = cls(config, data)
        trainer.load_state_dict(state, str(path))
        return trainer


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate a GTN checkpoint file."""
    state = load_tensor_file(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "GTN checkpoint")
    require_keys(state, ("config", "dataset", "image_shape", "num_classes", "iteration", "gtn", "optimizer",
                         "scheduler", "history"), path, "GTN checkpoint")
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"{path}: field 'config' is not a mapping")
    return state


def teaching_set_from_checkpoint(path: str | os.PathLike[str]) -> TeachingSet:
    """The teaching set of a GTN checkpoint, from the checkpoint alone (no dataset is loaded): from
    the moving average of the GTN when the run kept one (``ema_decay``), as ``MetaTrainer.teaching_set``.

    Checkpoints written before the dataset's mean/std were stored give a teaching set without
    them (drawings then scale each image to its own range).
    """
    state = read_checkpoint(path)
    from gtn_search.configio import parse_model

    config = parse_model(GTNConfig, state["config"], f"{path}: config")
    shape = tuple(int(v) for v in state["image_shape"])
    with torch_seed(derive_seed(config.seed, "gtn-init")):
        gtn = GTN(config, shape, int(state["num_classes"]))  # type: ignore[arg-type]
    averaged = state.get("ema")
    try:
        gtn.load_state_dict(state["gtn"])
        if isinstance(averaged, dict) and int(averaged.get("n_averaged", 0)) > 0:
            gtn.load_state_dict({k[len("module."):]: v for k, v in averaged.items() if k.startswith("module.")})
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: does not match its own configuration ({str(exc).splitlines()[0][:160]})") from None
    mean, std = (tuple(float(v) for v in state.get(key, ())) for key in ("mean", "std"))
    return _freeze(gtn, config, str(state["dataset"]), mean, std, int(state["iteration"]))


def _freeze(gtn: GTN, config: GTNConfig, dataset: str, mean: tuple[float, ...], std: tuple[float, ...],
            iteration: int) -> TeachingSet:
    """The GTN's curriculum and schedule as plain tensors (the learner-facing teaching set)."""
    gtn.train()
    with torch.no_grad():
        images, targets = gtn.teaching_batches(torch_rng(config.seed, "teaching-set"))
        lr, momentum = gtn.schedule()
    return TeachingSet(
        images=images.detach().cpu().clone(), targets=targets.detach().cpu().clone(), lr=lr.detach().cpu().clone(),
        momentum=momentum.detach().cpu().clone(), dataset=dataset, num_classes=gtn.num_classes, mean=mean, std=std,
        info={"config": config.to_mapping(), "meta_iterations_done": iteration, "image_shape": list(gtn.image_shape)},
    )
