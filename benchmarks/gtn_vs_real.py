"""Benchmark: fresh learners trained T steps on a GTN teaching set versus T steps of real data.

    python benchmarks/gtn_vs_real.py --dataset mnist --out benchmarks/results/gtn_vs_real_mnist
    python benchmarks/gtn_vs_real.py --dataset fashion_mnist --out benchmarks/results/gtn_vs_real_fashion

Steps (all numbers printed and saved to <out>/results.json, pictures to <out>/*.png):

1. meta-train a GTN with the CPU preset (or reuse ``--run``), recording wall time and peak RSS;
2. >= 10 fresh learners never seen in meta-training: new seeds, half of them with random widths
   (architectures the GTN never taught); each trained T steps on the teaching set;
3. the same learners (same initial weights) trained T steps on real data at the same batch size,
   with optimiser / learning rate / momentum chosen by a grid on *validation* accuracy of separate
   tuning learners; test accuracy reported for the evaluation learners;
4. the speed-up: real-data steps the same learners need to reach the GTN's test accuracy, each
   horizon (T, 2T, 4T, ...) with its own grid-tuned optimiser;
5. optional ablations (``--ablations``): the four curricula and weight normalisation off, each
   meta-trained for ``--ablation-iterations``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gtn_search.data import load_dataset
from gtn_search.gtn.config import GTNConfig, load_config
from gtn_search.gtn.learners import make_learner
from gtn_search.gtn.meta_train import MetaTrainer
from gtn_search.gtn.plots import (
    plot_curriculum,
    plot_learning_curves,
    plot_meta_training,
    plot_schedule,
)
from gtn_search.gtn.teaching_set import TeachingSet
from gtn_search.gtn.unroll import evaluate, unroll
from gtn_search.seeding import derive_seed

GRID = (
    [{"optimizer": "sgd", "lr": lr, "momentum": m} for lr in (0.01, 0.03, 0.1, 0.3, 1.0) for m in (0.0, 0.5, 0.9)]
    + [{"optimizer": "adam", "lr": lr, "momentum": 0.0} for lr in (1e-3, 3e-3, 1e-2, 3e-2)]
)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def learners(config: GTNConfig, data, count: int, tag: str,
             device: torch.device | None = None) -> list[tuple[torch.nn.Module, str]]:
    """Fresh learners: the first half with the preset widths, the rest with random widths (built on
    the CPU from their seeds, then moved to ``device``)."""
    out = []
    for i in range(count):
        spec = config.learner
        if i >= count // 2 and getattr(spec, "kind", "") == "conv":
            spec = spec.model_copy(update={"random_widths": True})
        module, description = make_learner(spec, data.shape, data.num_classes, derive_seed(987654, tag, i))
        out.append((module.to(device) if device is not None else module, description))
    return out


def teaching_set_accuracies(config: GTNConfig, data, teaching: TeachingSet, count: int, tag: str, x, y,
                            device: torch.device | None = None) -> tuple[list[float], list[str]]:
    """Accuracy on (x, y) of ``count`` fresh learners (:func:`learners`) each trained on ``teaching``;
    and their descriptions."""
    accs, described = [], []
    for module, description in learners(config, data, count, tag, device):
        accs.append(evaluate(module, teaching.train(module), x, y)[0])
        described.append(description)
    return accs, described


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean and standard error of the learner-by-learner differences ``a - b``, in points."""
    diffs = [100 * (x - y) for x, y in zip(a, b)]
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
    return {"mean_points": statistics.mean(diffs), "se_points": se}


def moving_average_check(config: GTNConfig, data, trainer: MetaTrainer, averaged: TeachingSet,
                         averaged_test: list[float], count: int, device: torch.device) -> dict[str, Any]:
    """The teaching set of the GTN's moving average (``ema_decay``: ``averaged``, the one exported and
    scored above, with test accuracies ``averaged_test``) against the raw GTN's, with the same fresh
    learners: on the validation split (where a choice may be made) and on the test split; paired
    differences."""
    raw = trainer.teaching_set(averaged=False).to(device)
    row: dict[str, Any] = {"ema_decay": config.ema_decay}
    for split, x, y in (("val", data.val_x, data.val_y), ("test", data.test_x, data.test_y)):
        raw_accs, _ = teaching_set_accuracies(config, data, raw, count, "eval", x, y, device)
        avg_accs = averaged_test if split == "test" else teaching_set_accuracies(
            config, data, averaged, count, "eval", x, y, device)[0]
        row[split] = {"averaged": mean_std(avg_accs), "raw": mean_std(raw_accs), "averaged_per_learner": avg_accs,
                      "raw_per_learner": raw_accs, "averaged_minus_raw": paired(avg_accs, raw_accs)}
        d = row[split]["averaged_minus_raw"]
        print(f"moving average ({config.ema_decay}) vs raw GTN, {split}: {row[split]['averaged'][0]:.4f} vs "
              f"{row[split]['raw'][0]:.4f} ({d['mean_points']:+.2f} +- {d['se_points']:.2f} points, paired)",
              flush=True)
    return row


