"""GPU figures: what one CUDA GPU does with gtn-search's work, and whether its scores agree with the CPU's.

    python benchmarks/gpu_figures.py --data-root DATA --out benchmarks/results/gpu_figures.json

All in one run on a machine with CUDA (the script stops with one line without it):

1. **device**: GPU name, memory, torch, CUDA and cuDNN versions, CPU cores.
2. **agreement**: the GTN-evaluator score (shipped quickstart teaching set, ``mnist-tiny``, 16 steps,
   1,000 validation images) and the real-data score (64 SGD steps, batch 32) of ``--archs`` seeded
   gtn-nas architectures computed on the CPU and on the GPU: largest and mean |difference| and the
   Spearman correlation of the two rankings (GPU floating point rounds differently from the CPU's;
   a ranking that changed would matter, a last-digit difference does not).
3. **work**: seconds of each kind of work on the GPU (median of ``--repeats`` after a warm-up,
   synchronised) and, beside it in the same run, on the CPU with ``--threads`` threads: one
   GTN-evaluator trial, K=4 seeds of it batched, one real-data trial, one ``mnist-cpu``
   meta-iteration, one ``fashion-nas`` meta-iteration (at 32 inner steps as in
   ``learner_speed.py``, and at the preset's own inner steps; on MNIST tensors, the same shape and
   work as Fashion-MNIST's), one ``mnist-paper`` meta-iteration
   (GPU only: 152 s on one thread of the development CPU) and one final-training step of an
   ``mnist-final`` network at batch 96, in fp32 and with bf16 autocast.
4. **throughput**: the same seeded random search (GTN evaluator, quickstart teaching set,
   ``mnist-tiny``) with 1, 2, 4 and 8 local workers sharing the one GPU: trials per hour, end to
   end and in the steady state (as ``search_throughput.py`` counts them).
5. **final training**: one epoch of the first seeded gtn-nas cell on ``mnist-final`` on MNIST, fp32
   and bf16 autocast: seconds and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gtn_search.cli.quickstart import shipped_teaching_set  # noqa: E402
from gtn_search.data import load_dataset  # noqa: E402
from gtn_search.evaluators import make_evaluator  # noqa: E402
from gtn_search.final_train import TrainConfig, train_final  # noqa: E402
from gtn_search.gtn.config import load_config  # noqa: E402
from gtn_search.gtn.meta_train import MetaTrainer  # noqa: E402
from search_spaces.blueprint import blueprint_preset  # noqa: E402
from search_spaces.network import build  # noqa: E402
from search_spaces.presets import get_space  # noqa: E402
from search_throughput import timed_search  # noqa: E402  (benchmarks/, the script's folder)

GTN_OPTS = {"val_size": 1000}
REAL_OPTS = {"dataset": "mnist", "steps": 64, "batch_size": 32, "lr": 0.05, "val_size": 1000}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call (the GPU synchronised around each)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_info(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"gpu": None, "torch": torch.__version__, "cpu_cores": os.cpu_count()}
    props = torch.cuda.get_device_properties(device)
    return {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count, "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "cpu_cores": os.cpu_count(),
            "python": sys.version.split()[0]}


def agreement(data_root: str | None, archs: int, gpu: torch.device) -> dict[str, Any]:
    """Scores of ``archs`` seeded architectures on the CPU and on the GPU, for both trained evaluators."""
    space, bp = get_space("gtn-nas"), blueprint_preset("mnist-tiny")
    rng = np.random.default_rng(1)
    sample = [space.sample(rng) for _ in range(archs)]
    teaching = str(shipped_teaching_set())
    out: dict[str, Any] = {"architectures": archs}
    for name, options in (("gtn", {"teaching_set": teaching, **GTN_OPTS}), ("real", REAL_OPTS)):
        scores = {}
        for where in ("cpu", str(gpu)):
            ev = make_evaluator(name, options, data_root, device=where)
            ev.setup()
            start = time.perf_counter()
            scores[where] = [ev.evaluate(arch, bp, 7).score for arch in sample]
            scores[where + "_seconds"] = time.perf_counter() - start
        cpu, dev = np.array(scores["cpu"]), np.array(scores[str(gpu)])
        diffs = np.abs(cpu - dev)
        out[name] = {"max_abs_difference": float(diffs.max()), "mean_abs_difference": float(diffs.mean()),
                     "spearman_cpu_gpu": float(spearmanr(cpu, dev)[0]), "identical": int((diffs == 0).sum()),
                     "cpu_scores": cpu.round(4).tolist(), "gpu_scores": dev.round(4).tolist(),
                     "cpu_seconds": scores["cpu_seconds"], "gpu_seconds": scores[str(gpu) + "_seconds"]}
        print(f"agreement, {name} evaluator over {archs} architectures: max |CPU - GPU| "
              f"{diffs.max():.4f}, mean {diffs.mean():.4f}, Spearman {out[name]['spearman_cpu_gpu']:.3f}", flush=True)
    return out


def work(data_root: str | None, gpu: torch.device, repeats: int,
         saved: Callable[[dict[str, Any]], None] = lambda rows: None) -> dict[str, Any]:
    """Seconds of each kind of work on the GPU and on the CPU, side by side (``saved(rows)`` after
    every figure, so a run stopped part-way keeps what it measured)."""
    mnist = load_dataset("mnist", data_root)
    # the fashion-nas preset runs on MNIST tensors here: the same shape and class count, so the same
    # work, and one dataset less to carry to a GPU machine
    fashion = mnist
    space, bp = get_space("gtn-nas"), blueprint_preset("mnist-tiny")
    arch = space.sample(np.random.default_rng(0))
    teaching = str(shipped_teaching_set())
    nas_steps = load_config("fashion-nas").inner_steps

    def jobs(where: str) -> dict[str, Callable[[], object]]:
        device = torch.device(where)
        gtn1 = make_evaluator("gtn", {"teaching_set": teaching, **GTN_OPTS}, data_root, device=where)
        gtn4 = make_evaluator("gtn", {"teaching_set": teaching, **GTN_OPTS, "seeds": 4}, data_root, device=where)
        real = make_evaluator("real", REAL_OPTS, data_root, device=where)
        for ev in (gtn1, gtn4, real):
            ev.setup()
        trainers = {
            "mnist-cpu meta-iteration": ("mnist-cpu", mnist, {}),
            "fashion-nas meta-iteration, 32 inner steps": ("fashion-nas", fashion, {"inner_steps": 32, "dataset": "mnist"}),
            f"fashion-nas meta-iteration, {nas_steps} inner steps (the preset)": ("fashion-nas", fashion,
                                                                                {"dataset": "mnist"}),
        }
        if device.type != "cpu":
            trainers["mnist-paper meta-iteration"] = ("mnist-paper", mnist, {})

        def meta_step(preset: str, data: Any, overrides: dict[str, Any]) -> Callable[[], object]:
            trainer = MetaTrainer(load_config(preset, {"monitor_every": 0, "device": where, **overrides}), data)

            def run() -> object:
                trainer.iteration = 3  # the same learner and batches every time
                return trainer.step()
            return run

        final_bp = blueprint_preset("mnist-final").model_copy(update={"num_classes": 10})
        net = build(arch, final_bp, seed=0).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        xb, yb = mnist.train_x[:96].to(device), mnist.train_y[:96].to(device)

        def final_step(bf16: bool) -> Callable[[], object]:
            def run() -> object:
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = net.training_loss(xb, yb)
                loss.backward()
                return opt.step()
            return run

        out = {
            "GTN-evaluator trial (16 steps, 1000 val)": lambda: gtn1.evaluate(arch, bp, 1),
            "GTN-evaluator trial, K=4 seeds batched": lambda: gtn4.evaluate(arch, bp, 1),
            "real-data trial (64 steps, batch 32)": lambda: real.evaluate(arch, bp, 1),
        }
        out.update({name: meta_step(*spec) for name, spec in trainers.items()})
        out["final-training step, mnist-final, batch 96, fp32"] = final_step(False)
        out["final-training step, mnist-final, batch 96, bf16 autocast"] = final_step(True)
        return out

    results: dict[str, Any] = {}
    for where in (str(gpu), "cpu"):
        for name, fn in jobs(where).items():
            if where == "cpu" and ("bf16" in name or "(the preset)" in name):
                continue  # CPU bf16 autocast is not what anyone trains with here; the preset's inner
                # steps cost about 2x the 64-step one on the CPU (benchmarks/meta_training_cost.py)
            seconds = timed(fn, repeats if where != "cpu" else 1, torch.device(where))
            row = results.setdefault(name, {})
            row["gpu" if where != "cpu" else "cpu"] = seconds
            if "cpu" in row and "gpu" in row:
                row["gpu_speedup"] = row["cpu"] / row["gpu"]
            print(f"{where:>6}  {name:<62} {seconds:8.3f} s", flush=True)
            saved(results)
    return results


def throughput(data_root: str | None, trials: int, workers: list[int], gpu: torch.device) -> dict[str, Any]:
    """The same seeded random search with several local workers sharing the GPU."""
    out = {}
    for n in workers:
        run = timed_search({"workers": n, "threads_per_worker": 1, "device": str(gpu)}, trials,
                           str(shipped_teaching_set()), data_root)
        steady = run["steady_trials"] / run["steady_seconds"] * 3600 if run["steady_seconds"] > 0 else None
        out[str(n)] = {"trials": run["trials"], "seconds": run["seconds"],
                       "trials_per_hour_end_to_end": run["trials"] / run["seconds"] * 3600,
                       "trials_per_hour_steady": steady,
                       "median_trial_seconds": statistics.median(run["trial_seconds"])}
        print(f"throughput, {n} worker(s) on one GPU: {out[str(n)]['trials_per_hour_end_to_end']:.0f} trials/h "
              f"end to end, {steady or float('nan'):.0f} steady", flush=True)
    return out


def final_training(data_root: str | None, gpu: torch.device, epochs: float) -> dict[str, Any]:
    """One epoch of the first seeded cell on ``mnist-final``, fp32 and bf16 autocast, on the GPU."""
    arch = get_space("gtn-nas").sample(np.random.default_rng(0))
    data = load_dataset("mnist", data_root)
    out = {}
    for amp in ("off", "bf16"):
        result = train_final(arch, blueprint_preset("mnist-final"), data,
                             TrainConfig(epochs=epochs, device=str(gpu), amp=amp), seed=0)
        out[amp] = {"seconds": result.seconds, "test_accuracy": result.test_accuracy, "steps": result.steps}
        print(f"final training, mnist-final, {epochs:g} epoch(s), amp {amp}: {result.seconds:.1f} s, "
              f"test accuracy {result.test_accuracy:.4f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_figures.json"))
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the CPU column")
    parser.add_argument("--trials", type=int, default=64, help="trials per throughput configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--only", nargs="+", choices=["agreement", "work", "throughput", "final"],
                        default=["agreement", "work", "final", "throughput"])
    parser.add_argument("--epochs", type=float, default=1.0, help="final-training epochs")
    parser.add_argument("--device", default="cuda:0", help="the GPU (cpu: a dry run of the script itself)")
    args = parser.parse_args()
    gpu = torch.device(args.device)
    if gpu.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_figures.py needs CUDA: run it on a machine with an NVIDIA GPU")
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"device": device_info(gpu), "threads": args.threads}
    print(json.dumps(results["device"]), flush=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    def saved(name: str) -> Callable[[dict[str, Any]], None]:
        def write(partial: dict[str, Any]) -> None:
            results[name] = partial
            path.write_text(json.dumps(results, indent=2))
        return write

    steps = {"agreement": lambda: agreement(args.data_root, args.archs, gpu),
             "work": lambda: work(args.data_root, gpu, args.repeats, saved("work")),
             "throughput": lambda: throughput(args.data_root, args.trials, args.workers, gpu),
             "final": lambda: final_training(args.data_root, gpu, args.epochs)}
    for name in args.only:
        try:
            results[name] = steps[name]()
        except Exception as exc:  # one failing part must not lose the others' figures
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", flush=True)
        path.write_text(json.dumps(results, indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
