"""Benchmark: gradients handed on in channels-last layout (``search_spaces.layout.channels_last_grad``).

    python benchmarks/grad_layout.py [--archs 6] [--rounds 3] [--threads 2] [--data-root ../shared/data] \
        --out benchmarks/results/grad_layout.json

In channels-last networks, slicing's backward returns NCHW gradients and a concatenation's backward
hands each input a strided slice; the backward kernels that meet them (ReLU, pooling, BatchNorm) take
slow paths on such layouts. ``channels_last_grad`` copies those gradients to channels-last first.

1. Kernels alone: ReLU's and max/average pooling's backward on a 96x32x28x28 channels-last
   activation, with the gradient channels-last, NCHW, or a strided channel slice (a concatenation's).
2. Whole steps with the conversion off and on, in interleaved rounds (this VM's speed drifts by 20%
   within minutes), on ``--archs`` random gtn-nas cells: one ``mnist-final`` training step (batch
   96); one ``mnist-search`` step (the decisive comparison's ground-truth network); one inner step
   of a learner-style 4-channel ``mnist-tiny`` NAS learner followed by the meta-gradient through it
   (what a ``fashion-nas`` meta-iteration repeats); one GTN-evaluator trial (16 steps of mnist-tiny
   on the shipped teaching set, 1,000 validation images). Losses, gradients and scores with the
   conversion are compared with those without: they agree within float rounding, not bit for bit
   (BatchNorm's and the convolutions' backward sums run in another order); the largest relative
   difference of any tensor (to its largest entry) is saved (a trial's score is one number: there it
   is the score's own relative change, what that rounding grows into over 16 training steps).
"""

from __future__ import annotations

import argparse
import json
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


def gtn_trial(arch, data_root: str, seeds: int = 1) -> Callable[[], list[torch.Tensor]]:  # type: ignore[no-untyped-def]
    """One GTN-evaluator trial (the shipped quickstart teaching set, mnist-tiny, 1,000 validation
    images); with ``seeds`` > 1, that many initialisations stacked side by side, every seed's score."""
    from gtn_search.cli.quickstart import shipped_teaching_set
    from gtn_search.evaluators import make_evaluator

    ev = make_evaluator("gtn", {"teaching_set": str(shipped_teaching_set()), "val_size": 1000, "seeds": seeds},
                        data_root)
    ev.setup()
    bp = blueprint_preset("mnist-tiny")

    def step() -> list[torch.Tensor]:
        measured = ev.evaluate(arch, bp, 1)
        return [torch.tensor(measured.metrics["seed_scores"] if seeds > 1 else measured.score)]
    return step


def compare_settings(works: dict[str, Callable], archs: list, rounds: int, settings: dict[str, object],
                     apply: Callable[[object], None], label: str) -> dict[str, dict]:
    """Each work on every architecture under each setting (``apply(value)``; the first setting is the
    baseline, the last one is left applied), in interleaved rounds; seconds, speed-ups and the largest
    relative difference of any returned tensor from the baseline's (to its largest entry)."""
    names = list(settings)
    base = names[0]
    results: dict[str, dict] = {}
    for name, make in works.items():
        steps = [make(a) for a in archs]
        times: dict[str, float] = dict.fromkeys(names, 0.0)
        outputs: dict[str, list[list[torch.Tensor]]] = {}
        for r in range(rounds):
            for setting in names[r % len(names):] + names[:r % len(names)]:
                apply(settings[setting])
                got = []
                for step in steps:
                    step()  # warm-up (allocator, kernels)
                    start = time.perf_counter()
                    got.append(step())
                    times[setting] += time.perf_counter() - start
                outputs.setdefault(setting, got)
        apply(settings[names[-1]])
        row: dict[str, float] = {f"seconds_{k}": v / rounds for k, v in times.items()}
        for setting in names[1:]:
            worst = 0.0
            for a, b in zip(outputs[base], outputs[setting]):
                worst = max([worst] + [float((x - y).abs().max() / x.abs().max().clamp_min(1e-30)) for x, y in zip(a, b)])
            row[f"speedup_{setting}"] = times[base] / times[setting]
            row[f"max_relative_difference_{setting}"] = worst
            print(f"{name} ({len(archs)} cells, {rounds} rounds): {base} {row[f'seconds_{base}']:.2f} s; with "
                  f"{label} {row[f'seconds_{setting}']:.2f} s ({row[f'speedup_{setting}']:.2f}x, largest relative "
                  f"difference {worst:.1e})", flush=True)
        results[name] = row
    return results


def run_benchmark(doc: str, settings: dict[str, object], apply: Callable[[object], None], label: str,
                  kernels: Callable[[], dict[str, dict[str, float]]],
                  works: Callable[[argparse.Namespace], dict[str, Callable]],
                  extra: Callable[[list], dict[str, object]] | None = None) -> None:
    """The command line shared by the code-path benchmarks (this one, ``norm_layout.py``,
    ``max_pool_eval.py``): kernels first (printed), then :func:`compare_settings` on ``--archs``
    random gtn-nas cells; writes ``--out`` (JSON) with ``extra(archs)`` added."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--archs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--only", nargs="*", help="substrings of the work names to run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    kernel_ms = kernels()
    for name, row in kernel_ms.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in row.items()), flush=True)
    space, rng = get_space("gtn-nas"), np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(args.archs)]
    chosen = {k: v for k, v in works(args).items() if not args.only or any(s in k for s in args.only)}
    more = extra(archs) if extra else {}
    results = compare_settings(chosen, archs, args.rounds, settings, apply, label)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": args.threads, "architectures": args.archs, "rounds": args.rounds,
                                        **more, "kernels_ms": kernel_ms, "steps": results}, indent=2) + "\n")


#: conversion setting -> layout.convert_grads
SETTINGS = {"off": False, "on": True}


def main() -> None:
    run_benchmark(__doc__, SETTINGS, lambda value: setattr(layout, "convert_grads", value), "the conversion", kernels,
                  lambda args: {"mnist-final step, batch 96": lambda a: training_step(a, "mnist-final", 96),
                                "mnist-search step, batch 96": lambda a: training_step(a, "mnist-search", 96),
                                "NAS-learner step + meta-gradient": meta_step,
                                "GTN-evaluator trial": lambda a: gtn_trial(a, args.data_root)})


if __name__ == "__main__":
    main()
