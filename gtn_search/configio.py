"""Reading YAML files and validating configuration mappings, with errors that name file and field.

``load_yaml`` wraps ``yaml.safe_load`` (never anything else) and turns every failure into a
:class:`~gtn_search.errors.ConfigError` that names the file and, for syntax errors, the line.
``parse_model`` validates a mapping against a pydantic model and reports the first problem as
``<where>: field 'a.b': <what is wrong>`` with a 'did you mean' for misspelt keys.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gtn_search.errors import ConfigError, did_you_mean

M = TypeVar("M", bound=BaseModel)

#: Largest file read as configuration; anything bigger is surely not a config file.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


class StrictModel(BaseModel):
    """Base for configuration models: immutable, unknown keys are errors, no type coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Read one YAML document with ``yaml.safe_load``; every failure is a ConfigError."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, expected a YAML file")
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: {size} bytes is too large for a YAML config (limit 16 MiB)")
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file (invalid UTF-8); expected YAML") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_yaml_text(text, str(p))


def parse_yaml_text(text: str, where: str) -> Any:
    """Parse YAML text with ``yaml.safe_load``; syntax errors name ``where`` and the line."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "malformed YAML").split())
        raise ConfigError(f"{where}:{line} invalid YAML: {problem}") from None
    except (yaml.YAMLError, RecursionError, ValueError, OverflowError) as exc:
        detail = " ".join(str(exc).split())  # one line, whatever the YAML library wrote
        raise ConfigError(f"{where}: invalid YAML: {type(exc).__name__}: {detail}") from None


class FlowList(list):  # type: ignore[type-arg]
    """A list written on one line (``[[in0, conv_3x3], [in1, identity]]``) by :func:`dump_yaml`."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes :class:`FlowList` in flow style; reading always uses safe_load."""


_Dumper.add_representer(
    FlowList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def dump_yaml(data: Any) -> str:
    """Serialise plain data as YAML (keys in given order, short scalar lists inline)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)
    return p


def writable_folder(path: str | os.PathLike[str]) -> Path:
    """The nearest existing folder at or above ``path``, checked to accept a new file.

    Raises NotADirectoryError if that nearest existing path is a file, else the OSError (naming the
    folder) of creating an anonymous temporary file in it: the only check that also holds for root
    (a read-only mount, /proc, /sys). Nothing is left behind.
    """
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(20, "not a folder", str(folder))
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(folder)) from None
    return folder


@contextmanager
def errors_name(source: str | os.PathLike[str]) -> Iterator[None]:
    """Prefix the config file ``source`` to ConfigErrors raised inside that do not start with it.

    For the settings of a config file that are only realised later (a search's space, blueprint,
    strategy and evaluator options; a GTN's learner), whose messages name the field but not the file.
    """
    try:
        yield
    except ConfigError as exc:
        if str(exc).startswith(f"{source}:"):
            raise
        raise type(exc)(f"{source}: {exc}").with_traceback(exc.__traceback__) from None


def require_mapping(data: Any, where: str, what: str = "a mapping") -> Mapping[str, Any]:
    """Check that parsed YAML is a mapping with string keys."""
    if not isinstance(data, Mapping):
        got = "empty file" if data is None else type(data).__name__
        raise ConfigError(f"{where}: expected {what} (key: value lines), got {got}")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: keys must be strings, got {key!r}")
    return data


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def parse_model(model: type[M], data: Any, where: str) -> M:
    """Validate ``data`` against ``model``; raise ConfigError naming the field on failure."""
    if isinstance(model, type) and issubclass(model, BaseModel) and data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {model.__name__} fields, "
                          f"got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, where)) from None
    except (RecursionError, OverflowError) as exc:
        raise ConfigError(f"{where}: value too deeply nested or too large ({exc})") from None


def format_validation_error(exc: ValidationError, model: type[BaseModel], where: str) -> str:
    """One line: the first error's field path, what is wrong, and a suggestion."""
    err = exc.errors()[0]
    path = _field_path(tuple(err.get("loc", ())))
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        known = list(_fields_at(model, tuple(err["loc"][:-1])))
        hint = did_you_mean(str(err["loc"][-1]), known)
        return (f"{where}: unknown field '{path}'{hint}; allowed fields: "
                f"{', '.join(known)}")
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) else f" (got {_short(value)})"
    if isinstance(value, str):
        shown += _number_as_text_hint(value, integer=kind in ("int_type", "int_parsing"),
                                      number=kind in ("float_type", "float_parsing", "int_type", "int_parsing"))
    more = f" [+{exc.error_count() - 1} more problems]" if exc.error_count() > 1 else ""
    field = f"field '{path}': " if path else ""
    return f"{where}: {field}{msg}{shown}{more}"


def _number_as_text_hint(text: str, integer: bool, number: bool) -> str:
    """How to write a number YAML read as text: unquoted, or (``1e9``) with a dot and a signed exponent."""
    try:
        value = float(text)
    except ValueError:
        return ""
    if not number or not math.isfinite(value):
        return ""
    quoted = isinstance(yaml.safe_load(text), (int, float))  # only the quotes made it text
    if integer:
        if not value.is_integer():
            return "; write a whole number"
        return f"; YAML reads {text!r} as text: write {int(value)}{' without quotes' if quoted else ''}"
    if quoted:
        return f"; YAML reads {text!r} as text: write {text.strip()} without quotes"
    return f"; YAML reads {text!r} as text: write it with a dot and a signed exponent, e.g. {value:.3e}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []

