"""The inner loop: train a learner functionally for T steps, optionally differentiably.

One implementation serves meta-training (``create_graph=True``: the meta-gradient flows back
through every inner step into the synthetic data and the learned lr/momentum), monitoring, and
every consumer of a teaching set (``create_graph=False``: plain training, same update rule). The
learner is called with ``torch.func.functional_call`` on a dict of parameters, so the module
itself is never modified. With ``checkpoint=True`` each differentiable step is recomputed during
the backward pass instead of stored (``torch.utils.checkpoint``), trading compute for memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint as _checkpoint

from gtn_search.gtn.inner_optimizer import sgd_momentum_step
from search_spaces.replicas import replica_cross_entropy

Params = dict[str, torch.Tensor]


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with hard labels [N] or soft label distributions [N, K].

    Logits [N, R, K] of R stacked replicas (``search_spaces.replicas``) give the sum of the
    replicas' mean losses (hard labels [N] or [N, R], soft [N, K]).
    """
    if logits.dim() == 3:
        return replica_cross_entropy(logits, targets)
    if targets.dim() == 1:
        return F.cross_entropy(logits, targets)
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def logits_of(module: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Logits of ``module`` with ``params`` (an auxiliary head's output is ignored)."""
    out = functional_call(module, params, (x,))
    return out[0] if isinstance(out, tuple) else out


@dataclass
class UnrollResult:
    """Final parameters, the summed intermediate meta-losses, and per-step inner losses (detached
    tensors on the learner's device: reading them is left to the caller, no sync per step)."""

    params: Params
    intermediate_loss: torch.Tensor | None
    inner_losses: list[torch.Tensor] = field(default_factory=list)


def initial_params(module: nn.Module) -> Params:
    """The learner's initial parameters as fresh leaves that require grad."""
    return {n: p.detach().clone().requires_grad_(True) for n, p in module.named_parameters()}


def unroll(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    lr: torch.Tensor,
    momentum: torch.Tensor,
    *,
    steps: int | None = None,
    create_graph: bool = False,
    checkpoint: bool = False,
    intermediate: Callable[[int, Params], torch.Tensor | None] | None = None,
    params: Params | None = None,
) -> UnrollResult:
    """Train ``module`` on ``images[t]``/``targets[t]`` for t < steps with the SGD-momentum rule.

    ``images`` is [T, B, C, H, W]; ``targets`` [T, B] (hard) or [T, B, K] (soft); ``lr`` and
    ``momentum`` are [T]. ``intermediate(t, params)`` may return a loss on real data after step
    t; those losses are summed into ``intermediate_loss``. Non-finite inner losses propagate (the
    caller decides what to do with NaN).
    """
    steps = images.shape[0] if steps is None else steps
    if steps > images.shape[0]:
        raise ValueError(f"steps={steps} exceeds the {images.shape[0]} batches available")
    names = [n for n, _ in module.named_parameters()]
    current = params if params is not None else initial_params(module)
    values = [current[n] for n in names]
    velocity: list[torch.Tensor] | None = None
    total_inter: torch.Tensor | None = None
    losses: list[torch.Tensor] = []

    def one_step(x, y, step_lr, step_m, *state):  # type: ignore[no-untyped-def]
        n = len(names)
        ps, vs = list(state[:n]), (list(state[n:]) if len(state) > n else None)
        with torch.enable_grad():
            loss = classification_loss(logits_of(module, dict(zip(names, ps)), x), y)
            grads = torch.autograd.grad(loss, ps, create_graph=create_graph)
        new_p, new_v = sgd_momentum_step(ps, grads, vs, step_lr, step_m)
        return (loss.detach(), *new_p, *new_v)

    for t in range(steps):
        state = tuple(values) + (tuple(velocity) if velocity is not None else ())
        if create_graph and checkpoint:
            out = _checkpoint(one_step, images[t], targets[t], lr[t], momentum[t], *state, use_reentrant=False)
        else:
            out = one_step(images[t], targets[t], lr[t], momentum[t], *state)
        losses.append(out[0])
        values = list(out[1 : 1 + len(names)])
        velocity = list(out[1 + len(names) :])
        if not create_graph:
            values = [v.detach().requires_grad_(True) for v in values]
            velocity = [v.detach() for v in velocity]
        if intermediate is not None:
            loss_t = intermediate(t, dict(zip(names, values)))
            if loss_t is not None:
                total_inter = loss_t if total_inter is None else total_inter + loss_t
    final = dict(zip(names, values))
    if not create_graph:
        final = {n: v.detach() for n, v in final.items()}
    return UnrollResult(final, total_inter, losses)


@torch.no_grad()
def evaluate(
    module: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """``(accuracy, mean loss)`` of ``module`` with ``params`` on ``x``/``y``, in batches.

    Learners normalise with batch statistics, so batches of real data are normalised by their
    own statistics, exactly as during the meta-loss. The sums stay on the device (one sync at the
    end); the loss is summed in float64, as Python floats summed it before.
    """
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, len(x), batch_size):
        logits = logits_of(module, params, x[i : i + batch_size])
        yb = y[i : i + batch_size]
        correct += (logits.argmax(1) == yb).sum()
        total_loss += F.cross_entropy(logits, yb, reduction="sum").double()
    return int(correct) / len(x), float(total_loss) / len(x)


@torch.no_grad()
def evaluate_replicas(
    module: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> list[tuple[float, float]]:
    """``(accuracy, mean loss)`` of every replica of a stacked network (``search_spaces.replicas``)
    on the same ``x``/``y``, as :func:`evaluate` computes them for one network."""
    correct: torch.Tensor | None = None
    total_loss: torch.Tensor | None = None
    for i in range(0, len(x), batch_size):
        logits = logits_of(module, params, x[i : i + batch_size])  # [n, R, K]
        yb = y[i : i + batch_size]
        hits = (logits.argmax(2) == yb.unsqueeze(1)).sum(0)
        losses = F.cross_entropy(logits.transpose(1, 2), yb.unsqueeze(1).expand(-1, logits.shape[1]),
                                 reduction="none").sum(0).double()
        correct = hits if correct is None else correct + hits
        total_loss = losses if total_loss is None else total_loss + losses
    assert correct is not None and total_loss is not None
    return [(int(c) / len(x), float(v) / len(x)) for c, v in zip(correct.tolist(), total_loss.tolist())]
