"""Benchmark: ONNX round trip (export, then onnxruntime vs PyTorch) for random, zoo and quickstart cells.

Every case is exported by :func:`gtn_search.onnx_export.export_onnx` (torch.export-based exporter,
opset 18, dynamic batch, weight norm folded, auxiliary head dropped) and checked in onnxruntime on a
seeded batch of 8 standard-normal images: the largest absolute difference of the logits must be
<= 1e-4. Export seconds are wall-clock (they grow with the machine's load); the CPU seconds (this
process, export and check) are the steadier figure. Cases, all with seeded initial weights (``--init-seed``) unless marked trained:

* ``random-NN``: ``--num`` (20) random architectures of the ``gtn-nas`` space (seed ``--seed``) on
  the ``mnist-search`` blueprint;
* ``quickstart-best``: the quickstart's best cell c6bf81c5ab81 (``benchmarks/configs/
  quickstart_best_c6bf81c5ab81.yaml``, exported from the README's quickstart run) on ``mnist-search``,
  the blueprint the quickstart trains it with; with ``--quickstart runs/quickstart`` also its
  trained network (``final/<hash>/checkpoint.pt``), checked on MNIST test images when ``--data-root``
  is given;
* ``zoo-NAME``: every cell of the zoo (``search_spaces/cells``) on ``mnist-search``;
* ``learner-NN``: the first ``--learner`` (5) random architectures in the GTN learner style
  (weight norm, batch statistics, LeakyReLU, Kaiming init), so weight norm is folded;
* ``darts-v2-cifar10-final``: DARTS-V2 on ``cifar10-final`` (3x32x32, 20 cells, auxiliary head).

    nice -n 10 python benchmarks/onnx_roundtrip.py --quickstart runs/quickstart --data-root ../shared/data \\
        --out benchmarks/results/onnx_roundtrip.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gtn_search.onnx_export import ONNX_OPSET, TOLERANCE, OnnxCheckError, export_onnx
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint, blueprint_preset
from search_spaces.network import build, count_parameters
from search_spaces.presets import get_space
from search_spaces.yaml_format import load_architecture
from search_spaces.zoo import load_zoo_cell, zoo_names

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART_YAML = ROOT / "benchmarks" / "configs" / "quickstart_best_c6bf81c5ab81.yaml"


def cases(args: argparse.Namespace) -> list[tuple[str, Architecture, Blueprint]]:
    search = blueprint_preset("mnist-search")
    space = get_space("gtn-nas")
    rng = np.random.default_rng(args.seed)
    randoms = [space.sample(rng) for _ in range(args.num)]
    out = [(f"random-{i:02d}", a, search) for i, a in enumerate(randoms)]
    out.append(("quickstart-best", load_architecture(QUICKSTART_YAML).architecture, search))
    out += [(f"zoo-{name}", load_zoo_cell(name).architecture, search) for name in zoo_names()]
    out += [(f"learner-{i:02d}", a, search.for_learner()) for i, a in enumerate(randoms[: args.learner])]
    out.append(("darts-v2-cifar10-final", load_zoo_cell("darts-v2").architecture, blueprint_preset("cifar10-final")))
    return out


def one(name: str, module: torch.nn.Module, bp: Blueprint, arch: Architecture, folder: Path,
        inputs: torch.Tensor | None, weights: str) -> dict[str, Any]:
    path = folder / f"{name}.onnx"
    cpu = time.process_time()
    try:
        done = export_onnx(module, path, bp.input_shape, inputs=inputs, metadata={"architecture_hash": arch.hash})
        check, seconds, size = done.check, done.export_seconds, done.size_bytes
    except OnnxCheckError as exc:  # recorded, not fatal: the table shows every case
        check, seconds, size = exc.check, float("nan"), 0
    cpu = time.process_time() - cpu
    assert check is not None
    row = {"case": name, "hash": arch.short_hash, "weights": weights, "input_shape": list(bp.input_shape),
           "weight_norm": bp.weight_norm, "norm": bp.norm, "auxiliary_head": bp.auxiliary_weight > 0,
           "params": count_parameters(module), "export_seconds": round(seconds, 3),
           "export_and_check_cpu_seconds": round(cpu, 3), "model_bytes": size,
           "check_batch": check.batch, "max_abs_diff": check.max_abs_diff, "passed": check.passed}
    print(f"{name:<24} {arch.short_hash}  {row['params']:>9,}  {seconds:>7.2f}  {cpu:>7.2f}  {size / 1024:>8.0f}  "
          f"{check.max_abs_diff:>9.1e}  {'ok' if check.passed else 'FAILED'}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=20, help="random architectures (default 20)")
    parser.add_argument("--learner", type=int, default=5, help="random architectures also in learner style")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random architectures")
    parser.add_argument("--init-seed", type=int, default=0, help="seed of the initial weights")
    parser.add_argument("--quickstart", help="a quickstart output folder: also export its trained best network")
    parser.add_argument("--data-root", help="MNIST folder: check the trained network on test images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "onnx_roundtrip.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'case':<24} {'hash':<12}  {'params':>9}  {'export s':>7}  {'cpu s':>7}  {'size KiB':>8}  {'max|diff|':>9}  check")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, arch, bp in cases(args):
            rows.append(one(name, build(arch, bp, seed=args.init_seed), bp, arch, folder, None, "initial"))
        if args.quickstart:
            from gtn_search.cli.onnx_cli import load_trained_network

            arch = load_architecture(QUICKSTART_YAML).architecture
            module, bp = load_trained_network(arch, Path(args.quickstart) / "final" / arch.short_hash)
            inputs = None
            if args.data_root:
                from gtn_search.data import load_dataset

                inputs = load_dataset("mnist", args.data_root).test_x[:8]
            rows.append(one("quickstart-best-trained", module, bp, arch, folder, inputs,
                            "trained" + (" (MNIST test images)" if inputs is not None else "")))
    diffs = [r["max_abs_diff"] for r in rows]
    summary = {"cases": len(rows), "passed": sum(r["passed"] for r in rows), "max_abs_diff": max(diffs),
               "median_abs_diff": float(np.median(diffs)), "tolerance": TOLERANCE,
               "export_seconds_median": float(np.median([r["export_seconds"] for r in rows])),
               "export_and_check_cpu_seconds_median":
                   float(np.median([r["export_and_check_cpu_seconds"] for r in rows])),
               "model_kib_range": [min(r["model_bytes"] for r in rows) / 1024, max(r["model_bytes"] for r in rows) / 1024]}
    print(f"{summary['passed']}/{summary['cases']} within {TOLERANCE:g}; max |diff| {summary['max_abs_diff']:.1e}, "
          f"median {summary['median_abs_diff']:.1e}; median export {summary['export_seconds_median']:.1f} s wall, "
          f"{summary['export_and_check_cpu_seconds_median']:.1f} s CPU with the check")
    import onnx
    import onnxruntime
    import onnxscript

    meta = {"machine": platform.platform(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "onnxscript": onnxscript.__version__, "opset": ONNX_OPSET,
            "threads": args.threads, "seed": args.seed, "init_seed": args.init_seed, "exporter": "torch.onnx.export(dynamo=True)"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "summary": summary, "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if summary["passed"] == summary["cases"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
