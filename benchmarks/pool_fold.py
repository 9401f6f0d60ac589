"""Benchmark: channels-last pooling with images folded into the channels against plain channels-last pooling.

    python benchmarks/pool_fold.py --data-root ../shared/data --archs 8 --threads 1

PyTorch's channels-last CPU pooling kernels vectorise over channels and are several times slower
per element below 16 channels. ``search_spaces.ops.channels_last_pool`` therefore pools a
``[N, C, H, W]`` map of few channels as ``[N/f, f*C, H, W]`` (``pool_fold_factor``): the same
numbers bit for bit (tested in ``tests/test_network.py``). This script measures, in one process
and in alternating order (paired, so the machine's drift cancels), with folding on and off:

- GTN-evaluator trials (4-channel ``mnist-tiny`` cells: 32 steps on the Fashion-MNIST teaching set,
  then 1,000 validation images), split into training and scoring, for ``--archs`` random cells;
  it asserts that both give the same validation accuracy and loss;
- one final-training step of the ground truth's network (``mnist-search``, 8 channels, batch 96)
  and its evaluation on 1,000 images, for the same cells.

Prints a table and writes ``benchmarks/results/pool_fold.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from _paired import paired_rows, timed, workload

from gtn_search.evaluators.common import build_candidates, score_seeds
from search_spaces import ops
from search_spaces.network import build

FOLD = ops.pool_fold_factor


def _no_fold(*args: int) -> int:
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/pool_fold.json")
    args = parser.parse_args()
    w = workload(args.data_root, args.threads)
    teaching, x, y, xb, yb = w.teaching, w.val_x, w.val_y, w.batch_x, w.batch_y
    times: dict[str, dict[str, list[float]]] = {k: {"fold": [], "plain": []}
                                               for k in ("gtn_train", "gtn_score", "final_step", "final_eval")}
    for a in range(args.archs):
        arch = w.space.sample(np.random.default_rng(a))
        scores = {}
        for label, factor in (("plain", _no_fold), ("fold", FOLD)) if a % 2 else (("fold", FOLD), ("plain", _no_fold)):
            ops.pool_fold_factor = factor
            module, _, _ = build_candidates(arch, w.tiny, [0], teaching.batch, torch.device("cpu"))
            t, params = timed(lambda: teaching.train(module, 32))
            times["gtn_train"][label].append(t)
            t, scores[label] = timed(lambda: score_seeds(module, params, x, y, 1000, [0]))
            times["gtn_score"][label].append(t)
            net = build(arch, w.final, seed=0)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                net.training_loss(xb, yb).backward()
                opt.step()

            step()
            times["final_step"][label].append(min(timed(step)[0] for _ in range(2)))
            net.eval()
            with torch.no_grad():
                times["final_eval"][label].append(timed(lambda: net(x))[0])
        assert scores["fold"] == scores["plain"], (arch.hash, scores)
    ops.pool_fold_factor = FOLD
    names = {"gtn_train": "GTN trial: 32 steps, 4-channel mnist-tiny cell", "gtn_score": "GTN trial: scoring 1,000 images",
             "final_step": "final-training step, mnist-search, batch 96", "final_eval": "mnist-search forward, 1,000 images"}
    rows = paired_rows(times, names, "plain", "fold")
    trial = [(a + b) / (c + d) for a, b, c, d in zip(times["gtn_train"]["plain"], times["gtn_score"]["plain"],
                                                     times["gtn_train"]["fold"], times["gtn_score"]["fold"])]
    print(f"whole GTN trial: {statistics.median(trial):.2f}x (paired median over {args.archs} cells, "
          f"{min(trial):.2f}-{max(trial):.2f}); scores identical")
    out = {"archs": args.archs, "threads": args.threads, "rows": rows,
           "gtn_trial_speedup_median": statistics.median(trial), "gtn_trial_speedup_range": [min(trial), max(trial)],
           "scores_identical": True}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
