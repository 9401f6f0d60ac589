"""The learned inner optimiser: SGD with momentum, one learning rate and momentum per step.

The update is the one every teaching-set consumer must replay exactly::

    v_t = momentum_t * v_{t-1} + grad_t
    p_t = p_{t-1} - lr_t * v_t

The learning rate is stored in log space and the momentum as a logit (sigmoid keeps it in (0, 1)),
both initialised at the paper's 0.02 and 0.5 and meta-learned with everything else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class LearnedSGD(nn.Module):
    """Per-step learning rates and momenta, meta-learned (or frozen with ``learnable=False``)."""

    def __init__(self, steps: int, lr: float = 0.02, momentum: float = 0.5, learnable: bool = True) -> None:
        super().__init__()
        log_lr = torch.full((steps,), math.log(lr))
        logit_m = torch.full((steps,), math.log(momentum / (1.0 - momentum)))
        if learnable:
            self.log_lr = nn.Parameter(log_lr)
            self.logit_momentum = nn.Parameter(logit_m)
        else:
            self.register_buffer("log_lr", log_lr)
            self.register_buffer("logit_momentum", logit_m)

    def schedule(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr [T], momentum [T])`` as differentiable tensors."""
        return self.log_lr.exp(), torch.sigmoid(self.logit_momentum)


def sgd_momentum_step(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    velocity: Sequence[torch.Tensor] | None,
    lr: torch.Tensor | float,
    momentum: torch.Tensor | float,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One functional step of the update above; returns (new params, new velocity)."""
    if velocity is None:
        new_v = list(grads)
    else:
        new_v = [momentum * v + g for v, g in zip(velocity, grads)]
    return [p - lr * v for p, v in zip(params, new_v)], new_v