def gtn_curve(module, teaching: TeachingSet, x, y, points: list[int]) -> dict[int, float]:
    """Test accuracy after each step count in ``points`` while training on the teaching set."""
    accs: dict[int, float] = {}

    def probe(t: int, params):  # type: ignore[no-untyped-def]
        if t + 1 in points:
            accs[t + 1] = evaluate(module, {k: v.detach() for k, v in params.items()}, x, y)[0]

    unroll(module, teaching.images, teaching.targets, teaching.lr, teaching.momentum, intermediate=probe)
    return accs


def real_curve(module, data, batch: int, opt_cfg: dict[str, Any], steps: int, seed: int, x, y,
               points: list[int]) -> dict[int, float]:
    """Accuracy on (x, y) after each step count in ``points`` of real-data training."""
    import copy

    net = copy.deepcopy(module)
    params = list(net.parameters())
    if opt_cfg["optimizer"] == "adam":
        opt = torch.optim.Adam(params, lr=opt_cfg["lr"])
    else:
        opt = torch.optim.SGD(params, lr=opt_cfg["lr"], momentum=opt_cfg["momentum"])
    rng = torch.Generator().manual_seed(seed)
    accs: dict[int, float] = {}
    for step in range(1, steps + 1):
        idx = torch.randint(len(data.train_x), (batch,), generator=rng).to(data.train_x.device)
        loss = F.cross_entropy(net(data.train_x[idx]), data.train_y[idx])
        if not torch.isfinite(loss):
            return {p: 0.0 for p in points if p >= step} | accs
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in points:
            accs[step] = evaluate(net, dict(net.named_parameters()), x, y)[0]
    return accs


