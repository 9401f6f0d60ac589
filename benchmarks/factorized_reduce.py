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
from pathlib import Path

import numpy as np
import torch
from _paired import paired_rows, timed, workload

from gtn_search.evaluators.common import build_candidates, score_seeds
from search_spaces.network import build
from search_spaces.ops import FactorizedReduce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed final-training steps per architecture and path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/factorized_reduce.json")
    args = parser.parse_args()
    w = workload(args.data_root, args.threads)
    teaching, xb, yb = w.teaching, w.batch_x, w.batch_y
    times: dict[str, dict[str, list[float]]] = {k: {"padded": [], "subsampled": []} for k in ("final_step", "gtn_trial")}
    score_gap = 0.0
    for a in range(args.archs):
        arch = w.space.sample(np.random.default_rng(a))
        scores = {}
        order = (("padded", False), ("subsampled", True)) if a % 2 else (("subsampled", True), ("padded", False))
        for label, subsample in order:
            FactorizedReduce.subsample_even_maps = subsample
            net = build(arch, w.final, seed=0)
            opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                net.training_loss(xb, yb).backward()
                opt.step()

            step()
            times["final_step"][label].append(timed(lambda: [step() for _ in range(args.steps)])[0] / args.steps)
            module, _, _ = build_candidates(arch, w.tiny, [0], teaching.batch, torch.device("cpu"))
            t, params = timed(lambda: teaching.train(module, 32))
            t2, scores[label] = timed(lambda: score_seeds(module, params, w.val_x, w.val_y, 1000, [0]))
            times["gtn_trial"][label].append(t + t2)
        score_gap = max(score_gap, abs(scores["padded"][0][0] - scores["subsampled"][0][0]))
    FactorizedReduce.subsample_even_maps = True
    names = {"final_step": "final-training step, mnist-search, batch 96",
             "gtn_trial": "GTN trial: 32 steps + 1,000 images, mnist-tiny"}
    rows = paired_rows(times, names, "padded", "subsampled")
    print(f"largest difference of a GTN validation accuracy between the paths: {score_gap:.4f}")
    out = {"archs": args.archs, "threads": args.threads, "rows": rows, "max_gtn_accuracy_difference": score_gap}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
