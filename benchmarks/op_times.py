"""Where the time of a training step goes, per aten operator, measured in steady state.

    python benchmarks/op_times.py --data-root ../shared/data [--threads 1] [--arch-seed 0] [--rows 16]

Two kinds of work, each after warm-up steps (so no fresh pages are faulted in: the minor page
faults of the timed step are printed too):

- one ground-truth training step of ``compare_fashion_gt100.yaml`` (a random ``gtn-nas`` cell on the
  ``mnist-search`` blueprint, batch 96, SGD with momentum and weight decay);
- one GTN-evaluator trial (16 steps on the shipped quickstart teaching set, 1,000 validation images)
  with one seed and with 4 seeds batched as one stacked network, side by side, so the per-operator
  ratio K=4 / K=1 shows which operators scale with the data volume.

Every aten call is timed with a dispatch mode (``perf_counter`` around the call; the mode's own
overhead is the difference between the two totals printed). ``torch.profiler`` is not used: its
bookkeeping changes the allocation pattern, and the freshly faulted pages made memory-bound operators
look up to 20x slower than they are.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gtn_search.cli.quickstart import shipped_teaching_set  # noqa: E402
from gtn_search.evaluators import make_evaluator  # noqa: E402
from gtn_search.host_memory import retain_freed_memory  # noqa: E402
from search_spaces.blueprint import blueprint_preset  # noqa: E402
from search_spaces.network import build  # noqa: E402
from search_spaces.presets import get_space  # noqa: E402


class OpTimes(TorchDispatchMode):
    """Seconds and calls per aten operator (overload names merged) inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        self.seconds[name] += time.perf_counter() - start
        self.calls[name] += 1
        return out


def measure(fn: Callable[[], object], warmup: int) -> tuple[float, float, int, OpTimes]:
    """(plain seconds, seconds under the timer, minor page faults of the timed call, per-op times)."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    fn()
    plain = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with OpTimes() as ops:
        start = time.perf_counter()
        fn()
        timed = time.perf_counter() - start
    return plain, timed, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults, ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arch-seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--json", default="benchmarks/results/op_times.json")
    parser.add_argument("--trial-warmup", type=int, default=4, help="untimed GTN trials before the timed ones")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    arch = get_space("gtn-nas").sample(np.random.default_rng(args.arch_seed))

    bp = blueprint_preset("mnist-search").model_copy(update={"num_classes": 10})
    net = build(arch, bp, seed=0)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 28, 28, generator=g), torch.randint(0, 10, (96,), generator=g)

    def gt_step() -> None:
        loss = net.training_loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    plain, timed, faults, ops = measure(gt_step, warmup=6)
    saved: dict[str, object] = {"command": "python " + " ".join(sys.argv), "threads": args.threads,
                                "cell": arch.short_hash,
                                "ground_truth_step": {"seconds": plain, "page_faults": faults,
                                                      "ms": {k: v * 1e3 for k, v in ops.seconds.items()},
                                                      "calls": dict(ops.calls)}}
    total = sum(ops.seconds.values())
    print(f"ground-truth training step (mnist-search, batch 96, cell {arch.short_hash}, {args.threads} thread(s)): "
          f"{plain:.3f} s ({timed:.3f} s under the timer, {faults} page faults, {sum(ops.calls.values())} aten calls)")
    print(f"{'operator':36} {'ms':>8} {'share':>6} {'calls':>6}")
    for name, sec in sorted(ops.seconds.items(), key=lambda kv: -kv[1])[: args.rows]:
        print(f"{name:36} {sec * 1e3:8.1f} {sec / total:6.1%} {ops.calls[name]:6d}")

    teaching = str(shipped_teaching_set())
    tiny = blueprint_preset("mnist-tiny")
    results = {}
    for k in (1, 4):
        ev = make_evaluator("gtn", {"teaching_set": teaching, "val_size": 1000, "seeds": k}, args.data_root)
        ev.setup()
        results[k] = measure(lambda ev=ev: ev.evaluate(arch, tiny, 1), warmup=args.trial_warmup)
        plain, timed, faults, _ = results[k]
        print(f"\nGTN-evaluator trial, K={k}: {plain:.3f} s ({timed:.3f} s under the timer, {faults} page faults)")
    one, four = results[1][3], results[4][3]
    saved["gtn_trial"] = {f"K={k}": {"seconds": r[0], "page_faults": r[2],
                                     "ms": {n: v * 1e3 for n, v in r[3].seconds.items()}, "calls": dict(r[3].calls)}
                          for k, r in results.items()}
    saved["gtn_trial_k4_over_k1"] = results[4][0] / results[1][0]
    print(f"K=4 / K=1: {results[4][0] / results[1][0]:.2f}x")
    print(f"{'operator':36} {'K=1 ms':>8} {'K=4 ms':>8} {'ratio':>6} {'calls K=1/K=4':>14}")
    for name in sorted(set(one.seconds) | set(four.seconds), key=lambda n: -four.seconds.get(n, 0.0))[: args.rows]:
        a, b = one.seconds.get(name, 0.0), four.seconds.get(name, 0.0)
        ratio = f"{b / a:6.2f}" if a else "     -"
        print(f"{name:36} {a * 1e3:8.1f} {b * 1e3:8.1f} {ratio} {one.calls[name]:6d}/{four.calls[name]:<6d}")
    if args.json:
        Path(args.json).write_text(json.dumps(saved, indent=1) + "\n")
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
