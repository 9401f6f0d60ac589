"""Versioned YAML files for architectures, architecture collections and blueprints.

Every file starts with ``format`` and ``version`` so a reader can refuse what it does not know::

    format: gtn-search/architecture
    version: 1
    search_space: {name: gtn-nas, ops: [...], num_nodes: 5, inputs_per_node: 2, output: loose_ends}
    blueprint: {input_shape: [1, 28, 28], channels: 16, ...}     # optional
    hash: 3f2a...                                                # informative, rewritten on save
    architecture:
      normal:
        nodes:
          n0: [[in0, conv_3x3], [in1, identity]]
          ...
        outputs: [n3, n4]                                        # optional, validated
      reduce: {...}
    metadata: {score: 0.91, evaluator: gtn, study: runs/x.db}    # optional, free-form

``gtn-search/architectures`` holds a list under ``architectures`` (each entry: ``architecture``,
``hash``, optional ``metadata``) with one shared search space and blueprint;
``gtn-search/blueprint`` holds only ``blueprint``. Files are read with ``yaml.safe_load`` and
written atomically; a dump of a loaded file is byte-identical to the file it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtn_search.configio import dump_yaml, load_yaml, require_mapping, write_text_atomic
from gtn_search.errors import ConfigError, did_you_mean
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.space import CellSearchSpace

FORMAT_ARCHITECTURE = "gtn-search/architecture"
FORMAT_ARCHITECTURES = "gtn-search/architectures"
FORMAT_BLUEPRINT = "gtn-search/blueprint"
FORMAT_VERSION = 1
_KEYS = {
    FORMAT_ARCHITECTURE: ("format", "version", "search_space", "blueprint", "hash", "architecture", "metadata"),
    FORMAT_ARCHITECTURES: ("format", "version", "search_space", "blueprint", "architectures"),
    FORMAT_BLUEPRINT: ("format", "version", "blueprint"),
}


@dataclass(frozen=True)
class ArchitectureRecord:
    """An architecture with the space it belongs to, its blueprint and free-form metadata."""

    architecture: Architecture
    space: CellSearchSpace
    blueprint: Blueprint | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# -- writing -----------------------------------------------------------------------------------
def _header(fmt: str, space: CellSearchSpace | None, blueprint: Blueprint | None) -> dict[str, Any]:
    data: dict[str, Any] = {"format": fmt, "version": FORMAT_VERSION}
    if space is not None:
        data["search_space"] = space.to_mapping()
    if blueprint is not None:
        data["blueprint"] = blueprint.to_mapping()
    return data


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    meta = dict(metadata or {})
    try:
        dump_yaml(meta)
    except Exception as exc:  # yaml.representer.RepresenterError and friends  # noqa: BLE001
        raise ConfigError(f"metadata must be plain data (numbers, strings, lists, mappings): {exc}") from None
    return meta


def dump_architecture(record: ArchitectureRecord) -> str:
    """The YAML text of one architecture file."""
    record.space.validate_architecture(record.architecture)
    data = _header(FORMAT_ARCHITECTURE, record.space, record.blueprint)
    data["hash"] = record.architecture.hash
    data["architecture"] = record.architecture.to_mapping()
    meta = _check_metadata(record.metadata)
    if meta:
        data["metadata"] = meta
    return dump_yaml(data)


def save_architecture(path: str | os.PathLike[str], record: ArchitectureRecord) -> Path:
    """Write one architecture file atomically."""
    return write_text_atomic(path, dump_architecture(record))


def dump_architectures(records: Sequence[ArchitectureRecord]) -> str:
    """The YAML text of a collection; all records must share one space and blueprint."""
    if not records:
        raise ConfigError("an architecture collection needs at least one architecture")
    space, blueprint = records[0].space, records[0].blueprint
    for r in records[1:]:
        if r.space != space or r.blueprint != blueprint:
            raise ConfigError("all architectures in a collection must share one search space and blueprint")
    data = _header(FORMAT_ARCHITECTURES, space, blueprint)
    entries = []
    for r in records:
        space.validate_architecture(r.architecture)
        entry: dict[str, Any] = {"hash": r.architecture.hash, "architecture": r.architecture.to_mapping()}
        meta = _check_metadata(r.metadata)
        if meta:
            entry["metadata"] = meta
        entries.append(entry)
    data["architectures"] = entries
    return dump_yaml(data)


def save_architectures(path: str | os.PathLike[str], records: Sequence[ArchitectureRecord]) -> Path:
    """Write a collection file atomically."""
    return write_text_atomic(path, dump_architectures(records))


def dump_blueprint(blueprint: Blueprint) -> str:
    """The YAML text of a blueprint file."""
    return dump_yaml(_header(FORMAT_BLUEPRINT, None, blueprint))


# -- reading -----------------------------------------------------------------------------------
def read_document(path: str | os.PathLike[str]) -> tuple[str, Mapping[str, Any]]:
    """Load a gtn-search YAML file and check its format and version; return (format, data)."""
    where = str(path)
    data = require_mapping(load_yaml(path), where, "a gtn-search YAML file")
    fmt = data.get("format")
    if not isinstance(fmt, str) or fmt not in _KEYS:
        shown = "missing" if fmt is None else repr(fmt)
        raise ConfigError(
            f"{where}: field 'format' is {shown}; expected one of {', '.join(_KEYS)} "
            f"(the first lines of a gtn-search file are 'format: ...' and 'version: {FORMAT_VERSION}')"
        )
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{where}: field 'version' must be an integer (this gtn-search writes {FORMAT_VERSION}), got {version!r}")
    if version > FORMAT_VERSION:
        raise ConfigError(
            f"{where}: format version {version} was written by a newer gtn-search; this one reads "
            f"up to version {FORMAT_VERSION}: upgrade gtn-search"
        )
    if version < 1:
        raise ConfigError(f"{where}: field 'version' must be >= 1, got {version}")
    allowed = _KEYS[fmt]
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown field '{key}'{did_you_mean(key, allowed)}; a {fmt} file has "
                f"{', '.join(allowed)}"
            )
    return fmt, data


def _space_and_blueprint(data: Mapping[str, Any], where: str) -> tuple[CellSearchSpace, Blueprint | None]:
    if "search_space" not in data:
        raise ConfigError(
            f"{where}: field 'search_space' is missing; name the space the cells belong to, e.g. "
            f"'search_space: gtn-nas' (see 'gtn-search space info')"
        )
    space = CellSearchSpace.from_mapping(data["search_space"], where=f"{where}: search_space")
    bp = data.get("blueprint")
    blueprint = None if bp is None else Blueprint.from_mapping(bp, where=f"{where}: blueprint")
    return space, blueprint


def _metadata(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: field 'metadata' must be a mapping, got {type(value).__name__}")
    return dict(value)


def _record(data: Mapping[str, Any], space: CellSearchSpace, blueprint: Blueprint | None, where: str) -> ArchitectureRecord:
    if "architecture" not in data:
        raise ConfigError(f"{where}: field 'architecture' is missing (the 'normal' and 'reduce' cells)")
    arch = space.architecture_from_mapping(data["architecture"], where=f"{where}: architecture")
    return ArchitectureRecord(arch, space, blueprint, _metadata(data.get("metadata"), where))


def load_architecture(path: str | os.PathLike[str]) -> ArchitectureRecord:
    """Read and validate one architecture file (or a collection holding exactly one)."""
    records = load_architectures(path)
    if len(records) != 1:
        raise ConfigError(f"{path}: holds {len(records)} architectures; expected exactly one here")
    return records[0]


def load_architectures(path: str | os.PathLike[str]) -> list[ArchitectureRecord]:
    """Read and validate an architecture file or collection; returns every record."""
    where = str(path)
    fmt, data = read_document(path)
    if fmt == FORMAT_BLUEPRINT:
        raise ConfigError(f"{where}: is a blueprint file; expected an architecture file")
    space, blueprint = _space_and_blueprint(data, where)
    if fmt == FORMAT_ARCHITECTURE:
        return [_record(data, space, blueprint, where)]
    entries = data.get("architectures")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: field 'architectures' must be a non-empty list")
    records = []
    for i, entry in enumerate(entries):
        here = f"{where}: architectures[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{here}: expected a mapping with 'architecture', got {type(entry).__name__}")
        extra = [k for k in entry if k not in ("architecture", "hash", "metadata")]
        if extra:
            raise ConfigError(f"{here}: unknown field '{extra[0]}'; entries have architecture, hash, metadata")
        records.append(_record(entry, space, blueprint, here))
    return records


def load_blueprint(path: str | os.PathLike[str]) -> Blueprint:
    """Read a blueprint from a blueprint file or from an architecture file that carries one."""
    where = str(path)
    _fmt, data = read_document(path)
    if "blueprint" not in data:
        raise ConfigError(f"{where}: has no 'blueprint' field")
    return Blueprint.from_mapping(data["blueprint"], where=f"{where}: blueprint")


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate_file` found in a valid file."""

    format: str
    architectures: int
    blueprint: Blueprint | None
    space: CellSearchSpace | None


def validate_file(path: str | os.PathLike[str]) -> ValidationReport:
    """Fully validate any gtn-search YAML file; raise GTNSearchError on the first problem."""
    fmt, _ = read_document(path)
    if fmt == FORMAT_BLUEPRINT:
        return ValidationReport(fmt, 0, load_blueprint(path), None)
    records = load_architectures(path)
    return ValidationReport(fmt, len(records), records[0].blueprint, records[0].space)


__all__ = [
    "ArchitectureRecord",
    "ValidationReport",
    "dump_architecture",
    "dump_architectures",
    "dump_blueprint",
    "load_architecture",
    "load_architectures",
    "load_blueprint",
    "save_architecture",
    "save_architectures",
    "validate_file",
]
