"""Relative paths in a config file are resolved from the file's folder, as docker compose does.

So a config means the same study, teaching set and data wherever it is run from. Paths given on
the command line (``--study``, ``--out``, ``--data-root``) stay relative to the current folder.
Studies made before this rule (whose relative paths were resolved from the current folder) stay
findable: when the path does not exist next to the config but does in the current folder, that one
is used, with a one-line notice. Evaluator options that are files are declared as
:data:`ConfigPath` in the evaluator's ``Config``, and are resolved the same way.
"""

from __future__ import annotations

import logging
import os
import typing
from typing import Annotated, Any

from pydantic import BaseModel

log = logging.getLogger("gtn_search.config")


class _ConfigPathMarker:
    """Marks a ``str`` option as a file or folder path (see :data:`ConfigPath`)."""


CONFIG_PATH = _ConfigPathMarker()
#: An option holding a path: relative values are resolved from the config file's folder.
ConfigPath = Annotated[str, CONFIG_PATH]


def resolve_path(value: str, base: str | os.PathLike[str] | None, what: str) -> str:
    """``value`` as an absolute path, relative ones taken from ``base`` (``None``: the current folder).

    If ``base / value`` does not exist but ``./value`` does (a file made when relative paths were
    resolved from the current folder), that one is returned and a notice is logged.
    """
    if os.path.isabs(value) or base is None:
        return os.path.abspath(value)
    here = os.path.abspath(os.path.join(base, value))
    legacy = os.path.abspath(value)
    if legacy != here and not os.path.exists(here) and os.path.exists(legacy):
        log.warning("note: %s %s: using %s (found in the current folder, not next to the config in %s; relative "
                    "paths in a config are resolved from its folder: move the file or write the path relative "
                    "to the config)", what, value, legacy, base)
        return legacy
    return here


def path_options(model: type[BaseModel]) -> list[str]:
    """The fields of ``model`` declared as :data:`ConfigPath` (optional ones too)."""
    def marked(metadata: Any) -> bool:
        return any(m is CONFIG_PATH for m in metadata)

    return [name for name, field in model.model_fields.items()
            if marked(field.metadata)
            or any(marked(getattr(arg, "__metadata__", ())) for arg in typing.get_args(field.annotation))]


def resolve_path_options(config: BaseModel, base: str | os.PathLike[str] | None, where: str) -> BaseModel:
    """``config`` with its :data:`ConfigPath` fields made absolute (see :func:`resolve_path`)."""
    update = {name: resolve_path(value, base, f"{where} '{name}'")
              for name in path_options(type(config)) if isinstance(value := getattr(config, name), str)}
    return config.model_copy(update=update) if update else config
