"""Benchmark: few-channel BatchNorm in NCHW inside channels-last networks (``search_spaces.layout.BatchNorm2d``).

    python benchmarks/norm_layout.py [--archs 6] [--rounds 3] [--threads 2] [--data-root ../shared/data] \
        --out benchmarks/results/norm_layout.json

PyTorch's CPU kernel for the batch statistics of a channels-last map vectorises over the channels; with
4 or 8 channels (every 4-channel NAS learner, the first stage of ``mnist-search``) it is several times
slower than the NCHW kernel. ``layout.BatchNorm2d`` copies such maps to NCHW, normalises there and
hands the result and its gradient back in channels-last.

1. Kernels alone: forward + backward of batch statistics on channels-last maps of several shapes,
   with the channels-last kernel and with the NCHW detour (ms per call).
2. Whole steps with the detour off (``layout.nchw_norm_max_channels = 0``: the code of before) and on
   (8), in interleaved rounds, on ``--archs`` random gtn-nas cells: one ``mnist-final`` and one
   ``mnist-search`` training step (batch 96); one inner step of a learner-style 4-channel
   ``mnist-tiny`` NAS learner followed by the meta-gradient through it; one GTN-evaluator trial (16
   steps, 1,000 validation images), the same with 4 seeds stacked (16 channels: no detour, so its
   ratio to one seed grows) and one real-data trial (64 steps of batch 32, 1,000 validation images).
   Results are compared with the detour's: equal within float rounding, not bit for bit (the two
   kernels sum in another order); a trial's score is one number, so there the figure is the score's
   relative change after that rounding has grown through its training steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from grad_layout import gtn_trial, meta_step, per_call_ms, run_benchmark, training_step

import search_spaces.layout as layout
from search_spaces.blueprint import blueprint_preset

#: detour setting -> layout.nchw_norm_max_channels
SETTINGS = {"off": 0, "on": 8}
SHAPES = [(32, 4, 28, 28), (32, 8, 14, 14), (1000, 4, 28, 28), (96, 8, 28, 28), (96, 16, 28, 28), (96, 32, 14, 14)]


def kernels() -> dict[str, dict[str, float]]:
    """Forward + backward of batch statistics on channels-last maps, each kernel (ms per call)."""
    cl = torch.channels_last
    out = {}
    for shape in SHAPES:
        x = torch.randn(shape).contiguous(memory_format=cl).requires_grad_()
        w, b = torch.ones(shape[1], requires_grad=True), torch.zeros(shape[1], requires_grad=True)
        g = torch.randn(shape).contiguous(memory_format=cl)

        def channels_last() -> None:
            torch.autograd.grad(F.batch_norm(x, None, None, w, b, True), (x, w, b), g)

        def nchw() -> None:
            y = F.batch_norm(x.contiguous(), None, None, w, b, True).contiguous(memory_format=cl)
            torch.autograd.grad(y, (x, w, b), g)[0].contiguous(memory_format=cl)

        calls = 5 if shape[0] >= 1000 else 30
        out["x".join(map(str, shape))] = {"channels_last": per_call_ms(channels_last, calls),
                                           "nchw_detour": per_call_ms(nchw, calls)}
    return out


def real_trial(arch, data_root: str) -> Callable[[], list[torch.Tensor]]:  # type: ignore[no-untyped-def]
    """One real-data trial (64 steps of batch 32 on MNIST, 1,000 validation images)."""
    from gtn_search.evaluators import make_evaluator

    ev = make_evaluator("real", {"dataset": "mnist", "steps": 64, "batch_size": 32, "lr": 0.05, "val_size": 1000},
                        data_root)
    ev.setup()
    bp = blueprint_preset("mnist-tiny")

    def step() -> list[torch.Tensor]:
        return [torch.tensor(ev.evaluate(arch, bp, 1).score)]
    return step


def main() -> None:
    run_benchmark(__doc__, SETTINGS, lambda value: setattr(layout, "nchw_norm_max_channels", value),
                  "the NCHW detour", kernels,
                  lambda args: {"mnist-final step, batch 96": lambda a: training_step(a, "mnist-final", 96),
                                "mnist-search step, batch 96": lambda a: training_step(a, "mnist-search", 96),
                                "NAS-learner step + meta-gradient": meta_step,
                                "GTN-evaluator trial": lambda a: gtn_trial(a, args.data_root),
                                "GTN-evaluator trial, 4 seeds stacked": lambda a: gtn_trial(a, args.data_root, 4),
                                "real-data trial": lambda a: real_trial(a, args.data_root)})


if __name__ == "__main__":
    main()
