"""What a candidate IS: cell genotypes on networkx, the op registry, spaces, YAML, the expander.

Importing this package is light; torch is imported by :mod:`search_spaces.ops` and
:mod:`search_spaces.network` only.
"""

from __future__ import annotations

from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.cell import Cell
from search_spaces.space import CellSearchSpace

__all__ = ["Architecture", "Blueprint", "Cell", "CellSearchSpace"]
