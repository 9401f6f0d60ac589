"""Benchmark: the authors' MNIST settings (``mnist-paper``: T=32, B=128, noise 128) run here.

    python benchmarks/gtn_paper_preset.py --iterations 2 --out benchmarks/results/gtn_paper_preset.json

Runs a few meta-iterations of the full-size preset with and without per-step gradient
checkpointing, each in a fresh process, and reports seconds per meta-iteration and the peak
resident memory (RSS) of the process (and the peak GPU memory with ``--device cuda``). The full
2,000-iteration result (paper: 98.9% after 32 steps) needs a GPU:

    python benchmarks/gtn_paper_preset.py --device cuda --iterations 20 --out benchmarks/results/gtn_paper_preset_gpu.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path


def child(iterations: int, checkpointing: bool, data_root: str | None, threads: int, device: str) -> None:
    import torch

    from gtn_search.data import load_dataset
    from gtn_search.gtn.config import load_config
    from gtn_search.gtn.meta_train import MetaTrainer

    torch.set_num_threads(threads)
    config = load_config("mnist-paper", {"gradient_checkpointing": checkpointing, "monitor_every": 0, "device": device})
    trainer = MetaTrainer(config, load_dataset("mnist", data_root))
    for _ in range(iterations):
        trainer.step()
    on_cuda = trainer.device.type == "cuda"
    print(json.dumps({
        "checkpointing": checkpointing, "iterations": iterations, "device": str(trainer.device),
        "gpu": torch.cuda.get_device_name(trainer.device) if on_cuda else None,
        "peak_gpu_mib": torch.cuda.max_memory_allocated(trainer.device) / 2**20 if on_cuda else None,
        "seconds_per_iteration": sum(trainer.history["seconds"]) / iterations,
        "meta_loss": trainer.history["meta_loss"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps (default cpu)")
    parser.add_argument("--out", default="benchmarks/results/gtn_paper_preset.json")
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.iterations, args.child == "on", args.data_root, args.threads, args.device)
        return
    results = []
    for mode in ("on", "off"):
        cmd = [sys.executable, __file__, "--child", mode, "--iterations", str(args.iterations),
               "--threads", str(args.threads), "--device", args.device]
        cmd += ["--data-root", args.data_root] if args.data_root else []
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        res = json.loads(out)
        results.append(res)
        print(f"mnist-paper (T=32, B=128), gradient checkpointing {mode:>3}: "
              f"{res['seconds_per_iteration']:.1f} s per meta-iteration on {res['device']}, "
              f"peak RSS {res['peak_rss_mib']:.0f} MiB"
              + (f", peak GPU memory {res['peak_gpu_mib']:.0f} MiB" if res["peak_gpu_mib"] else "")
              + f", meta-losses {[round(x, 3) for x in res['meta_loss']]}", flush=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
