"""``--onnx`` for ``gtn-search export`` and ``gtn-search train``: write a network as ONNX, checked in onnxruntime.

``gtn-search export SOURCE --onnx OUT.onnx``: SOURCE is an architecture YAML (``.yaml``/``.yml``; the
network gets seeded initial weights, ``--seed``) or a study (its best trial, or ``--trial N``). The
blueprint is ``--blueprint``, else the one the YAML records (else ``mnist-search``), or the study's
search blueprint. ``gtn-search train ARCH --onnx OUT.onnx`` exports the trained weights after the
final training (read back from its checkpoint) and checks them on the first test images.
The export itself is :mod:`gtn_search.onnx_export`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gtn_search.errors import ConfigError

#: Suffix an ``--onnx`` path must have.
ONNX_SUFFIXES = (".onnx",)
#: Blueprint of an architecture YAML that records none.
DEFAULT_BLUEPRINT = "mnist-search"


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--onnx`` options of ``gtn-search export``."""
    parser.add_argument("--onnx", metavar="OUT.onnx",
                        help="write one network as ONNX instead of YAML files, checked in onnxruntime against "
                        "PyTorch (max |diff| <= 1e-4); the positional argument may then also be an architecture "
                        "YAML, whose recorded blueprint (else mnist-search) is used unless --blueprint "
                        "(needs: pip install 'gtn-search[export]')")
    parser.add_argument("--trial", type=int, help="with --onnx and a study: export this trial (default: the best)")
    parser.add_argument("--index", type=int, default=0,
                        help="with --onnx and a multi-architecture YAML: which architecture (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="with --onnx: seed of the initial weights (default 0)")


def add_train_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--onnx`` option of ``gtn-search train``."""
    parser.add_argument("--onnx", metavar="OUT.onnx",
                        help="after training, write the trained network as ONNX, checked in onnxruntime against "
                        "PyTorch on test images (needs: pip install 'gtn-search[export]')")


def check_onnx_argument(value: str) -> Path:
    """Refuse a bad ``--onnx`` path or missing export packages before any work; the path."""
    from gtn_search.cli.common import check_output
    from gtn_search.onnx_export import require_export_packages

    path = check_output(value, "--onnx", suffixes=ONNX_SUFFIXES)
    require_export_packages()
    return path


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """``gtn-search export SOURCE --onnx OUT.onnx``."""
    from gtn_search.onnx_export import export_onnx
    from search_spaces.network import build

    path = check_onnx_argument(args.onnx)
    if getattr(args, "out", None):
        raise ConfigError("--onnx writes one ONNX model and --out a folder of YAML files: give one of them")
    if getattr(args, "pareto", False):
        raise ConfigError("--pareto exports YAML files of the Pareto front; --onnx exports one network: pick a "
                          "trial of the front with --trial N")
    source = Path(args.study)
    if source.suffix.lower() in (".yaml", ".yml"):
        arch, blueprint, meta = _from_yaml(source, args)
    else:
        arch, blueprint, meta = _from_study(source, args)
    module = build(arch, blueprint, seed=args.seed)
    meta.update({"architecture_hash": arch.hash, "blueprint": blueprint.to_mapping(), "weights": "initial",
                 "init_seed": args.seed})
    print(export_onnx(module, path, blueprint.input_shape, metadata=meta).summary())
    return 0


def _blueprint(args: argparse.Namespace, recorded: Any):  # type: ignore[no-untyped-def]
    from gtn_search.cli.common import resolve_blueprint

    return resolve_blueprint(args.blueprint) if args.blueprint else recorded


def _from_yaml(source: Path, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from search_spaces.blueprint import blueprint_preset
    from search_spaces.yaml_format import load_architectures

    if args.trial is not None:
        raise ConfigError(f"--trial {args.trial}: applies to a study; {source} is an architecture YAML (use --index)")
    records = load_architectures(source)
    if not 0 <= args.index < len(records):
        raise ConfigError(f"{source}: --index {args.index} out of range (the file has {len(records)} "
                          f"architecture(s))")
    record = records[args.index]
    recorded = record.blueprint if record.blueprint is not None else blueprint_preset(DEFAULT_BLUEPRINT)
    return record.architecture, _blueprint(args, recorded), {"source": str(source)}


def _from_study(source: Path, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from gtn_search.report import study_config
    from gtn_search.runner import resolve_blueprint
    from gtn_search.storage import Study
    from search_spaces.space import CellSearchSpace

    if args.index:
        raise ConfigError(f"--index {args.index}: applies to a multi-architecture YAML; for a study use --trial")
    study = Study(source, create=False)
    try:
        cfg = study_config(study)
        if args.trial is not None:
            trial = study.trial(args.trial)
            if trial is None:
                raise ConfigError(f"study {study.path} has no trial {args.trial}")
        else:
            best = study.best(1)
            if not best:
                raise ConfigError(f"study {study.path} has no successful trials to export yet")
            trial = best[0]
        space = CellSearchSpace.from_mapping(cfg["space"], where=f"study {study.path}: space")
        arch = space.architecture_from_mapping(trial.genotype, where=f"study {study.path}: trial {trial.number}")
        blueprint = _blueprint(args, None) if args.blueprint else resolve_blueprint(cfg["blueprint"])
        meta = {"source": str(study.path), "trial": trial.number, "score": trial.score}
    finally:
        study.close()
    return arch, blueprint, meta


def load_trained_network(arch: Any, out_dir: Path):  # type: ignore[no-untyped-def]
    """``(network, blueprint)`` as :func:`~gtn_search.final_train.train_final` left them in ``out_dir``.

    The blueprint comes from the run's ``result.json``, the weights from its checkpoint (written after
    the last epoch); both files are validated, a bad one is one clear error.
    """
    import json

    from gtn_search.final_train import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
    from gtn_search.tensorfile import load_tensor_file, require_keys
    from search_spaces.blueprint import Blueprint
    from search_spaces.network import build

    result_file, ckpt = out_dir / "result.json", out_dir / "checkpoint.pt"
    try:
        mapping = json.loads(result_file.read_text(encoding="utf-8"))["blueprint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{result_file}: cannot read the trained blueprint ({exc}); train the run first") from None
    blueprint = Blueprint.from_mapping(mapping, where=f"{result_file}: blueprint")
    state = load_tensor_file(ckpt, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "final-training checkpoint")
    require_keys(state, ("identity", "model"), ckpt, "final-training checkpoint")
    if json.loads(state["identity"]).get("hash") != arch.hash:
        raise ConfigError(f"{ckpt}: this checkpoint is for another architecture than {arch.short_hash}")
    module = build(arch, blueprint)
    module.load_state_dict(state["model"])
    return module, blueprint


def export_trained(arch: Any, out_dir: Path, path: Path, data: Any, test_accuracy: float | None = None) -> str:
    """Export the network trained into ``out_dir`` (:func:`load_trained_network`); the summary line.

    ``data`` (the training's ``DatasetTensors``): its normalisation is recorded in the model's metadata
    and the check runs on its first :data:`~gtn_search.onnx_export.CHECK_BATCH` test images.
    """
    from gtn_search.onnx_export import CHECK_BATCH, export_onnx

    module, blueprint = load_trained_network(arch, out_dir)
    meta: dict[str, Any] = {"architecture_hash": arch.hash, "blueprint": blueprint.to_mapping(), "weights": "trained",
                            "dataset": data.name, "input_mean": list(data.mean), "input_std": list(data.std),
                            "source": str(out_dir)}
    if test_accuracy is not None:
        meta["test_accuracy"] = test_accuracy
    exported = export_onnx(module, path, blueprint.input_shape, metadata=meta, inputs=data.test_x[:CHECK_BATCH])
    return exported.summary()
