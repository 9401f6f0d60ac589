"""``gtn-search gtn``: meta-train a GTN, draw its curriculum, evaluate its teaching set."""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from pathlib import Path

from gtn_search.cli.common import add_device_argument, device_argument
from gtn_search.errors import ConfigError
from gtn_search.gtn.config import preset_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gtn", help="meta-train a Generative Teaching Network and use its teaching set")
    gsub = p.add_subparsers(dest="gtn_command", metavar="ACTION", required=True)

    t = gsub.add_parser("train", help="meta-train a GTN (resumable); writes checkpoint, teaching set, plots")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--preset", help="a shipped preset: " + ", ".join(preset_names()) + " (default mnist-cpu)")
    src.add_argument("--config", help="a YAML file with GTN settings (see the presets)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, value in YAML (repeatable), e.g. --set meta_iterations=100")
    t.add_argument("--out", required=True, help="run folder (checkpoint.pt, teaching_set.pt, history.json, plots)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--data-root", help="dataset folder (default $GTN_SEARCH_DATA or ~/.cache/gtn-search/data)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_device_argument(t)
    t.add_argument("--deterministic", action="store_true",
                   help="on CUDA: deterministic algorithms (bit-identical reruns and resumes, slower)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    s = gsub.add_parser("sample", help="draw the curriculum (a row of images per inner step) as PNG")
    s.add_argument("source", help="a GTN checkpoint (checkpoint.pt) or a teaching set (teaching_set.pt)")
    s.add_argument("--out", required=True, help="PNG path")
    s.add_argument("--steps", type=int, default=None, help="how many steps to draw (default all, at most 32)")
    s.add_argument("--per-class", type=int, default=1, help="images per class and step (default 1)")
    s.set_defaults(func=cmd_sample)

    e = gsub.add_parser("eval", help="train K fresh learners on a teaching set; accuracy mean +- std")
    e.add_argument("teaching_set", help="teaching_set.pt")
    e.add_argument("--learners", type=int, default=5, help="how many fresh learners (default 5)")
    e.add_argument("--steps", type=int, default=None, help="inner steps (default: all in the teaching set)")
    e.add_argument("--split", choices=["val", "test"], default="test", help="where to measure (default test)")
    e.add_argument("--seed", type=int, default=1000, help="first learner seed (default 1000)")
    e.add_argument("--data-root", help="dataset folder")
    e.add_argument("--threads", type=int, default=None)
    add_device_argument(e)
    e.set_defaults(func=cmd_eval)


def _threads(n: int | None) -> None:
    import torch

    if n is not None:
        if n < 1:
            raise ConfigError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)


def cmd_train(args: argparse.Namespace) -> int:
    from gtn_search.cli.common import check_output
    from gtn_search.configio import dump_yaml, errors_name, write_text_atomic
    from gtn_search.data import load_dataset
    from gtn_search.gtn.config import load_config, parse_override
    from gtn_search.gtn.learners import check_learner
    from gtn_search.gtn.meta_train import MetaTrainer
    from gtn_search.gtn.plots import save_run_plots

    out = check_output(args.out, "--out", folder=True)
    _threads(args.threads)
    device = device_argument(args.device)
    ckpt = out / "checkpoint.pt"
    if args.resume:
        if not ckpt.exists():
            raise ConfigError(f"--resume: no checkpoint at {ckpt}; start a run without --resume")
        if args.preset or args.config or args.set:
            raise ConfigError("--resume continues with the run's saved settings; drop --preset/--config/--set")
        trainer = MetaTrainer.from_checkpoint(ckpt, data_root=args.data_root, device=device or "auto",
                                              deterministic=args.deterministic)
        print(f"resuming {out} at meta-iteration {trainer.iteration}/{trainer.config.meta_iterations}")
    else:
        if ckpt.exists():
            raise ConfigError(f"{ckpt} exists: pass --resume to continue that run, or choose another --out")
        overrides = dict(parse_override(s) for s in args.set)
        overrides.update({"device": device} if device else {})
        overrides.update({"deterministic": True} if args.deterministic else {})
        config = load_config(args.config or args.preset or "mnist-cpu", overrides)
        with errors_name(args.config) if args.config else contextlib.nullcontext():
            check_learner(config.learner)
        data = load_dataset(config.dataset, args.data_root)
        print(data.summary())
        trainer = MetaTrainer(config, data)
        write_text_atomic(out / "config.yaml", dump_yaml(config.to_mapping()))
    trainer.run(checkpoint_path=ckpt, progress=not args.no_progress)
    teaching = trainer.teaching_set()
    teaching.save(out / "teaching_set.pt")
    write_text_atomic(out / "history.json", json.dumps(trainer.history))
    pictures = save_run_plots(trainer, out)
    acc = trainer.history["monitor_accuracy"][-1] if trainer.history["monitor_accuracy"] else None
    seconds = sum(trainer.history["seconds"])
    print(f"done: {trainer.iteration} meta-iterations in {seconds / 60:.1f} min of meta-training"
          + (f"; monitor validation accuracy {acc:.4f}" if acc is not None else ""))
    averaged = trainer.exported_gtn() is not trainer.gtn
    print(f"wrote {out / 'teaching_set.pt'} ({teaching.summary()}"
          + (f"; from the moving average of the GTN, decay {trainer.config.ema_decay})" if averaged else ")"))
    for pic in pictures:
        print(f"wrote {pic}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from gtn_search.cli.common import check_output
    from gtn_search.gtn.plots import plot_curriculum

    source = Path(args.source)
    for flag, value in (("--steps", args.steps), ("--per-class", args.per_class)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    check_output(args.out, "--out", suffixes=(".png",))
    teaching = _teaching_set_from(source)
    out = plot_curriculum(teaching, args.out, steps=args.steps, per_class=args.per_class)
    print(f"wrote {out}")
    return 0


def _teaching_set_from(source: Path):  # type: ignore[no-untyped-def]
    """A teaching set read from a teaching-set file, or exported from a GTN checkpoint (no dataset needed)."""
    from gtn_search.gtn.meta_train import CHECKPOINT_FORMAT, teaching_set_from_checkpoint
    from gtn_search.gtn.teaching_set import TeachingSet
    from gtn_search.tensorfile import file_format

    if file_format(source) == CHECKPOINT_FORMAT:
        return teaching_set_from_checkpoint(source)
    return TeachingSet.load(source)


def cmd_eval(args: argparse.Namespace) -> int:
    from gtn_search.configio import parse_model
    from gtn_search.data import load_dataset
    from gtn_search.device import resolve_device
    from gtn_search.gtn.config import GTNConfig
    from gtn_search.gtn.learners import make_learner
    from gtn_search.gtn.teaching_set import TeachingSet
    from gtn_search.gtn.unroll import evaluate
    from gtn_search.seeding import derive_seed

    _threads(args.threads)
    device = resolve_device(device_argument(args.device))
    if args.learners < 1:
        raise ConfigError(f"--learners must be >= 1, got {args.learners}")
    teaching = TeachingSet.load(args.teaching_set).to(device)
    data = load_dataset(teaching.dataset, args.data_root).to(device)
    teaching.check_compatible(data.shape, data.num_classes)
    config = parse_model(GTNConfig, teaching.info.get("config", {}), f"{args.teaching_set}: info.config")
    x, y = (data.test_x, data.test_y) if args.split == "test" else (data.val_x, data.val_y)
    accs = []
    for i in range(args.learners):
        learner, desc = make_learner(config.learner, data.shape, data.num_classes, derive_seed(args.seed, "eval", i))
        learner.to(device)
        params = teaching.train(learner, args.steps)
        acc, _ = evaluate(learner, params, x, y)
        accs.append(acc)
        print(f"learner {i} ({desc}): {args.split} accuracy {acc:.4f}")
    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
    steps = teaching.steps if args.steps is None else args.steps
    print(f"{args.split} accuracy after {steps} steps on the teaching set: {statistics.mean(accs):.4f} +- {std:.4f} "
          f"({len(accs)} learners)")
    return 0
