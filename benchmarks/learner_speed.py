"""How far learner training is from this machine's limit, in the old and the new layout, side by side.

For each kind of work that every number of gtn-search comes from, this script counts the FLOPs
(torch's FlopCounterMode), times it in the NCHW layout (the code as it was before channels-last
networks: ``search_spaces.layout.use_channels_last(False)``) and in the channels-last layout (the
default now), and divides by the machine's fp32 matmul peak measured in the same run. Every
configuration runs in each of ``--rounds`` interleaved rounds (the order alternates), and every
ratio is taken within a round (this VM's speed drifts by 20% within minutes); the table gives the
median and the range over the rounds.

Work: one inner training step of a 4-channel mnist-tiny NAS learner (batch 32, no meta-gradient);
one GTN-evaluator trial (16 steps on the shipped quickstart teaching set, 1,000 validation images);
one real-data trial (64 SGD steps, batch 32); one ``mnist-cpu`` meta-iteration (fixed conv learner,
not a cell network: the layout does not touch it); one ``fashion-nas`` meta-iteration at 32 inner
steps (random gtn-nas cells); one final-training step of an ``mnist-final`` network (batch 96); and K=4 seeds of a
GTN-evaluator and of a real-data trial, trained one by one (as before) and batched as one stacked
network (``search_spaces.replicas``, the default now), against one seed. Scores of both layouts are
compared on ``--archs`` architectures. The process keeps freed memory for reuse
(``gtn_search.host_memory``) in both columns; ``benchmarks/host_memory.py`` measures that setting.

    python benchmarks/learner_speed.py --data-root ../shared/data [--rounds 3] [--threads 2]
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
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gtn_search.cli.quickstart import shipped_teaching_set  # noqa: E402
from gtn_search.data import load_dataset  # noqa: E402
from gtn_search.evaluators import make_evaluator  # noqa: E402
from gtn_search.gtn.config import load_config  # noqa: E402
from gtn_search.gtn.meta_train import MetaTrainer  # noqa: E402
from gtn_search.gtn.unroll import unroll  # noqa: E402
from gtn_search.host_memory import retain_freed_memory, retaining_freed_memory  # noqa: E402
from search_spaces.blueprint import blueprint_preset  # noqa: E402
from search_spaces.layout import use_channels_last  # noqa: E402
from search_spaces.network import build  # noqa: E402
from search_spaces.presets import get_space  # noqa: E402

GTN_ONE = "GTN-evaluator trial (16 steps, 1000 val)"
SEEDS_ONE_BY_ONE = "GTN-evaluator trial, K=4 seeds one by one"
SEEDS_BATCHED = "GTN-evaluator trial, K=4 seeds batched"
REAL_ONE = "real-data trial (64 steps, batch 32)"
REAL_ONE_BY_ONE = "real-data trial, K=4 seeds one by one"
REAL_BATCHED = "real-data trial, K=4 seeds batched"
LEARNER_STYLE = {"norm": "batch_stats", "weight_norm": True, "activation": "leaky_relu", "init": "kaiming"}


def matmul_peak(seconds: float = 1.5) -> float:
    """fp32 GFLOP/s of a 2048x2048 matmul with the current thread count (best of a few runs)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return best


