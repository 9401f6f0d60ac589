"""Pictures of a GTN run: the curriculum (paper Fig. 3), meta-training curves, the learned lr and
momentum schedule, and learning curves of fresh learners on GTN versus real data (paper Fig. 2)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gtn_search.gtn.teaching_set import TeachingSet


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike[str]) -> Path:  # type: ignore[no-untyped-def]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return out


def _to_display(img: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo the dataset normalisation and clip to [0, 1], as an HxWxC (or HxW) array."""
    x = img.float()
    if mean and std and len(mean) == x.shape[0]:
        x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    else:
        x = (x - x.min()) / (x.max() - x.min() + 1e-8)
    x = x.clamp(0, 1)
    return x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)


def plot_curriculum(teaching: TeachingSet, path: str | os.PathLike[str], steps: int | None = None,
                    per_class: int = 1) -> Path:
    """One row per inner step, ``per_class`` images of each class per row (the paper's Figure 3)."""
    plt = _plt()
    total = teaching.steps
    steps = min(total, 32) if steps is None else max(1, min(steps, total))
    rows = sorted({round(i * (total - 1) / max(1, steps - 1)) for i in range(steps)}) if steps > 1 else [0]
    k = teaching.num_classes
    labels = teaching.targets if teaching.targets.dim() == 2 else teaching.targets.argmax(-1)
    cols = k * per_class
    height = 0.55 * len(rows) + 0.6
    fig, axes = plt.subplots(len(rows), cols, figsize=(0.55 * cols + 0.8, height), squeeze=False,
                             gridspec_kw={"top": 1 - 0.55 / height, "bottom": 0.01, "hspace": 0.08, "wspace": 0.08})
    gray = teaching.image_shape[0] == 1
    for r, t in enumerate(rows):
        for c in range(k):
            idx = (labels[t] == c).nonzero().flatten()[:per_class].tolist()
            for j in range(per_class):
                ax = axes[r][c * per_class + j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(idx):
                    ax.imshow(_to_display(teaching.images[t, idx[j]], teaching.mean, teaching.std).numpy(),
                              cmap="gray" if gray else None, vmin=0, vmax=1)
                if r == 0 and j == 0:
                    ax.set_title(str(c), fontsize=8)
        axes[r][0].set_ylabel(f"step {t + 1}", fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"GTN curriculum ({teaching.dataset}): one row per inner-loop step", fontsize=10,
                 y=1 - 0.12 / height)
    return _save(fig, path)


def plot_meta_training(history: Mapping[str, Sequence[Any]], path: str | os.PathLike[str]) -> Path:
    """Meta-loss per meta-iteration (and its moving average) and the monitor validation accuracy."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    its, losses = list(history["iteration"]), list(history["meta_loss"])
    ax1.plot(its, losses, color="#9ecae1", lw=0.8, label="meta-loss")
    window = max(1, len(losses) // 25)
    if len(losses) >= window > 1:
        smooth = torch.tensor(losses).unfold(0, window, 1).mean(1).tolist()
        ax1.plot(its[window - 1:], smooth, color="#08519c", lw=1.6, label=f"moving average ({window})")
    ax1.set_yscale("log")
    ax1.set_xlabel("meta-iteration")
    ax1.set_ylabel("loss on real training data")
    ax1.legend(fontsize=8)
    ax2.plot(history["monitor_iteration"], history["monitor_accuracy"], "o-", color="#d94801", ms=3)
    ax2.set_xlabel("meta-iteration")
    ax2.set_ylabel("validation accuracy of a fresh learner")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_schedule(teaching: TeachingSet, path: str | os.PathLike[str]) -> Path:
    """The learned learning rate and momentum per inner step."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    steps = range(1, teaching.steps + 1)
    ax.plot(steps, teaching.lr.numpy(), "o-", ms=3, color="#08519c", label="learning rate")
    ax.set_xlabel("inner step")
    ax.set_ylabel("learning rate", color="#08519c")
    ax2 = ax.twinx()
    ax2.plot(steps, teaching.momentum.numpy(), "s-", ms=3, color="#d94801", label="momentum")
    ax2.set_ylabel("momentum", color="#d94801")
    ax2.set_ylim(0, 1)
    ax.set_title("learned inner-loop schedule")
    fig.tight_layout()
    return _save(fig, path)


def plot_learning_curves(curves: Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float]]],
                         path: str | os.PathLike[str], title: str = "", ylabel: str = "test accuracy") -> Path:
    """Accuracy (mean and std band) versus inner steps for each labelled curve (paper Fig. 2)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, (steps, mean, std) in curves.items():
        m, s = torch.tensor(mean), torch.tensor(std)
        ax.plot(steps, m.numpy(), "o-", ms=3, label=label)
        ax.fill_between(steps, (m - s).numpy(), (m + s).numpy(), alpha=0.2)
    ax.set_xlabel("SGD steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def save_run_plots(trainer, out: str | os.PathLike[str]) -> list[Path]:  # type: ignore[no-untyped-def]
    """The standard pictures of a meta-training run, written into ``out``."""
    out = Path(out)
    teaching = trainer.teaching_set()
    return [
        plot_meta_training(trainer.history, out / "meta_training.png"),
        plot_schedule(teaching, out / "schedule.png"),
        plot_curriculum(teaching, out / "curriculum.png"),
    ]
