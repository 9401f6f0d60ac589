"""Argument helpers shared by subcommands: search spaces and blueprints by name or file, output paths."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gtn_search.configio import load_yaml, require_mapping, writable_folder
from gtn_search.errors import ConfigError


def add_space_argument(parser: argparse.ArgumentParser, default: str = "gtn-nas") -> None:
    parser.add_argument(
        "--space",
        default=default,
        metavar="NAME|FILE",
        help=f"a registered search space (see 'gtn-search plugins') or a YAML file defining one "
        f"(default: {default})",
    )


def add_blueprint_argument(parser: argparse.ArgumentParser, default: str | None = "mnist-search") -> None:
    parser.add_argument(
        "--blueprint",
        default=default,
        metavar="NAME|FILE",
        help="a blueprint preset (mnist-tiny, mnist-search, mnist-final, cifar10-search, cifar10-final) or a "
        f"YAML file with a 'blueprint' field (default: {default})",
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        metavar="auto|cpu|cuda|cuda:N|mps",
        help="where to train and score (default: the config's device, else auto: CUDA when available)",
    )


def device_argument(value: str | None) -> str | None:
    """The ``--device`` value, checked against this machine (one-line error if unusable); None if not given."""
    from gtn_search.device import check_device

    if value is not None:
        check_device(value, "--device")
    return value


def resolve_space(value: str):  # type: ignore[no-untyped-def]
    """A CellSearchSpace from a preset name or a YAML file (bare definition or 'search_space')."""
    from search_spaces.space import CellSearchSpace

    path = Path(value)
    if path.suffix in (".yaml", ".yml") or path.exists():
        data = require_mapping(load_yaml(path), str(path))
        if "search_space" in data:
            return CellSearchSpace.from_mapping(data["search_space"], where=f"{path}: search_space")
        return CellSearchSpace.from_mapping(dict(data), where=str(path))
    return CellSearchSpace.from_mapping(value, where="--space")


def resolve_blueprint(value: str):  # type: ignore[no-untyped-def]
    """A Blueprint from a preset name or a YAML file (blueprint file or one carrying 'blueprint')."""
    from search_spaces.blueprint import Blueprint, blueprint_preset

    path = Path(value)
    if path.suffix in (".yaml", ".yml") or path.exists():
        data = require_mapping(load_yaml(path), str(path))
        if "format" in data:
            from search_spaces.yaml_format import load_blueprint

            return load_blueprint(path)
        inner = data.get("blueprint", data)
        if not isinstance(inner, Mapping):
            inner = data
        return Blueprint.from_mapping(dict(inner), where=f"{path}: blueprint")
    return blueprint_preset(value, where="--blueprint")


def check_output(path: str | os.PathLike[str], flag: str, *, folder: bool = False,
                 suffixes: Sequence[str] = ()) -> Path:
    """Refuse, before any work starts, an output path that cannot be written; return it as a Path.

    ``folder=True``: the path is a folder the command fills (an existing file is refused);
    otherwise a file (an existing folder is refused) whose extension must be one of ``suffixes``
    (lower case, with the dot) when given. The nearest existing folder must accept a new file
    (:func:`~gtn_search.configio.writable_folder`).
    """
    p = Path(path)
    try:
        if folder and p.exists() and not p.is_dir():
            raise ConfigError(f"{flag} {p}: is a file, expected a folder; choose another path or remove the file")
        if not folder and p.is_dir():
            raise ConfigError(f"{flag} {p}: is a folder, expected a file path such as "
                              f"{p / ('out' + (suffixes[0] if suffixes else ''))}")
        if not folder and suffixes and p.suffix.lower() not in suffixes:
            what = "has no extension" if not p.suffix else f"has the unsupported extension '{p.suffix}'"
            raise ConfigError(f"{flag} {p}: {what}; write a path ending in {', '.join(suffixes)} "
                              f"(e.g. {p.with_suffix(suffixes[0])})")
        writable_folder(p if folder else p.parent)
    except NotADirectoryError as exc:
        raise ConfigError(f"{flag} {p}: {exc.filename} is a file, not a folder; choose another path") from None
    except OSError as exc:
        where = f"in {exc.filename} " if exc.filename else ""
        raise ConfigError(f"{flag} {p}: cannot create files {where}({exc.strerror or exc}); "
                          f"choose a writable location") from None
    return p
