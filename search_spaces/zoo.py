"""The cell zoo: published cells shipped as architecture YAML files, each with its source.

NASNet-A, AmoebaNet-A, DARTS V1, DARTS V2, PC-DARTS and ENAS, as their authors published them
(``metadata.source`` in each file names the exact file and commit they were read from). They are
ordinary ``gtn-search/architecture`` files in ``search_spaces/cells/``: ``gtn-search space zoo NAME
--out cell.yaml`` writes one out for ``gtn-search train``, and :func:`load_zoo_cell` loads one in
Python, e.g. as the baseline a found cell must beat on your data.

Each file's ``search_space`` is the space the cell lives in here: the ``darts`` space for the
DARTS family (4 nodes, all of them concatenated, distinct inputs), the ENAS micro space (5 ops,
5 nodes, loose ends, repeated inputs), and for NASNet-A and AmoebaNet-A a space holding the ops
the cell uses (their original spaces have ops gtn-search does not implement). DARTS-style
genotypes convert with :func:`cell_from_darts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from gtn_search.errors import InvalidArchitectureError, unknown_name
from search_spaces.cell import Cell, node_name
from search_spaces.ops import DARTS_OP_NAMES
from search_spaces.space import CellSearchSpace
from search_spaces.yaml_format import ArchitectureRecord, load_architecture

#: The package folder holding the zoo's YAML files (one per cell, named ``<name>.yaml``).
ZOO_PACKAGE = "search_spaces"
ZOO_FOLDER = "cells"


def zoo_names() -> list[str]:
    """Names of the shipped cells, sorted."""
    folder = resources.files(ZOO_PACKAGE) / ZOO_FOLDER
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_zoo_cell(name: str) -> ArchitectureRecord:
    """The shipped cell ``name`` (see :func:`zoo_names`) with its space and metadata (source)."""
    names = zoo_names()
    if name not in names:
        raise unknown_name("zoo cell", name, names, where="gtn-search space zoo")
    with resources.as_file(resources.files(ZOO_PACKAGE) / ZOO_FOLDER / f"{name}.yaml") as path:
        return load_architecture(path)


def cell_from_darts(
    genotype: Sequence[tuple[str, int]], concat: Sequence[int], space: CellSearchSpace, where: str = "genotype"
) -> Cell:
    """A Cell from a DARTS-style genotype: ``(op, input)`` pairs, two per node, and its concat.

    Inputs 0 and 1 are the cell inputs (in0 = two cells back, in1 = previous cell), 2.. the
    intermediate nodes; DARTS op names are mapped to ours (:data:`~search_spaces.ops.DARTS_OP_NAMES`).
    ``concat`` must be exactly what the space's output rule selects, so the cell computes what its
    authors' code computed.
    """
    k = space.inputs_per_node
    if len(genotype) != k * space.num_nodes:
        raise InvalidArchitectureError(
            f"{where}: {len(genotype)} (op, input) pairs; space '{space.name}' needs {k} per node for "
            f"{space.num_nodes} nodes ({k * space.num_nodes})"
        )
    nodes: dict[str, Any] = {}
    for j in range(space.num_nodes):
        pairs = genotype[k * j : k * (j + 1)]
        nodes[node_name(2 + j)] = [[_darts_input(src, j, where), DARTS_OP_NAMES.get(op, op)] for op, src in pairs]
    outputs = [_darts_input(i, space.num_nodes, where) for i in concat]
    return space.cell_from_mapping({"nodes": nodes, "outputs": outputs}, where=where)


def _darts_input(index: Any, before: int, where: str) -> str:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2 + before:
        raise InvalidArchitectureError(f"{where}: input {index!r} must be an integer in [0, {2 + before})")
    return node_name(index)


__all__ = ["cell_from_darts", "load_zoo_cell", "zoo_names"]
