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
from search_spaces import ops  # noqa: E402
from search_spaces.blueprint import blueprint_preset  # noqa: E402
from search_spaces.network import build  # noqa: E402
from search_spaces.presets import get_space  # noqa: E402

FOLD = ops.pool_fold_factor
TEACHING = "benchmarks/results/compare_fashion/teaching_set.pt"


def _no_fold(*args: int) -> int:
    return 1


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/pool_fold.json")
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
    times: dict[str, dict[str, list[float]]] = {k: {"fold": [], "plain": []}
                                               for k in ("gtn_train", "gtn_score", "final_step", "final_eval")}
    for a in range(args.archs):
        arch = space.sample(np.random.default_rng(a))
        scores = {}
        for label, factor in (("plain", _no_fold), ("fold", FOLD)) if a % 2 else (("fold", FOLD), ("plain", _no_fold)):
            ops.pool_fold_factor = factor
            module, _, _ = build_candidates(arch, tiny, [0], teaching.batch, torch.device("cpu"))
            t, params = _timed(lambda: teaching.train(module, 32))
            times["gtn_train"][label].append(t)
            t, scores[label] = _timed(lambda: score_seeds(module, params, x, y, 1000, [0]))
            times["gtn_score"][label].append(t)
            net = build(arch, final_bp, seed=0)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                net.training_loss(xb, yb).backward()
                opt.step()

            step()
            times["final_step"][label].append(min(_timed(step)[0] for _ in range(2)))
            net.eval()
            with torch.no_grad():
                times["final_eval"][label].append(_timed(lambda: net(x))[0])
        assert scores["fold"] == scores["plain"], (arch.hash, scores)
    ops.pool_fold_factor = FOLD
    rows = {}
    print(f"{'work':<44} {'plain (s)':>10} {'folded (s)':>10} {'speed-up':>9}")
    names = {"gtn_train": "GTN trial: 32 steps, 4-channel mnist-tiny cell", "gtn_score": "GTN trial: scoring 1,000 images",
             "final_step": "final-training step, mnist-search, batch 96", "final_eval": "mnist-search forward, 1,000 images"}
    for key, label in names.items():
        plain, fold = statistics.median(times[key]["plain"]), statistics.median(times[key]["fold"])
        ratios = [p / f for p, f in zip(times[key]["plain"], times[key]["fold"])]
        rows[key] = {"work": label, "plain_s": plain, "fold_s": fold, "speedup_median_paired": statistics.median(ratios),
                     "speedup_min": min(ratios), "speedup_max": max(ratios)}
        print(f"{label:<44} {plain:>10.3f} {fold:>10.3f} {statistics.median(ratios):>8.2f}x")
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
