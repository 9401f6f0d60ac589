"""Benchmark: screen changes to the ``mnist-cpu`` recipe on *validation* data, at equal meta-iterations.

    python benchmarks/mnist_recipe.py --data-root ../shared/data --variants baseline,soft_labels \\
        --iterations 500 --threads 1 --out benchmarks/results/mnist_recipe
    python benchmarks/mnist_recipe.py --out benchmarks/results/mnist_recipe --summary

Issue 13 asks for >= 98.0% MNIST test accuracy after 32 GTN steps within 30 minutes of
meta-training on this machine; the preset reached 97.76% with the 1600 iterations that fit
(``gtn_vs_real_mnist_1600``). A recipe change has to be chosen without looking at the test set, so
each variant here (the preset with one set of overrides, :data:`VARIANTS`, all costing about the same
per meta-iteration, except the last two, which are screened at equal wall time with more
``--iterations``) is meta-trained for ``--iterations`` and scored by ``--learners`` fresh learners
(the same mix as ``gtn_vs_real.py``: half with the preset widths, half with random widths; seeds not
used there) on the 10,000-image **validation** split. Each variant is resumable and kept in
``<out>/<variant>/screen.json``, so two variants can run side by side (one thread each);
``--summary`` gathers them into ``<out>/results.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from gtn_search.data import load_dataset
from gtn_search.gtn.config import load_config

from gtn_vs_real import mean_std, meta_train, teaching_set_accuracies  # type: ignore[import-not-found]

#: the recipe changes screened (preset overrides); the first four cost about what the preset costs per
#: meta-iteration
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "soft_labels": {"soft_labels": True},
    "lr_0.02": {"lr": 0.02},
    "soft_labels+lr_0.02": {"soft_labels": True, "lr": 0.02},
    # cheaper per meta-iteration: screened at the preset's wall time (more iterations, --iterations)
    "soft_labels+batch_32": {"soft_labels": True, "inner_batch": 32},
    "soft_labels+intermediate_8": {"soft_labels": True, "intermediate_every": 8},
}


def screen(name: str, args: argparse.Namespace, data) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Meta-train variant ``name`` (or finish/reuse it) and score fresh learners on the validation split."""
    out = Path(args.out) / name
    done = out / "screen.json"
    if done.exists():  # a finished variant is not scored again
        row = json.loads(done.read_text())
        if row["iterations"] == args.iterations and len(row["per_learner"]) == args.learners:
            return row
    out.mkdir(parents=True, exist_ok=True)
    config = load_config(args.preset, {**VARIANTS[name], "meta_iterations": args.iterations,
                                       "monitor_every": 0, "checkpoint_every": 50})
    trainer, seconds, rss = meta_train(config, data, out, progress=args.progress)
    start = time.perf_counter()
    accs, described = teaching_set_accuracies(config, data, trainer.teaching_set(), args.learners, "recipe-screen",
                                              data.val_x, data.val_y)
    mean, std = mean_std(accs)
    row = {"variant": name, "overrides": VARIANTS[name], "iterations": trainer.iteration,
           "meta_seconds": seconds, "seconds_per_iteration": statistics.median(trainer.history["seconds"]),
           "threads": args.threads, "peak_rss_mib": rss, "val_size": len(data.val_y),
           "val_accuracy_mean": mean, "val_accuracy_std": std, "per_learner": accs, "learners": described,
           "final_meta_loss_last50": statistics.mean(trainer.history["meta_loss"][-50:]),
           "scoring_seconds": time.perf_counter() - start}
    done.write_text(json.dumps(row, indent=2))
    print(f"{name:<22} val accuracy {mean:.4f} +- {std:.4f} ({len(accs)} learners, {trainer.iteration} its, "
          f"{row['seconds_per_iteration']:.2f} s/it)", flush=True)
    return row


def summary(out: Path) -> list[dict[str, Any]]:
    """Every screened variant of ``out``, best validation accuracy first; written to results.json."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*/screen.json"))]
    rows.sort(key=lambda r: -r["val_accuracy_mean"])
    base = next((r for r in rows if r["variant"] == "baseline"), None)
    print(f"{'variant':<22} {'val accuracy':>16} {'vs baseline (paired, +- s.e.)':>30} {'s/it':>6} {'its':>5}")
    for r in rows:
        delta = ""
        if base is not None and r is not base and r["learners"] == base["learners"]:
            # the same learners (seeds and widths) in every variant: paired differences
            diffs = [100 * (a - b) for a, b in zip(r["per_learner"], base["per_learner"])]
            r["paired_delta_points"] = statistics.mean(diffs)
            r["paired_delta_se"] = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
            delta = f"{r['paired_delta_points']:+.2f} +- {r['paired_delta_se']:.2f} pts"
        print(f"{r['variant']:<22} {r['val_accuracy_mean']:.4f} +- {r['val_accuracy_std']:.4f} {delta:>30} "
              f"{r['seconds_per_iteration']:6.2f} {r['iterations']:5d}")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist-cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names from VARIANTS")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--learners", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summary", action="store_true", help="only gather the finished variants")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    if not args.summary:
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
        torch.set_num_threads(args.threads)
        data = load_dataset("mnist", args.data_root)
        for name in names:
            screen(name, args, data)
    summary(out)


if __name__ == "__main__":
    main()
