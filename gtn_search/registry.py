"""Plugin registries: built-ins merged with Python entry points, refusing name clashes.

Four registries exist, one per kind of plugin. Each knows the module that holds its built-ins
(imported on first use) and the entry-point group third-party packages publish under::

    [project.entry-points."gtn_search.strategies"]
    my-strategy = "my_package.module:MyStrategy"

A name may be registered once. A clash between two built-ins, a built-in and an entry point, or two
entry points is an error that names both sources, so a plugin can never silently shadow another.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Generic, TypeVar

from gtn_search.errors import ConfigError, unknown_name

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plugin: its name, the object, where it came from and a one-line summary."""

    name: str
    obj: T
    source: str
    description: str


def first_doc_line(obj: object) -> str:
    """The first line of an object's docstring, used as its one-line description."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


class Registry(Generic[T]):
    """A name -> plugin mapping for one kind of plugin (strategies, evaluators, ops, spaces)."""

    def __init__(self, kind: str, group: str, builtins_module: str) -> None:
        self.kind = kind
        self.group = group
        self._builtins_module = builtins_module
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False
        self._loading = False

    # -- registration -----------------------------------------------------------------------
    def register(
        self, name: str | None = None, *, description: str | None = None
    ) -> Callable[[T], T]:
        """Decorator: ``@STRATEGIES.register("my-strategy")`` registers the decorated object."""

        def decorator(obj: T) -> T:
            self.add(name or getattr(obj, "__name__", str(obj)), obj, description=description)
            return obj

        return decorator

    def add(
        self, name: str, obj: T, *, description: str | None = None, source: str | None = None
    ) -> None:
        """Register ``obj`` under ``name``; raise :class:`ConfigError` if the name is taken."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{self.kind} names must be non-empty strings, got {name!r}")
        src = source or f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"
        if name in self._entries:
            other = self._entries[name]
            if other.obj is obj:
                return
            raise ConfigError(
                f"{self.kind} name '{name}' is registered twice: by {other.source} and by {src}; "
                f"rename one of them"
            )
        self._entries[name] = Entry(name, obj, src, description or first_doc_line(obj))

    def unregister(self, name: str) -> None:
        """Remove a registration (used by tests and by plugins that replace themselves)."""
        self._entries.pop(name, None)

    # -- lookup -----------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            importlib.import_module(self._builtins_module)
            for ep in metadata.entry_points(group=self.group):
                try:
                    obj = ep.load()
                except Exception as exc:  # a broken plugin must not hide the others
                    raise ConfigError(
                        f"the {self.kind} plugin '{ep.name}' ({ep.value}, entry-point group "
                        f"{self.group}) failed to import: {type(exc).__name__}: {exc}"
                    ) from exc
                self.add(ep.name, obj, source=f"entry point {ep.value}")
            self._loaded = True
        finally:
            self._loading = False

    def get(self, name: str, where: str = "") -> T:
        """Return the plugin called ``name``; unknown names raise with a 'did you mean'."""
        self._ensure_loaded()
        try:
            return self._entries[name].obj
        except (KeyError, TypeError):
            raise unknown_name(self.kind, str(name), self._entries, where) from None

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._ensure_loaded()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """All registrations (name, object, source, description), sorted by name."""
        self._ensure_loaded()
        return [self._entries[n] for n in sorted(self._entries)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)


OPS: Registry = Registry("op", "gtn_search.ops", "search_spaces.ops")
SEARCH_SPACES: Registry = Registry("search space", "gtn_search.search_spaces", "search_spaces.presets")
STRATEGIES: Registry = Registry("strategy", "gtn_search.strategies", "strategies")
EVALUATORS: Registry = Registry("evaluator", "gtn_search.evaluators", "gtn_search.evaluators")

ALL_REGISTRIES: dict[str, Registry] = {
    "ops": OPS,
    "search_spaces": SEARCH_SPACES,
    "strategies": STRATEGIES,
    "evaluators": EVALUATORS,
}
