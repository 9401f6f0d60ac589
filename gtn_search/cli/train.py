"""``gtn-search train``: final training of an exported architecture on real data."""

from __future__ import annotations

import argparse
from pathlib import Path

from gtn_search.cli.common import add_blueprint_argument, add_device_argument, device_argument

#: recipe fields settable from flags (the rest through --config)
FLAG_FIELDS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "cutout", "augment", "device", "amp")


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train an exported architecture YAML to convergence; report test accuracy")
    t.add_argument("arch", help="architecture YAML (from 'gtn-search export' or 'space sample')")
    t.add_argument("--index", type=int, default=0, help="which architecture of a multi-architecture file")
    add_blueprint_argument(t, default=None)
    t.add_argument("--dataset", default=None, help="dataset (default: the one the architecture was scored on, "
                   "else mnist)")
    t.add_argument("--data-root", help="dataset folder")
    t.add_argument("--config", help="YAML with recipe fields (epochs, batch_size, lr, momentum, weight_decay, "
                   "grad_clip, augment, cutout, eval_batch, validate_every, device, amp, deterministic)")
    t.add_argument("--epochs", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--momentum", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--cutout", type=int, help="cutout square size in pixels (0: off)")
    t.add_argument("--augment", choices=["auto", "none", "crop_flip"])
    t.add_argument("--limit", type=int, default=None, help="only the first N images of each split (smoke runs)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="folder for checkpoint.pt and result.json (run again to resume)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_device_argument(t)
    t.add_argument("--amp", choices=["off", "bf16"], help="bfloat16 autocast for forward passes (default off)")
    t.add_argument("--deterministic", action="store_true",
                   help="on CUDA: deterministic algorithms (bit-identical reruns and resumes, slower)")
    t.add_argument("--no-progress", action="store_true")
    from gtn_search.cli.onnx_cli import add_train_argument as add_onnx_argument

    add_onnx_argument(t)
    t.set_defaults(func=cmd_train)


def _dataset_of(metadata: dict) -> str | None:
    evaluator = metadata.get("evaluator")
    if isinstance(evaluator, dict):
        options = evaluator.get("options") or {}
        if isinstance(options, dict) and isinstance(options.get("dataset"), str):
            return options["dataset"]
    return metadata.get("dataset") if isinstance(metadata.get("dataset"), str) else None


def cmd_train(args: argparse.Namespace) -> int:
    from gtn_search.cli.common import check_output, resolve_blueprint
    from gtn_search.cli.gtn import _threads
    from gtn_search.configio import load_yaml, parse_model, require_mapping
    from gtn_search.data import load_dataset
    from gtn_search.errors import ConfigError
    from gtn_search.final_train import TrainConfig, train_final
    from search_spaces.yaml_format import load_architectures

    check_output(args.out, "--out", folder=True)
    if args.onnx:
        from gtn_search.cli.onnx_cli import check_onnx_argument

        check_onnx_argument(args.onnx)
    _threads(args.threads)
    device_argument(args.device)
    records = load_architectures(args.arch)
    if not 0 <= args.index < len(records):
        raise ConfigError(f"{args.arch}: --index {args.index} out of range (the file has {len(records)} "
                          f"architecture(s))")
    record = records[args.index]
    if args.blueprint:
        blueprint = resolve_blueprint(args.blueprint)
    elif record.blueprint is not None:
        blueprint = record.blueprint
    else:
        raise ConfigError(f"{args.arch}: the file records no blueprint; pass --blueprint (e.g. mnist-final)")
    recipe: dict = {}
    if args.config:
        recipe.update(require_mapping(load_yaml(args.config), args.config))
    recipe.update({k: getattr(args, k) for k in FLAG_FIELDS if getattr(args, k) is not None})
    recipe.update({"deterministic": True} if args.deterministic else {})
    config = parse_model(TrainConfig, recipe, args.config or "training flags")
    dataset = args.dataset or _dataset_of(record.metadata) or "mnist"
    if args.limit is not None and args.limit < 10:
        raise ConfigError(f"--limit must be >= 10, got {args.limit}")
    data = load_dataset(dataset, args.data_root, limit=args.limit)
    print(f"{data.summary()}\ntraining {record.architecture.hash[:12]} ({args.arch}) for {config.epochs:g} epochs",
          flush=True)
    result = train_final(record.architecture, blueprint, data, config, Path(args.out), args.seed,
                         progress=not args.no_progress)
    print(f"test accuracy {result.test_accuracy:.4f} (validation {result.val_accuracy:.4f}); "
          f"{result.params:,} params, {result.forward_flops / 1e6:.1f} MFLOPs per image; "
          f"{result.steps} steps in {result.seconds:.0f} s; saved {Path(args.out) / 'result.json'}")
    if args.onnx:
        from gtn_search.cli.onnx_cli import export_trained

        print(export_trained(record.architecture, Path(args.out), Path(args.onnx), data, result.test_accuracy))
    return 0