def tune(tuning, data, batch: int, steps: int, val_size: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The grid point with the best mean validation accuracy over the tuning learners."""
    x, y = data.val_x[:val_size], data.val_y[:val_size]
    rows = []
    for cfg in GRID:
        accs = [real_curve(m, data, batch, cfg, steps, derive_seed(5, "tune", i), x, y, [steps])[steps]
                for i, (m, _) in enumerate(tuning)]
        rows.append({**cfg, "val_accuracy": statistics.mean(accs)})
    best = max(rows, key=lambda r: r["val_accuracy"])
    return {k: best[k] for k in ("optimizer", "lr", "momentum")}, rows


class RealHorizonCache:
    """The real-data results of finished horizons, kept in a JSON file and reused only when the run's
    learners, grid and data settings (``key``) are the same."""

    def __init__(self, path: Path, key: dict[str, Any]) -> None:
        self.path, self.key = path, key
        stored = json.loads(path.read_text()) if path.exists() else {}
        self.horizons: dict[str, Any] = stored.get("horizons", {}) if stored.get("key") == key else {}

    def get(self, horizon: int) -> dict[str, Any] | None:
        row = self.horizons.get(str(horizon))
        if row is None:
            return None
        return {**row, "curves": [{int(k): v for k, v in c.items()} for c in row["curves"]]}

    def put(self, horizon: int, row: dict[str, Any]) -> None:
        self.horizons[str(horizon)] = row
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key, "horizons": self.horizons}))
        tmp.replace(self.path)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def meta_train(config: GTNConfig, data, run_dir: Path, progress: bool) -> tuple[MetaTrainer, float, float]:
    """Meta-train (or finish/reuse) the run in ``run_dir``; returns the trainer, its meta-training
    seconds and the peak RSS (MiB) of the process that trained it (kept in ``run_dir/meta.json``)."""
    ckpt = run_dir / "checkpoint.pt"
    trainer = MetaTrainer.from_checkpoint(ckpt, data=data) if ckpt.exists() else MetaTrainer(config, data)
    trained = trainer.iteration < trainer.config.meta_iterations
    trainer.run(checkpoint_path=ckpt, progress=progress)
    trainer.teaching_set().save(run_dir / "teaching_set.pt")
    (run_dir / "history.json").write_text(json.dumps(trainer.history))
    meta_file = run_dir / "meta.json"
    if trained or not meta_file.exists():
        meta_file.write_text(json.dumps({"peak_rss_mib": peak_rss_mib()}))
    return trainer, sum(trainer.history["seconds"]), json.loads(meta_file.read_text())["peak_rss_mib"]


def ablations(base: GTNConfig, data, out: Path, iterations: int, count: int, progress: bool) -> dict[str, Any]:
    """Curriculum variants and weight normalisation off, each meta-trained ``iterations`` times."""
    variants = {f"curriculum={c}": {"curriculum": c} for c in ("none", "all_shuffled", "shuffled_batch", "full")}
    variants["weight_norm=off"] = {"generator": {**base.generator.model_dump(), "weight_norm": False},
                                   "learner": {**base.learner.model_dump(), "weight_norm": False}}
    results = {}
    for name, change in variants.items():
        cfg = GTNConfig.model_validate({**base.model_dump(mode="json"), **change, "meta_iterations": iterations,
                                        "monitor_every": 0, "checkpoint_every": max(1, iterations // 4)})
        run_dir = out / "ablations" / name.replace("=", "_")
        trainer, seconds, _ = meta_train(cfg, data, run_dir, progress)
        test = trainer.data
        accs, _ = teaching_set_accuracies(cfg, data, trainer.teaching_set().to(trainer.device), count, "ablation",
                                          test.test_x, test.test_y, trainer.device)
        m, s = mean_std(accs)
        results[name] = {"test_accuracy_mean": m, "test_accuracy_std": s, "meta_seconds": seconds,
                         "iterations": iterations, "learners": count}
        print(f"  ablation {name:<28} test accuracy {m:.4f} +- {s:.4f} ({seconds / 60:.1f} min)", flush=True)
    return results


def plot_ablations(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    means = [results[n]["test_accuracy_mean"] for n in names]
    stds = [results[n]["test_accuracy_std"] for n in names]
    ax.barh(names, means, xerr=stds, color="#6baed6")
    ax.set_xlim(max(0.0, min(means) - 0.1), 1.0)
    ax.set_xlabel("test accuracy after the teaching set (fresh learners)")
    for i, m in enumerate(means):
        ax.text(m, i, f" {m:.3f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--preset", default="mnist-cpu")
    parser.add_argument("--set", action="append", default=[], help="override a preset field, key=yaml")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--learners", type=int, default=12)
    parser.add_argument("--tuning-learners", type=int, default=3)
    parser.add_argument("--max-factor", type=int, default=16, help="longest real-data horizon, in multiples of T")
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--ablations-only", action="store_true",
                        help="keep <out>/results.json as it is and only run (or finish) the ablations")
    parser.add_argument("--ablation-iterations", type=int, default=150)
    parser.add_argument("--ablation-learners", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from gtn_search.gtn.config import parse_override

    overrides = {"dataset": args.dataset, **dict(parse_override(s) for s in args.set)}
    config = load_config(args.preset, overrides)
    out = Path(args.out)
    run_dir = out / "gtn_run"
    run_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset, args.data_root)
    print(data.summary(), flush=True)
    if args.ablations_only:
        if not (out / "results.json").exists():
            parser.error(f"--ablations-only needs {out / 'results.json'} from a full run")
        results = json.loads((out / "results.json").read_text())
        run_ablations(results, config, data, out, args)
        return

    trainer, meta_seconds, rss = meta_train(config, data, run_dir, args.progress)
    # fresh learners and real-data baselines train where the GTN was meta-trained (config.device)
    device = trainer.device
    data = data.to(device)
    teaching = trainer.teaching_set()
    t_steps, batch = teaching.steps, teaching.batch
    print(f"meta-training: {trainer.iteration} iterations, {meta_seconds / 60:.1f} min, peak RSS {rss:.0f} MiB",
          flush=True)
    plot_meta_training(trainer.history, out / "meta_training.png")
    plot_schedule(teaching, out / "schedule.png")
    plot_curriculum(teaching, out / "curriculum.png")
    teaching = teaching.to(device)

    eval_learners = learners(config, data, args.learners, "eval", device)
    tuning = learners(config, data, args.tuning_learners, "tune", device)
    points = sorted({1, 2, 4, 8, 16, t_steps} | set(range(t_steps // 8, t_steps + 1, max(1, t_steps // 8))))
    points = [p for p in points if 1 <= p <= t_steps]
    start = time.time()
    gtn_curves = [gtn_curve(m, teaching, data.test_x, data.test_y, points) for m, _ in eval_learners]
    gtn_seconds = (time.time() - start) / len(eval_learners)
    gtn_final = [c[t_steps] for c in gtn_curves]
    gtn_mean, gtn_std = mean_std(gtn_final)
    print(f"GTN: test accuracy after {t_steps} steps x {batch} synthetic images: {gtn_mean:.4f} +- {gtn_std:.4f} "
          f"({len(gtn_final)} fresh learners: {', '.join(d for _, d in eval_learners)})", flush=True)

    horizons = [t_steps * f for f in (1, 2, 4, 8, 16, 32) if f <= args.max_factor]
    # the real-data baseline does not depend on the teaching set: each finished horizon is kept in
    # real_horizons.json so that an interrupted run resumes at the first unfinished one
    cache = RealHorizonCache(out / "real_horizons.json", {
        "dataset": args.dataset, "learners": [d for _, d in eval_learners],
        "tuning_learners": [d for _, d in tuning], "grid": GRID, "val_size": args.val_size,
        "batch": batch, "points": points, "t_steps": t_steps})
    real = {}
    for h in horizons:
        row = cache.get(h)
        if row is None:
            best_cfg, grid = tune(tuning, data, batch, h, args.val_size)
            hp = sorted(set(points + [h]) if h == t_steps else {h})
            curves = [real_curve(m, data, batch, best_cfg, h, derive_seed(7, "eval", i), data.test_x, data.test_y,
                                 hp) for i, (m, _) in enumerate(eval_learners)]
            m, s = mean_std([c[h] for c in curves])
            row = {"best": best_cfg, "grid": grid, "test_mean": m, "test_std": s, "curves": curves}
            cache.put(h, row)
        real[h] = row
        print(f"real data, {h} steps: test accuracy {row['test_mean']:.4f} +- {row['test_std']:.4f} "
              f"with tuned {row['best']}", flush=True)
    reached = next((h for h in horizons if real[h]["test_mean"] >= gtn_mean), None)
    if reached is None:
        speedup, speedup_text = None, f">= {horizons[-1] / t_steps:.0f}x (real data did not reach the GTN accuracy)"
    else:
        i = horizons.index(reached)
        if i == 0:
            needed = reached
        else:  # log-linear interpolation between the two horizons around the crossing
            h0, h1 = horizons[i - 1], reached
            a0, a1 = real[h0]["test_mean"], real[h1]["test_mean"]
            frac = (gtn_mean - a0) / (a1 - a0) if a1 > a0 else 1.0
            needed = math.exp(math.log(h0) + frac * (math.log(h1) - math.log(h0)))
        speedup = needed / t_steps
        speedup_text = f"{speedup:.1f}x ({needed:.0f} real steps to match {t_steps} GTN steps)"
    print(f"speed-up: {speedup_text}", flush=True)

    base = real[t_steps]
    curves_plot = {
        f"GTN data ({batch}/step)": (points, [statistics.mean(c[p] for c in gtn_curves) for p in points],
                                     [statistics.pstdev([c[p] for c in gtn_curves]) for p in points]),
        f"real data, tuned ({base['best']['optimizer']} lr {base['best']['lr']})":
            (points, [statistics.mean(c[p] for c in base["curves"]) for p in points],
             [statistics.pstdev([c[p] for c in base["curves"]]) for p in points]),
    }
    plot_learning_curves(curves_plot, out / "learning_curves.png",
                         title=f"{args.dataset}: fresh learners, GTN vs real data (test accuracy)")

    results: dict[str, Any] = {
        "dataset": args.dataset, "preset": args.preset, "config": config.to_mapping(),
        "meta_iterations": trainer.iteration, "meta_training_minutes": meta_seconds / 60,
        "peak_rss_mib": rss, "inner_steps": t_steps, "inner_batch": batch,
        "learners": [d for _, d in eval_learners],
        "gtn": {"test_mean": gtn_mean, "test_std": gtn_std, "per_learner": gtn_final,
                "seconds_per_learner": gtn_seconds, "curve_points": points},
        "real": {str(h): {k: v for k, v in r.items() if k != "curves"} | {"per_learner": [c[h] for c in r["curves"]]}
                 for h, r in real.items()},
        "grid": GRID,
        "gap_points_at_T": 100 * (gtn_mean - base["test_mean"]),
        "speedup": speedup, "speedup_text": speedup_text,
    }
    if trainer.ema is not None:
        results["moving_average"] = moving_average_check(config, data, trainer, teaching, gtn_final, args.learners,
                                                         device)
    (out / "results.json").write_text(json.dumps(results, indent=2))  # kept if the ablations are interrupted
    print(f"saved {out / 'results.json'}")
    if args.ablations:
        run_ablations(results, config, data, out, args)


def run_ablations(results: dict[str, Any], config: GTNConfig, data, out: Path, args: argparse.Namespace) -> None:
    """Run (resumable: each variant checkpoints in out/ablations/<name>) and save the ablations."""
    results["ablations"] = ablations(config, data, out, args.ablation_iterations, args.ablation_learners,
                                     args.progress)
    plot_ablations(results["ablations"], out / "ablations.png")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"saved {out / 'results.json'} with the ablations", flush=True)


if __name__ == "__main__":
    main()
