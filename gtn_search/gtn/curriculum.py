"""Curricula: which noise vectors (and labels) the generator turns into each inner-loop batch.

Four variants, from the paper's ablation (the full curriculum is best):

* ``none`` - fresh Gaussian noise every step, nothing learned;
* ``all_shuffled`` - a learned pool of T*B noise vectors, presented individually in random order;
* ``shuffled_batch`` - learned batches [T, B, nz], presented in a random batch order;
* ``full`` - a learned tensor [T, B, nz] used in order: batch t is always shown at step t.

Labels are fixed and balanced (index mod K). With ``soft_labels`` each sample also gets learned
label logits (initialised to a confident one-hot), and the learner is trained on their softmax.
Randomness (fresh noise, orders) comes from the CPU ``torch.Generator`` passed in (moved to the
curriculum's device afterwards), so a meta-iteration is a pure function of its seed on any device.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from gtn_search.device import host_to_device

CurriculumKind = Literal["none", "all_shuffled", "shuffled_batch", "full"]
CURRICULA: tuple[str, ...] = ("none", "all_shuffled", "shuffled_batch", "full")


class Curriculum(nn.Module):
    """Noise and targets for T inner steps of B samples each."""

    def __init__(
        self, kind: str, steps: int, batch: int, noise_dim: int, num_classes: int, soft_labels: bool = False,
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        if kind not in CURRICULA:
            from gtn_search.errors import unknown_name

            raise unknown_name("curriculum", kind, CURRICULA, "curriculum")
        self.kind, self.steps, self.batch, self.noise_dim, self.num_classes = kind, steps, batch, noise_dim, num_classes
        gen = torch.Generator().manual_seed(init_seed)
        self.register_buffer("labels", (torch.arange(steps * batch) % num_classes).view(steps, batch))
        self.noise = None if kind == "none" else nn.Parameter(torch.randn(steps, batch, noise_dim, generator=gen))
        self.label_logits = None
        if soft_labels:
            init = torch.full((steps, batch, num_classes), -2.0)
            init.scatter_(2, self.labels.unsqueeze(-1), 2.0)
            self.label_logits = nn.Parameter(init)

    def sample(self, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(noise [T, B, nz], generator labels [T, B], learner targets [T, B] or [T, B, K])``.

        Generator labels are the hard labels the generator is conditioned on; learner targets are
        the same labels, or their learned soft versions.
        """
        t, b = self.steps, self.batch
        labels = self.labels
        soft = None if self.label_logits is None else torch.softmax(self.label_logits, dim=-1)
        if self.kind == "none":
            noise = host_to_device(torch.randn(t, b, self.noise_dim, generator=rng), self.labels.device)
        elif self.kind == "full":
            noise = self.noise
        elif self.kind == "shuffled_batch":
            order = host_to_device(torch.randperm(t, generator=rng), self.labels.device)
            noise, labels = self.noise[order], labels[order]
            soft = None if soft is None else soft[order]
        else:  # all_shuffled
            order = host_to_device(torch.randperm(t * b, generator=rng), self.labels.device)
            noise = self.noise.reshape(t * b, -1)[order].view(t, b, -1)
            labels = labels.reshape(-1)[order].view(t, b)
            soft = None if soft is None else soft.reshape(t * b, -1)[order].view(t, b, -1)
        return noise, labels, (labels if soft is None else soft)
