"""An architecture: a normal cell and a reduction cell, with a stable content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from search_spaces.cell import Cell

CELL_TYPES: tuple[str, str] = ("normal", "reduce")


@dataclass(frozen=True, eq=True)
class Architecture:
    """The genotype a strategy proposes: ``normal`` and ``reduce`` cells (both canonical).

    Equal architectures have equal :attr:`hash` in every process and run: the hash is the
    SHA-256 of the canonical JSON form of both cells.
    """

    normal: Cell
    reduce: Cell

    @cached_property
    def hash(self) -> str:
        """SHA-256 hex digest of the canonical form (64 characters)."""
        text = '{"normal":' + self.normal.key + ',"reduce":' + self.reduce.key + "}"
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        """The first 12 hex characters of :attr:`hash`, for tables and file names."""
        return self.hash[:12]

    def cell(self, kind: str) -> Cell:
        """The cell of the given type, ``"normal"`` or ``"reduce"``."""
        if kind not in CELL_TYPES:
            raise ValueError(f"cell type must be one of {CELL_TYPES}, got {kind!r}")
        return self.normal if kind == "normal" else self.reduce

    def replace(self, kind: str, cell: Cell) -> Architecture:
        """A copy with one cell replaced."""
        return Architecture(cell, self.reduce) if kind == "normal" else Architecture(self.normal, cell)

    def to_mapping(self) -> dict[str, Any]:
        """Plain-data form: ``{normal: <cell>, reduce: <cell>}`` (see :meth:`Cell.to_mapping`)."""
        return {"normal": self.normal.to_mapping(), "reduce": self.reduce.to_mapping()}

    def describe(self) -> str:
        return f"normal: {self.normal.describe()}\nreduce: {self.reduce.describe()}"

    def __repr__(self) -> str:
        return f"Architecture({self.short_hash})"
