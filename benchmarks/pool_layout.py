"""Benchmark: GTN-evaluator trial time with pooling in channels-last layout against plain NCHW pooling.

    python benchmarks/pool_layout.py --archs 16 --data-root ../shared/data

PyTorch's CPU pooling kernels run one scalar loop per output element in NCHW layout and
vectorise over channels in channels-last layout. ``search_spaces.ops.channels_last_pool`` pools in
channels-last layout and hands outputs and gradients back in NCHW, so every number stays
bitwise the same (tested in ``tests/test_network.py``). This script measures what it saves:
first the pooling ops alone (forward + backward, batch 64, the map sizes of ``mnist-tiny``), then
whole GTN-evaluator trials (build, 16 steps on the quickstart teaching set, 1,000 validation
images) of the same random architectures, each trained once with each pooling path in
alternating order in one process (paired, so the machine's drift cancels), with 1 and 2 torch
threads. It also checks that both paths give the same validation accuracy and loss.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from gtn_search.cli.quickstart import shipped_teaching_set
from gtn_search.evaluators.common import (
    candidate_blueprint,
    dataset_for,
    validation_split,
)
from gtn_search.evaluators.gtn_evaluator import GTNEvaluator, load_teaching_set
from gtn_search.gtn.unroll import evaluate
from search_spaces import ops
from search_spaces.blueprint import blueprint_preset
from search_spaces.network import build
from search_spaces.space import CellSearchSpace

FAST = ops.channels_last_pool


def _plain(pool: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return pool(x)


def op_times(repeats: int = 20) -> dict[str, dict[str, float]]:
    """Milliseconds for forward + backward of each pooling op at batch 64, per layout."""
    out = {}
    for kind in ("max", "avg"):
        for k in (3, 5):
            for c, hw in ((16, 28), (32, 14)):
                pool = ops.Pool(kind, c, c, k, 1)
                x = torch.randn(64, c, hw, hw, requires_grad=True)
                row = {}
                for label, impl in (("nchw", _plain), ("channels_last", FAST)):
                    ops.channels_last_pool = impl
                    pool(x).sum().backward()
                    start = time.perf_counter()
                    for _ in range(repeats):
                        pool(x).sum().backward()
                    row[label] = 1000 * (time.perf_counter() - start) / repeats
                ops.channels_last_pool = FAST
                name = f"{kind}_pool_{k}x{k} {c}x{hw}x{hw}"
                out[name] = {**row, "speedup": row["nchw"] / row["channels_last"]}
                print(f"  {name:<24} NCHW {row['nchw']:6.2f} ms, channels-last {row['channels_last']:6.2f} ms "
                      f"({row['nchw'] / row['channels_last']:.1f}x)", flush=True)
    return out


def trial_times(archs: int, threads: int, data_root: str | None) -> dict[str, float | bool]:
    """Mean seconds per trial with each pooling path (paired, alternating order)."""
    torch.set_num_threads(threads)
    path = str(shipped_teaching_set())
    teaching = load_teaching_set(path)
    data = dataset_for(teaching.dataset, data_root)
    evaluator = GTNEvaluator({"teaching_set": path, "val_size": 1000}, data_root=data_root)
    bp = candidate_blueprint(blueprint_preset("mnist-tiny"), data, "learner", *evaluator._style(teaching))
    space = CellSearchSpace.from_mapping("gtn-nas", where="space")
    rng = np.random.default_rng(1)
    x, y = validation_split(data, 1000)
    total = {"nchw": 0.0, "channels_last": 0.0}
    identical = True
    for i in range(archs):
        arch = space.sample(rng)
        scores = {}
        order = ("nchw", "channels_last") if i % 2 else ("channels_last", "nchw")
        for label in order:
            ops.channels_last_pool = FAST if label == "channels_last" else _plain
            start = time.perf_counter()
            module = build(arch, bp, seed=i)
            scores[label] = evaluate(module, teaching.train(module, teaching.steps), x, y, 1000)
            total[label] += time.perf_counter() - start
        identical &= scores["nchw"] == scores["channels_last"]
    ops.channels_last_pool = FAST
    result = {"threads": threads, "archs": archs, "nchw_seconds": total["nchw"] / archs,
              "channels_last_seconds": total["channels_last"] / archs,
              "speedup": total["nchw"] / total["channels_last"], "identical_scores": identical}
    print(f"  {threads} thread(s): NCHW pooling {result['nchw_seconds']:.2f} s per trial, channels-last "
          f"{result['channels_last_seconds']:.2f} s ({result['speedup']:.2f}x); identical accuracy and loss on "
          f"all {archs} architectures: {identical}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=16)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="benchmarks/results/pool_layout.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("pooling ops, forward + backward, batch 64, 1 thread:")
    result: dict[str, object] = {"ops": op_times()}
    print(f"GTN-evaluator trials ({args.archs} random gtn-nas architectures, mnist-tiny):")
    result["trials"] = [trial_times(args.archs, threads, args.data_root) for threads in (1, 2)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
