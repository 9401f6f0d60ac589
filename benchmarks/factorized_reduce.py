"""Benchmark: FactorizedReduce subsampling even maps against the padded form DARTS writes.

    python benchmarks/factorized_reduce.py --data-root ../shared/data --archs 8 --threads 1

The second branch of a factorized reduction reads the map shifted by one pixel and zero-padded
(``F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]``, then a 1x1 stride-2 convolution). On an even map that
convolution only reads pixels (2i+1, 2j+1), never the padding, so ``search_spaces.ops`` subsamples
them and convolves with stride 1, instead of padding (a fill and a copy of the whole map), copying
the strided view for oneDNN and zero-filling the whole map again in the backward pass. Equal within
float rounding (``tests/test_network.py``), not bit for bit: oneDNN sums the weight gradient of a
differently shaped input in another order.

Measured in one process, alternating the order per architecture (paired, so the machine's drift
cancels), for ``--archs`` random ``gtn-nas`` cells:

- one final-training step of the ground truth's network (``mnist-search``, 8 channels, batch 96);
- one GTN-evaluator trial (4-channel ``mnist-tiny`` cell, 32 steps on the Fashion-MNIST teaching
  set, then 1,000 validation images), with the largest difference between the two paths' scores.

Prints a table and writes ``benchmarks/results/factorized_reduce.json``.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gtn_search.evaluators.common import (  # noqa: E402
    build_candidates,
    candidate_blueprint,
    dataset_for,
    score_seeds,
    validation_split,
)
from gtn_search.evaluators.gtn_evaluator import load_teaching_set  # noqa: E402
from gtn_search.host_memory import retain_freed_memory  # noqa: E402
from search_spaces.blueprint import blueprint_preset  # noqa: E402
from search_spaces.network import build  # noqa: E402
from search_spaces.ops import FactorizedReduce  # noqa: E402
from search_spaces.presets import get_space  # noqa: E402

TEACHING = "benchmarks/results/compare_fashion/teaching_set.pt"


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed final-training steps per architecture and path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/factorized_reduce.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    space = get_space("gtn-nas")
    teaching = load_teaching_set(TEACHING)
    data = dataset_for(teaching.dataset, args.data_root)
    tiny = candidate_blueprint(blueprint_preset("mnist-tiny"), data, "learner", "batch_stats", True)
    final_bp = blueprint_preset("mnist-search").model_copy(update={"num_classes": 10})
    x, y = validation_split(data, 1000)
    xb, yb = data.train_x[:96], data.train_y[:96]
    times: dict[str, dict[str, list[float]]] = {k: {"padded": [], "subsampled": []} for k in ("final_step", "gtn_trial")}
    score_gap = 0.0
    for a in range(args.archs):
        arch = space.sample(np.random.default_rng(a))
        scores = {}
        order = (("padded", False), ("subsampled", True)) if a % 2 else (("subsampled", True), ("padded", False))
        for label, subsample in order:
            FactorizedReduce.subsample_even_maps = subsample
            net = build(arch, final_bp, seed=0)
            opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                net.training_loss(xb, yb).backward()
                opt.step()

            step()
            times["final_step"][label].append(_timed(lambda: [step() for _ in range(args.steps)])[0] / args.steps)
            module, _, _ = build_candidates(arch, tiny, [0], teaching.batch, torch.device("cpu"))
            t, params = _timed(lambda: teaching.train(module, 32))
            t2, scores[label] = _timed(lambda: score_seeds(module, params, x, y, 1000, [0]))
            times["gtn_trial"][label].append(t + t2)
        score_gap = max(score_gap, abs(scores["padded"][0][0] - scores["subsampled"][0][0]))
    FactorizedReduce.subsample_even_maps = True
    rows = {}
    names = {"final_step": "final-training step, mnist-search, batch 96",
             "gtn_trial": "GTN trial: 32 steps + 1,000 images, mnist-tiny"}
    print(f"{'work':<48} {'padded (s)':>10} {'subsampled (s)':>14} {'speed-up':>9}")
    for key, label in names.items():
        padded, sub = statistics.median(times[key]["padded"]), statistics.median(times[key]["subsampled"])
        ratios = [p / s for p, s in zip(times[key]["padded"], times[key]["subsampled"])]
        rows[key] = {"work": label, "padded_s": padded, "subsampled_s": sub,
                     "speedup_median_paired": statistics.median(ratios), "speedup_min": min(ratios),
                     "speedup_max": max(ratios)}
        print(f"{label:<48} {padded:>10.3f} {sub:>14.3f} {statistics.median(ratios):>8.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f})")
    print(f"largest difference of a GTN validation accuracy between the paths: {score_gap:.4f}")
    out = {"archs": args.archs, "threads": args.threads, "rows": rows, "max_gtn_accuracy_difference": score_gap}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
