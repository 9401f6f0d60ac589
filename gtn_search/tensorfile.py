"""Safe, versioned, atomic tensor files (checkpoints, teaching sets).

Files are written with ``torch.save`` to a temporary file that is fsynced and renamed, so a crash
never leaves a half-written file under the real name. They are read with
``torch.load(weights_only=True)`` only: a file that would need arbitrary unpickling (for example
one crafted to run code) is refused. Every problem is a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gtn_search.device import to_cpu
from gtn_search.errors import CheckpointError


def save_tensor_file(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) atomically, every tensor from the CPU
    (so the file loads on any machine, whatever device the tensors were on)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(to_cpu(dict(payload)), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)
    return p


def _read(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p}: is a folder, expected a {what} file; give the file inside it (*.pt)")
    if not p.is_file():
        raise CheckpointError(f"{p}: no such {what} file; check the path")
    if not zipfile.is_zipfile(p):
        raise CheckpointError(f"{p}: corrupt or truncated {what} (not a complete torch file); re-create it")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"{p}: refused to load: not a plain tensor file ({first[:120]}); gtn-search only reads "
            f"files it wrote, with torch.load(weights_only=True)"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(
            f"{p}: corrupt or truncated {what} ({type(exc).__name__}: {str(exc)[:120]}); re-create it"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{p}: not a gtn-search {what} (top level is {type(data).__name__})")
    return data


def file_format(path: str | os.PathLike[str]) -> str:
    """The ``format`` field of a gtn-search tensor file (after the same safety checks as loading)."""
    return str(_read(path, "tensor file").get("format"))


def load_tensor_file(path: str | os.PathLike[str], expected_format: str, max_version: int, what: str) -> dict[str, Any]:
    """Read a file written by :func:`save_tensor_file` and check its format and version."""
    p = Path(path)
    data = _read(p, what)
    fmt, version = data.get("format"), data.get("version")
    if fmt != expected_format:
        raise CheckpointError(f"{p}: not a gtn-search {what} (format {fmt!r}, expected {expected_format!r})")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{p}: {what} has an invalid version {version!r}")
    if version > max_version:
        raise CheckpointError(
            f"{p}: {what} version {version} was written by a newer gtn-search; this one reads up to "
            f"version {max_version}: upgrade gtn-search"
        )
    return data


def require_keys(data: Mapping[str, Any], keys: tuple[str, ...], path: str | os.PathLike[str], what: str) -> None:
    """Raise CheckpointError if any of ``keys`` is missing."""
    missing = [k for k in keys if k not in data]
    if missing:
        raise CheckpointError(f"{path}: {what} is missing field(s) {', '.join(missing)}; it is incomplete or damaged")