class _FlopCount(TorchDispatchMode):
    """Counts FLOPs with torch's flop registry (FlopCounterMode's formulas, without its module hooks,
    which do not work inside ``torch.autograd.grad``)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def flops_of(fn: Callable[[], object]) -> float:
    with _FlopCount() as counter:
        fn()
    return float(counter.total)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def workloads(data_root: str) -> dict[str, tuple[Callable[[], object], int]]:
    """Each kind of work as a zero-argument callable, with how often to repeat it per measurement."""
    mnist = load_dataset("mnist", data_root)
    fashion = load_dataset("fashion_mnist", data_root)
    space = get_space("gtn-nas")
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    tiny = blueprint_preset("mnist-tiny").model_copy(update={**LEARNER_STYLE, "num_classes": 10})
    g = torch.Generator().manual_seed(0)
    images = torch.randn(1, 32, 1, 28, 28, generator=g)
    targets = torch.randint(0, 10, (1, 32), generator=g)
    lr, momentum = torch.full((1,), 0.05), torch.full((1,), 0.5)
    step_net = build(arch, tiny, seed=0)

    def inner_step() -> object:
        return unroll(step_net, images, targets, lr, momentum)

    teaching = str(shipped_teaching_set())
    gtn1 = make_evaluator("gtn", {"teaching_set": teaching, "val_size": 1000}, data_root)
    gtn4 = make_evaluator("gtn", {"teaching_set": teaching, "val_size": 1000, "seeds": 4}, data_root)
    gtn4_seq = make_evaluator("gtn", {"teaching_set": teaching, "val_size": 1000, "seeds": 4, "batch_seeds": False},
                              data_root)
    real_opts = {"dataset": "mnist", "steps": 64, "batch_size": 32, "lr": 0.05, "val_size": 1000}
    real = make_evaluator("real", real_opts, data_root)
    real4 = make_evaluator("real", {**real_opts, "seeds": 4}, data_root)
    real4_seq = make_evaluator("real", {**real_opts, "seeds": 4, "batch_seeds": False}, data_root)
    search_bp = blueprint_preset("mnist-tiny")
    for ev in (gtn1, gtn4, gtn4_seq, real, real4, real4_seq):
        ev.setup()

    trainers = {}
    # fashion-nas at 32 inner steps: the NAS meta-iteration this benchmark has measured since issue 13
    # (the preset itself has had 64 since issue 15's variant selection)
    for preset, data, overrides in (("mnist-cpu", mnist, {}), ("fashion-nas", fashion, {"inner_steps": 32})):
        trainers[preset] = MetaTrainer(load_config(preset, {"monitor_every": 0, **overrides}), data)

    def meta_step(preset: str) -> Callable[[], object]:
        def run() -> object:
            trainer = trainers[preset]
            trainer.iteration = 3  # the same learner and batches every time
            return trainer.step()
        return run

    final_bp = blueprint_preset("mnist-final").model_copy(update={"num_classes": 10})
    final_net = build(arch, final_bp, seed=0)
    opt = torch.optim.SGD(final_net.parameters(), lr=0.01, momentum=0.9)
    xb, yb = mnist.train_x[:96], mnist.train_y[:96]

    def final_step() -> object:
        opt.zero_grad(set_to_none=True)
        final_net.training_loss(xb, yb).backward()
        return opt.step()

    return {
        "inner step, 4-ch mnist-tiny cell, batch 32": (inner_step, 10),
        GTN_ONE: (lambda: gtn1.evaluate(arch, search_bp, 1), 2),
        SEEDS_ONE_BY_ONE: (lambda: gtn4_seq.evaluate(arch, search_bp, 1), 1),
        SEEDS_BATCHED: (lambda: gtn4.evaluate(arch, search_bp, 1), 1),
        REAL_ONE: (lambda: real.evaluate(arch, search_bp, 1), 1),
        REAL_ONE_BY_ONE: (lambda: real4_seq.evaluate(arch, search_bp, 1), 1),
        REAL_BATCHED: (lambda: real4.evaluate(arch, search_bp, 1), 1),
        "mnist-cpu meta-iteration": (meta_step("mnist-cpu"), 1),
        "fashion-nas meta-iteration": (meta_step("fashion-nas"), 1),
        "final-training step, mnist-final, batch 96": (final_step, 2),
    }


def score_agreement(data_root: str, archs: int) -> dict[str, float]:
    """GTN-evaluator scores of ``archs`` architectures in both layouts."""
    ev = make_evaluator("gtn", {"teaching_set": str(shipped_teaching_set()), "val_size": 1000}, data_root)
    ev.setup()
    rng = np.random.default_rng(1)
    space, bp = get_space("gtn-nas"), blueprint_preset("mnist-tiny")
    diffs = []
    for _ in range(archs):
        arch = space.sample(rng)
        with use_channels_last(False):
            before = ev.evaluate(arch, bp, 7).score
        with use_channels_last(True):
            after = ev.evaluate(arch, bp, 7).score
        diffs.append(abs(after - before))
    return {"architectures": archs, "mean_abs_score_difference": statistics.fmean(diffs),
            "max_abs_score_difference": max(diffs), "identical": sum(d == 0 for d in diffs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--archs", type=int, default=12, help="architectures for the score comparison")
    parser.add_argument("--only", nargs="*", help="substrings of the work names to run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "learner_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()  # as every training process does (gtn_search.host_memory); both layouts alike
    work = workloads(args.data_root)
    if args.only:
        work = {k: v for k, v in work.items() if any(s in k for s in args.only)}
    flops = {name: flops_of(fn) for name, (fn, _) in work.items()}
    # Batched seeds do the arithmetic of the seeds one by one; torch's flop formula for the backward
    # pass of grouped convolutions ignores the groups (2.6x too many for a 4-fold stacked learner),
    # so the batched rows take the one-by-one rows' count.
    for batched, one_by_one in ((SEEDS_BATCHED, SEEDS_ONE_BY_ONE), (REAL_BATCHED, REAL_ONE_BY_ONE)):
        if batched in flops and one_by_one in flops:
            flops[batched] = flops[one_by_one]
    rounds = []
    for r in range(args.rounds):
        peak = matmul_peak()
        row: dict[str, dict[str, float]] = {}
        for i, (name, (fn, repeats)) in enumerate(work.items()):
            order = (False, True) if (r + i) % 2 == 0 else (True, False)
            secs = {}
            for layout in order:
                with use_channels_last(layout):
                    secs["channels_last" if layout else "nchw"] = timed(fn, repeats)
            row[name] = {**secs, "speedup": secs["nchw"] / secs["channels_last"],
                         "peak_share_nchw": flops[name] / secs["nchw"] / (peak * 1e9),
                         "peak_share_channels_last": flops[name] / secs["channels_last"] / (peak * 1e9)}
        rounds.append({"matmul_peak_gflops": peak, "work": row})
        print(f"round {r + 1}: matmul peak {peak:.0f} GFLOP/s", flush=True)
    summary = {}
    for name in work:
        vals = {k: [rd["work"][name][k] for rd in rounds] for k in rounds[0]["work"][name]}
        summary[name] = {"gflop": flops[name] / 1e9, **{k: statistics.median(v) for k, v in vals.items()},
                         "speedup_range": [min(vals["speedup"]), max(vals["speedup"])]}
    def k_over_one(k_name: str, one_name: str, layout: str = "channels_last") -> float | None:
        """Median over rounds of (K seeds' time / one seed's time), both in ``layout``."""
        pairs = [(rd["work"][k_name][layout], rd["work"][one_name][layout]) for rd in rounds
                 if k_name in rd["work"] and one_name in rd["work"]]
        return statistics.median(a / b for a, b in pairs) if pairs else None

    k_ratios = {
        "gtn_k4_batched_over_k1": k_over_one(SEEDS_BATCHED, GTN_ONE),
        "gtn_k4_one_by_one_over_k1": k_over_one(SEEDS_ONE_BY_ONE, GTN_ONE),
        "gtn_k4_one_by_one_over_k1_nchw": k_over_one(SEEDS_ONE_BY_ONE, GTN_ONE, "nchw"),
        "real_k4_batched_over_k1": k_over_one(REAL_BATCHED, REAL_ONE),
        "real_k4_one_by_one_over_k1": k_over_one(REAL_ONE_BY_ONE, REAL_ONE),
    }
    agreement = score_agreement(args.data_root, args.archs) if args.archs else None
    result = {"threads": args.threads, "rounds": rounds, "summary": summary, "score_agreement": agreement,
              "k4_over_k1": k_ratios["gtn_k4_batched_over_k1"], "k_seed_ratios": k_ratios,
              "retained_freed_memory": retaining_freed_memory(),
              "matmul_peak_gflops": [rd["matmul_peak_gflops"] for rd in rounds]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\n{args.threads} threads, matmul peak {', '.join(f'{p:.0f}' for p in result['matmul_peak_gflops'])} "
          f"GFLOP/s; median of {args.rounds} rounds (range of the speed-up)\n")
    print("| work | GFLOP | NCHW s | channels-last s | speed-up | share of peak NCHW | share of peak CL |")
    print("|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        lo, hi = s["speedup_range"]
        print(f"| {name} | {s['gflop']:.2f} | {s['nchw']:.4f} | {s['channels_last']:.4f} | {s['speedup']:.2f}x "
              f"({lo:.2f}-{hi:.2f}) | {100 * s['peak_share_nchw']:.1f}% | {100 * s['peak_share_channels_last']:.1f}% |")
    for key, value in k_ratios.items():
        if value is not None:
            print(f"K=4 seeds / one seed, {key.replace('_', ' ')}: {value:.2f}x")
    if agreement:
        print(f"scores of {agreement['architectures']} architectures, NCHW vs channels-last: mean |difference| "
              f"{agreement['mean_abs_score_difference']:.4f}, max {agreement['max_abs_score_difference']:.4f}, "
              f"{agreement['identical']} identical")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
