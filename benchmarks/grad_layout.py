"""Benchmark: gradients handed on in channels-last layout (``search_spaces.layout.channels_last_grad``).

    python benchmarks/grad_layout.py [--archs 6] [--rounds 3] [--threads 2] --out benchmarks/results/grad_layout.json

In channels-last networks, slicing's backward returns NCHW gradients and a concatenation's backward
hands each input a strided slice; the backward kernels that meet them (ReLU, pooling, BatchNorm) take
slow paths on such layouts. ``channels_last_grad`` copies those gradients to channels-last first,
for activations of at least ``CONVERT_MIN_ELEMENTS`` floats (a NAS learner's are smaller: its row
measures that nothing changed there).

1. Kernels alone: ReLU's and max/average pooling's backward on a 96x32x28x28 channels-last
   activation, with the gradient channels-last, NCHW, or a strided channel slice (a concatenation's).
2. Whole steps, conversion off and on in interleaved rounds (this VM's speed drifts by 20% within
   minutes), on ``--archs`` random gtn-nas cells: one ``mnist-final`` training step (batch 96) and one
   ``mnist-search`` step (the decisive comparison's ground-truth network), and one inner step of a
   learner-style 4-channel ``mnist-tiny`` NAS learner followed by the meta-gradient through it (what a
   ``fashion-nas`` meta-iteration repeats). Losses and gradients of the two settings are compared:
   they agree within float rounding, not bit for bit (BatchNorm's and the convolutions' backward sums
   run in another order on the other layout): the largest relative difference of any gradient tensor
   (to its largest entry) is saved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import search_spaces.layout as layout  # noqa: E402
from gtn_search.host_memory import retain_freed_memory  # noqa: E402
from search_spaces.blueprint import blueprint_preset  # noqa: E402
from search_spaces.network import build  # noqa: E402
from search_spaces.presets import get_space  # noqa: E402

LEARNER_STYLE = {"norm": "batch_stats", "weight_norm": True, "activation": "leaky_relu", "init": "kaiming"}


def per_call_ms(fn: Callable[[], object], calls: int = 30) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1000


def kernels() -> dict[str, dict[str, float]]:
    """Backward kernels on one channels-last activation, per gradient layout (ms per call)."""
    cl = torch.channels_last
    x = torch.randn(96, 32, 28, 28).contiguous(memory_format=cl)
    y = torch.relu(x)
    _, idx = torch.ops.aten.max_pool2d_with_indices(x, [3, 3], [1, 1], [1, 1])
    wide = torch.randn(96, 96, 28, 28).contiguous(memory_format=cl)
    grads = {"channels_last": wide[:, 32:64].contiguous(memory_format=cl), "nchw": wide[:, 32:64].contiguous(),
             "strided_slice": wide[:, 32:64]}
    ops: dict[str, Callable[[torch.Tensor], object]] = {
        "relu_backward": lambda g: torch.ops.aten.threshold_backward(g, y, 0),
        "max_pool_3x3_backward": lambda g: torch.ops.aten.max_pool2d_with_indices_backward(
            g, x, [3, 3], [1, 1], [1, 1], [1, 1], False, idx),
        "avg_pool_3x3_backward": lambda g: torch.ops.aten.avg_pool2d_backward(
            g, x, [3, 3], [1, 1], [1, 1], False, False, None),
    }
    out = {name: {layout_name: per_call_ms(lambda: op(g)) for layout_name, g in grads.items()} for name, op in ops.items()}
    out["copy_to_channels_last"] = {k: per_call_ms(lambda: g.contiguous(memory_format=cl)) for k, g in grads.items()
                                    if k != "channels_last"}
    return out


def training_step(arch, preset: str, batch: int) -> Callable[[], list[torch.Tensor]]:  # type: ignore[no-untyped-def]
    bp = blueprint_preset(preset).model_copy(update={"num_classes": 10})
    net = build(arch, bp, seed=0)
    g = torch.Generator().manual_seed(1)
    xb, yb = torch.randn(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)
    params = list(net.parameters())

    def step() -> list[torch.Tensor]:
        loss = net.training_loss(xb, yb)
        return [loss.detach(), *torch.autograd.grad(loss, params)]
    return step


def meta_step(arch) -> Callable[[], list[torch.Tensor]]:  # type: ignore[no-untyped-def]
    """One SGD step of a NAS learner on learnable images, then the meta-gradient to those images."""
    bp = blueprint_preset("mnist-tiny").model_copy(update={**LEARNER_STYLE, "num_classes": 10})
    net = build(arch, bp, seed=0)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(32, 1, 28, 28, generator=g).requires_grad_()
    targets = torch.randint(0, 10, (32,), generator=g)
    real_x, real_y = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    names = [n for n, _ in net.named_parameters()]
    params = dict(net.named_parameters())

    def step() -> list[torch.Tensor]:
        inner = torch.func.functional_call(net, params, (images,))
        loss = torch.nn.functional.cross_entropy(inner, targets)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True)
        new = {n: params[n] - 0.05 * gr for n, gr in zip(names, grads)}
        meta = torch.nn.functional.cross_entropy(torch.func.functional_call(net, new, (real_x,)), real_y)
        return [meta.detach(), *torch.autograd.grad(meta, [images])]
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    kernel_ms = kernels()
    for name, row in kernel_ms.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in row.items()), flush=True)
    space, rng = get_space("gtn-nas"), np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(args.archs)]
    works = {"mnist-final step, batch 96": lambda a: training_step(a, "mnist-final", 96),
             "mnist-search step, batch 96": lambda a: training_step(a, "mnist-search", 96),
             "NAS-learner step + meta-gradient": meta_step}
    results: dict[str, dict] = {}
    for name, make in works.items():
        steps = [make(a) for a in archs]
        times: dict[bool, list[float]] = {False: [], True: []}
        worst = 0.0
        for r in range(args.rounds):
            for convert in ((False, True) if r % 2 == 0 else (True, False)):
                layout.convert_grads = convert
                outputs = []
                for step in steps:
                    step()  # warm-up (allocator, kernels)
                    start = time.perf_counter()
                    outputs.append(step())
                    times[convert].append(time.perf_counter() - start)
                if r == 0:
                    if convert:
                        with_conversion = outputs
                    else:
                        without = outputs
        layout.convert_grads = True
        for a, b in zip(without, with_conversion):
            worst = max([worst] + [float((x - y).abs().max() / x.abs().max().clamp_min(1e-30)) for x, y in zip(a, b)])
        off, on = sum(times[False]), sum(times[True])
        results[name] = {"seconds_off": off / args.rounds, "seconds_on": on / args.rounds, "speedup": off / on,
                         "max_relative_difference": worst}
        print(f"{name} ({args.archs} cells, {args.rounds} rounds): {off / args.rounds:.2f} s without, "
              f"{on / args.rounds:.2f} s with the conversion: {off / on:.2f}x; largest relative difference of "
              f"a loss or gradient {worst:.1e}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": args.threads, "architectures": args.archs, "rounds": args.rounds,
                                        "kernels_ms": kernel_ms, "steps": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
