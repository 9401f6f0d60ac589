"""Benchmark: N seeded random architectures validate, build and train one step on MNIST and CIFAR shapes.

Prints and saves (JSON) the build and forward+backward time per architecture and the range of
parameters/FLOPs, for each space and input shape.

    python benchmarks/space_build.py --num 1000 --out benchmarks/results/space_build.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from search_spaces.blueprint import Blueprint, blueprint_preset
from search_spaces.network import build, network_cost
from search_spaces.presets import get_space


def run(space_name: str, bp: Blueprint, num: int, seed: int, batch: int) -> dict:
    space = get_space(space_name)
    rng = np.random.default_rng(seed)
    build_s, step_s, params, flops, hashes = [], [], [], [], set()
    x = torch.randn(batch, *bp.input_shape)
    y = torch.arange(batch) % bp.num_classes
    for _ in range(num):
        arch = space.sample(rng)
        space.validate_architecture(arch)
        hashes.add(arch.hash)
        t0 = time.perf_counter()
        net = build(arch, bp, seed=0)
        t1 = time.perf_counter()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        t2 = time.perf_counter()
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite loss for {arch.hash}")
        cost = network_cost(net, bp)
        build_s.append(t1 - t0)
        step_s.append(t2 - t1)
        params.append(cost.params)
        flops.append(cost.forward_flops)
    return {
        "space": space_name,
        "input_shape": list(bp.input_shape),
        "blueprint": bp.to_mapping(),
        "architectures": num,
        "distinct": len(hashes),
        "batch": batch,
        "build_ms_median": 1000 * statistics.median(build_s),
        "forward_backward_ms_median": 1000 * statistics.median(step_s),
        "forward_backward_ms_max": 1000 * max(step_s),
        "params_min_median_max": [min(params), int(statistics.median(params)), max(params)],
        "mflops_min_median_max": [min(flops) / 1e6, statistics.median(flops) / 1e6, max(flops) / 1e6],
        "total_s": sum(build_s) + sum(step_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--spaces", nargs="+", default=["gtn-nas"])
    parser.add_argument("--out", default="benchmarks/results/space_build.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for space_name in args.spaces:
        for preset in ("mnist-search", "cifar10-search"):
            res = run(space_name, blueprint_preset(preset), args.num, args.seed, args.batch)
            res["blueprint_preset"] = preset
            results.append(res)
            print(
                f"{space_name:>17} {preset:>15}: {res['architectures']} archs ({res['distinct']} distinct) all valid, "
                f"built and trained one step; build {res['build_ms_median']:.1f} ms, fwd+bwd (batch {args.batch}) "
                f"{res['forward_backward_ms_median']:.1f} ms median / {res['forward_backward_ms_max']:.0f} ms max; "
                f"params {res['params_min_median_max']}, MFLOPs {[round(f, 1) for f in res['mflops_min_median_max']]}",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "torch": torch.__version__, "threads": 1, "seed": args.seed}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
