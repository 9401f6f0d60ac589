"""``gtn-search quickstart``: a small, real GTN-accelerated architecture search on MNIST, to a test accuracy.

1. a GTN teaching set for NAS learners: the one shipped with gtn-search (made by
   ``gtn-search gtn train --preset mnist-nas-quickstart``), or meta-trained now with that preset;
2. regularized evolution over the paper's cell space, every candidate scored by the GTN
   evaluator (16 SGD steps on the teaching set, accuracy on 1,000 validation images);
3. the best cells exported as YAML and drawn, the study table printed, best-score-over-time plotted;
4. the best cell expanded by a larger blueprint and trained on real MNIST (a recipe sized for a
   laptop CPU: one epoch of the ``mnist-search`` network), ending with its **test** accuracy, and a
   self-contained HTML report of the study.

Everything lands in ``--out`` (default ``runs/quickstart``); running it again resumes the study and the
final training. The time of every phase is printed.
"""

from __future__ import annotations

import argparse
import shutil
import time
from importlib import resources
from pathlib import Path

from gtn_search.cli.common import add_device_argument, device_argument
from gtn_search.errors import ConfigError

SHIPPED_TEACHING_SET = "mnist-nas-quickstart.pt"


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("quickstart", help="a small end-to-end GTN-accelerated search on MNIST (minutes on a CPU)")
    q.add_argument("--data-root", help="folder with MNIST (torchvision layout); default $GTN_SEARCH_DATA or cache")
    q.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    q.add_argument("--trials", type=int, default=40, help="architectures to evaluate (default 40)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    q.add_argument("--retrain-gtn", action="store_true",
                   help="meta-train the teaching set now instead of using the shipped one")
    q.add_argument("--final-blueprint", default="mnist-search", metavar="NAME|FILE",
                   help="blueprint the best cell is trained with on real MNIST (default mnist-search)")
    q.add_argument("--final-epochs", type=float, default=1.0,
                   help="epochs of real-data training of the best cell (default 1; 0 skips phase 4)")
    add_device_argument(q)
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_quickstart)


def shipped_teaching_set() -> Path | None:
    """The teaching set packaged with gtn-search, if present."""
    path = resources.files("gtn_search.assets").joinpath(SHIPPED_TEACHING_SET)
    return Path(str(path)) if path.is_file() else None


def cmd_quickstart(args: argparse.Namespace) -> int:
    from gtn_search.cli.common import check_output, resolve_blueprint
    from gtn_search.cli.search import print_summary
    from gtn_search.data import load_dataset
    from gtn_search.final_train import TrainConfig, train_final
    from gtn_search.gtn.config import load_config
    from gtn_search.gtn.meta_train import MetaTrainer
    from gtn_search.gtn.teaching_set import TeachingSet
    from gtn_search.html_report import write_html_report
    from gtn_search.report import export_top, plot_best_over_time, summary_table
    from gtn_search.runner import run_search
    from gtn_search.search_config import SearchConfig
    from gtn_search.storage import Study
    from search_spaces.drawing import draw_architecture
    from search_spaces.yaml_format import load_architecture

    if args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    if args.final_epochs < 0:
        raise ConfigError(f"--final-epochs must be >= 0 (0 skips the final training), got {args.final_epochs}")
    device = device_argument(args.device) or "auto"
    out = check_output(args.out, "--out", folder=True)
    final_blueprint = resolve_blueprint(args.final_blueprint) if args.final_epochs else None
    out.mkdir(parents=True, exist_ok=True)
    phases: list[tuple[str, float]] = []
    clock = time.perf_counter()

    def done(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases.append((phase, now - clock))
        print(f"      ({phase}: {now - clock:.1f} s)")
        clock = now

    total = 4 if args.final_epochs else 3
    data = load_dataset("mnist", args.data_root)
    print(f"[1/{total}] data: {data.summary()}")
    teaching_path = out / "teaching_set.pt"
    if not teaching_path.exists():
        shipped = None if args.retrain_gtn else shipped_teaching_set()
        if shipped is not None:
            shutil.copyfile(shipped, teaching_path)
            print(f"      teaching set: the one shipped with gtn-search ({shipped.name})")
        else:
            print("      teaching set: meta-training a GTN for NAS learners (preset mnist-nas-quickstart)")
            trainer = MetaTrainer(load_config("mnist-nas-quickstart", {"seed": args.seed, "device": device}), data)
            trainer.run(checkpoint_path=out / "gtn_checkpoint.pt", progress=not args.no_progress)
            trainer.teaching_set().save(teaching_path)
    teaching = TeachingSet.load(teaching_path, dataset="mnist")
    print(f"      {teaching.summary()}")
    done("data and teaching set")

    print(f"[2/{total}] search: regularized evolution, {args.trials} architectures scored on GTN data")
    config = SearchConfig.model_validate({
        "study": str(out / "study.db"),
        "space": "gtn-nas",
        "blueprint": "mnist-tiny",
        "strategy": {"name": "evolution", "options": {"population": 10, "sample_size": 3}},
        "evaluator": {"name": "gtn", "options": {"teaching_set": str(teaching_path), "val_size": 1000}},
        "budget": {"trials": args.trials},
        "seed": args.seed,
        "workers": args.workers,
        "data_root": args.data_root,
        "device": device,
    })
    summary = run_search(config, progress=not args.no_progress)
    print_summary(summary)
    done("search")

    print(f"[3/{total}] results")
    study = Study(config.study, create=False)
    try:
        print(summary_table(study, top=5))
        plot = plot_best_over_time(study, out / "best_over_time.png")
        exported = export_top(study, out / "best", top=3)
    finally:
        study.close()
    best = load_architecture(exported[0])
    proxy = float(best.metadata["score"])
    picture = draw_architecture(best.architecture, out / "best_cell.png",
                                title=f"best cell (GTN proxy score {proxy:.4f})")
    report = write_html_report(config.study, out / "report.html")
    for path in [*exported, plot, picture, report]:
        print(f"wrote {path}")
    done("export, drawings and report")

    if final_blueprint is None:
        print(f"next: train the best cell on real data: gtn-search train {exported[0]} --blueprint mnist-search "
              f"--epochs 1 --out {out / 'final'}")
        return 0
    recipe = TrainConfig(epochs=args.final_epochs, device=device)
    print(f"[4/{total}] final training: the best cell in the {args.final_blueprint} network, {args.final_epochs:g} "
          f"epoch(s) of real MNIST (SGD, cosine lr from {recipe.lr}, batch {recipe.batch_size}), then the test set")
    final_dir = out / "final" / best.architecture.short_hash  # a later, better cell trains in its own folder
    result = train_final(best.architecture, final_blueprint, data, recipe, final_dir, seed=args.seed,
                         progress=not args.no_progress)
    done("final training")
    print(f"wrote {final_dir / 'result.json'}")
    print("")
    print(f"best cell {best.architecture.short_hash}: GTN proxy score {proxy:.4f}, MNIST test accuracy "
          f"{100 * result.test_accuracy:.2f}%")
    print("  proxy score = validation accuracy of a 4-channel mnist-tiny network after 16 SGD steps on synthetic "
          "GTN images: cheap, low in absolute terms, used only to rank candidates;")
    print(f"  test accuracy = the same cell in the {args.final_blueprint} network ({result.params:,} parameters) "
          f"after {result.epochs:g} epoch(s) on real MNIST, measured once on the 10,000 test images.")
    print("time per phase: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in phases)
          + f"; total {sum(s for _, s in phases):.0f} s")
    return 0
