"""Named search spaces, registered in ``SEARCH_SPACES`` (third parties add theirs the same way).

A registered space is a factory taking keyword overrides (``num_nodes``, ``inputs_per_node``,
``output``, ``ops``, ``allow_repeated_inputs``) and returning a
:class:`~search_spaces.space.CellSearchSpace`.
"""

from __future__ import annotations

from typing import Any

from gtn_search.configio import parse_model
from gtn_search.registry import SEARCH_SPACES
from search_spaces.ops import PAPER_OPS
from search_spaces.space import CellSearchSpace

DARTS_OPS: tuple[str, ...] = (
    "identity",
    "max_pool_3x3",
    "avg_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


def _space(name: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> CellSearchSpace:
    data: dict[str, Any] = {"name": name, "inputs_per_node": 2, **defaults, **overrides}
    if isinstance(data["ops"], list):
        data["ops"] = tuple(data["ops"])
    return parse_model(CellSearchSpace, data, f"search space '{name}'")


@SEARCH_SPACES.register("gtn-nas")
def gtn_nas(**overrides: Any) -> CellSearchSpace:
    """The GTN-NAS paper's NASNet-style space: 11 ops, B=5, loose-end outputs, inputs chosen
    independently (a node may take the same input twice)."""
    return _space("gtn-nas", {"ops": PAPER_OPS, "num_nodes": 5, "output": "loose_ends"}, overrides)


@SEARCH_SPACES.register("gtn-nas-extended")
def gtn_nas_extended(**overrides: Any) -> CellSearchSpace:
    """The paper's space plus separable 3x3/5x5 and dilated 3x3 convolutions (14 ops)."""
    ops = PAPER_OPS + ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3")
    return _space("gtn-nas-extended", {"ops": ops, "num_nodes": 5, "output": "loose_ends"}, overrides)


@SEARCH_SPACES.register("darts")
def darts(**overrides: Any) -> CellSearchSpace:
    """DARTS-like space: 7 ops (separable/dilated convs, pools, skip), B=4, all nodes output,
    two distinct inputs per node (DARTS keeps the two strongest edges from different nodes)."""
    defaults = {"ops": DARTS_OPS, "num_nodes": 4, "output": "all", "allow_repeated_inputs": False}
    return _space("darts", defaults, overrides)


def get_space(name: str, where: str = "search_space", **overrides: Any) -> CellSearchSpace:
    """Instantiate a registered space by name with optional overrides."""
    factory = SEARCH_SPACES.get(name, where=where)
    return factory(**overrides)
