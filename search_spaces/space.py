"""The cell search space: which cells exist, and how to sample, mutate, encode and count them.

A :class:`CellSearchSpace` is plain configuration (op names, number of intermediate nodes B,
inputs per node k, output rule, whether a node may take the same input twice) plus the operations
every strategy needs:

* :meth:`sample` - a random architecture from a seeded ``numpy`` generator (uniform ops; inputs
  drawn independently like the paper's controller, or a uniform set of distinct inputs);
* :meth:`mutate` - the mutations of regularized evolution (op, input rewiring, identity), which
  always return a valid architecture;
* :meth:`encode` / :meth:`decode` - a flat vector of categorical choices (one entry per choice,
  cardinalities in :meth:`cardinalities`), the representation Nevergrad optimises; every vector
  decodes to a valid architecture;
* :meth:`size` - the exact number of genotypes (before canonical de-duplication).

Strategies only ever touch this object and numpy generators, never torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from gtn_search.configio import StrictModel, parse_model
from gtn_search.errors import ConfigError, InvalidArchitectureError
from gtn_search.registry import OPS
from search_spaces.architecture import CELL_TYPES, Architecture
from search_spaces.cell import Cell, NodeSpec

MutationKind = Literal["op", "input", "identity"]
MUTATIONS: tuple[str, ...] = ("op", "input", "identity")


class CellSearchSpace(StrictModel):
    """A NASNet/NAO-style cell space: B nodes with k inputs each, an op on every input edge.

    ``allow_repeated_inputs`` (default true, as in NASNet, AmoebaNet, ENAS, NAO and GTN-NAS) lets
    a node take the same earlier node as two of its inputs; false restricts the space to distinct
    inputs (as DARTS derives its cells).
    """

    name: str = "custom"
    ops: tuple[str, ...] = Field(min_length=1)
    num_nodes: int = Field(default=5, ge=1, le=16)
    inputs_per_node: int = Field(default=2, ge=1, le=2)
    output: Literal["loose_ends", "all"] = "loose_ends"
    allow_repeated_inputs: bool = True

    @field_validator("ops")
    @classmethod
    def _known_unique_ops(cls, ops: tuple[str, ...]) -> tuple[str, ...]:
        seen = set()
        for op in ops:
            if op in seen:
                raise ValueError(f"op '{op}' is listed twice")
            seen.add(op)
            OPS.get(op, where="search_space.ops")
        return ops

    @classmethod
    def from_mapping(cls, data: Any, where: str = "search_space") -> CellSearchSpace:
        """Build from plain data (e.g. YAML); a string or ``{name: preset, ...}`` uses a preset."""
        from search_spaces.presets import get_space

        if isinstance(data, str):
            return get_space(data, where=where)
        if isinstance(data, Mapping) and "ops" not in data and "name" in data:
            overrides = {k: v for k, v in data.items() if k != "name"}
            return get_space(str(data["name"]), where=where, **overrides)
        if isinstance(data, Mapping) and isinstance(data.get("ops"), list):
            data = {**data, "ops": tuple(data["ops"])}
        return parse_model(cls, data, where)

    def to_mapping(self) -> dict[str, Any]:
        """Plain-data form for YAML (the full definition, not only the preset name).

        ``allow_repeated_inputs`` is written only when false, so files and study keys written
        before the option existed (when it did not apply) read and re-write unchanged.
        """
        data: dict[str, Any] = {
            "name": self.name,
            "ops": list(self.ops),
            "num_nodes": self.num_nodes,
            "inputs_per_node": self.inputs_per_node,
            "output": self.output,
        }
        if not self.allow_repeated_inputs:
            data["allow_repeated_inputs"] = False
        return data

    # -- structure ------------------------------------------------------------------------------
    @cached_property
    def _combos(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        """For node j: every sorted choice of k inputs among its 2+j predecessors (distinct
        unless repeats are allowed)."""
        choose = itertools.combinations_with_replacement if self.allow_repeated_inputs else itertools.combinations
        return tuple(tuple(choose(range(2 + j), self.inputs_per_node)) for j in range(self.num_nodes))

    @cached_property
    def _combo_index(self) -> tuple[dict[tuple[int, ...], int], ...]:
        return tuple({c: i for i, c in enumerate(combos)} for combos in self._combos)

    @cached_property
    def _op_index(self) -> dict[str, int]:
        return {op: i for i, op in enumerate(self.ops)}

    def cell_size(self) -> int:
        """Number of cell genotypes (choice vectors, before canonical de-duplication)."""
        k, n_ops = self.inputs_per_node, len(self.ops)
        return math.prod(len(combos) * n_ops**k for combos in self._combos)

    def size(self) -> int:
        """Number of architecture genotypes: (cells)^2 for a normal and a reduction cell."""
        return self.cell_size() ** 2

    def make_cell(self, nodes: Sequence[NodeSpec]) -> Cell:
        """A Cell from node specs that are valid by construction (used internally)."""
        from search_spaces.cell import outputs_for

        return Cell(nodes, outputs_for(nodes, self.output))

    def cell_from_mapping(self, data: Any, where: str = "cell") -> Cell:
        """Parse and validate a cell's YAML form against this space."""
        return Cell.from_mapping(
            data,
            num_nodes=self.num_nodes,
            inputs_per_node=self.inputs_per_node,
            output=self.output,
            ops=self.ops,
            allow_repeated_inputs=self.allow_repeated_inputs,
            where=where,
        )

    def cell_from_graph(self, graph: Any, where: str = "cell") -> Cell:
        """Validate a ``networkx`` (Multi)DiGraph against this space and return the canonical Cell."""
        return Cell.from_graph(
            graph,
            num_nodes=self.num_nodes,
            inputs_per_node=self.inputs_per_node,
            output=self.output,
            ops=self.ops,
            allow_repeated_inputs=self.allow_repeated_inputs,
            where=where,
        )

    def architecture_from_mapping(self, data: Any, where: str = "architecture") -> Architecture:
        """Parse ``{normal: <cell>, reduce: <cell>}`` and validate both cells."""
        if not isinstance(data, Mapping):
            raise InvalidArchitectureError(
                f"{where}: expected a mapping with 'normal' and 'reduce' cells, got {type(data).__name__}"
            )
        extra = [k for k in data if k not in CELL_TYPES]
        if extra:
            raise InvalidArchitectureError(
                f"{where}: unknown field '{extra[0]}'; an architecture has 'normal' and 'reduce'"
            )
        for kind in CELL_TYPES:
            if kind not in data:
                raise InvalidArchitectureError(f"{where}: the '{kind}' cell is missing")
        return Architecture(
            self.cell_from_mapping(data["normal"], f"{where}.normal"),
            self.cell_from_mapping(data["reduce"], f"{where}.reduce"),
        )

    def validate_architecture(self, arch: Architecture, where: str = "architecture") -> None:
        """Check an architecture (possibly from another space) against this space's rules."""
        for kind in CELL_TYPES:
            self.cell_from_graph(arch.cell(kind).graph, where=f"{where}.{kind}")

    # -- sampling and mutation -------------------------------------------------------------------
    def sample_cell(self, rng: np.random.Generator) -> Cell:
        """A random cell genotype: every node draws its ops uniformly, and its inputs as the
        paper's space does: each input independently among the earlier nodes when repeats are
        allowed (NASNet, ENAS, NAO), else a uniform set of k distinct inputs."""
        if self.allow_repeated_inputs and self.inputs_per_node > 1:
            sources = rng.integers(0, self._input_choices).tolist()
            op_idx = rng.integers(0, len(self.ops), size=(self.num_nodes, self.inputs_per_node)).tolist()
            nodes = [tuple((src, self.ops[o]) for src, o in zip(sources[j], op_idx[j])) for j in range(self.num_nodes)]
            return self.make_cell(nodes)
        combo_idx = rng.integers(0, self._combo_counts)
        op_idx = rng.integers(0, len(self.ops), size=(self.num_nodes, self.inputs_per_node)).tolist()
        nodes = [
            tuple((src, self.ops[o]) for src, o in zip(self._combos[j][c], op_idx[j]))
            for j, c in enumerate(combo_idx.tolist())
        ]
        return self.make_cell(nodes)

    @cached_property
    def _input_choices(self) -> np.ndarray:
        """How many earlier nodes each input of each node can come from: 2+j for node j."""
        return np.repeat(np.arange(2, 2 + self.num_nodes)[:, None], self.inputs_per_node, axis=1)

    @cached_property
    def _combo_counts(self) -> np.ndarray:
        return np.array([len(c) for c in self._combos])

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A random architecture: a normal cell, then a reduction cell (see :meth:`sample_cell`)."""
        return Architecture(self.sample_cell(rng), self.sample_cell(rng))

    def mutate(
        self,
        arch: Architecture,
        rng: np.random.Generator,
        kind: str | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> Architecture:
        """Apply one mutation and return the (always valid) child.

        ``kind`` is ``"op"`` (change the op of one edge to a different op), ``"input"`` (rewire
        one input of one node to a different earlier node, which may be its other input when
        repeats are allowed: the 'hidden state' mutation of Real et al.), or ``"identity"``. With ``kind=None`` it is drawn using
        ``weights`` (default: op and input with equal probability). A mutation that is impossible
        in this space (op with one op, input where no node has a free alternative) falls back to
        the other one.
        """
        if kind is None:
            w = dict(weights or {"op": 0.5, "input": 0.5})
            names = [m for m in MUTATIONS if w.get(m, 0.0) > 0]
            if not names:
                raise ConfigError("mutation weights: at least one of op, input, identity must be > 0")
            p = np.array([w[m] for m in names], dtype=float)
            kind = names[int(rng.choice(len(names), p=p / p.sum()))]
        if kind not in MUTATIONS:
            raise ConfigError(f"unknown mutation '{kind}'; use one of {', '.join(MUTATIONS)}")
        if kind == "identity":
            return arch
        can_op = len(self.ops) > 1
        can_input = any(self._rewirable(j) for j in range(self.num_nodes))
        if kind == "op" and not can_op:
            kind = "input"
        if kind == "input" and not can_input:
            kind = "op" if can_op else "identity"
        if kind == "identity":
            return arch
        cell_kind = CELL_TYPES[int(rng.integers(2))]
        cell = arch.cell(cell_kind)
        nodes = [list(node) for node in cell.nodes]
        if kind == "op":
            j = int(rng.integers(self.num_nodes))
            slot = int(rng.integers(self.inputs_per_node))
            src, op = nodes[j][slot]
            choices = [o for o in self.ops if o != op]
            nodes[j][slot] = (src, choices[int(rng.integers(len(choices)))])
        else:
            movable = [j for j in range(self.num_nodes) if self._rewirable(j)]
            j = movable[int(rng.integers(len(movable)))]
            slot = int(rng.integers(self.inputs_per_node))
            src, op = nodes[j][slot]
            taken = {src} if self.allow_repeated_inputs else {s for s, _ in nodes[j]}
            free = [s for s in range(2 + j) if s not in taken]
            nodes[j][slot] = (free[int(rng.integers(len(free)))], op)
        return arch.replace(cell_kind, self.make_cell([tuple(n) for n in nodes]))

    def _rewirable(self, j: int) -> bool:
        """Whether node j has another earlier node to move one of its inputs to."""
        return 2 + j > (1 if self.allow_repeated_inputs else self.inputs_per_node)

    # -- categorical vector encoding ---------------------------------------------------------------
    def cardinalities(self) -> list[int]:
        """Number of options of each vector entry: per cell, per node: input combo, then k ops."""
        per_cell: list[int] = []
        for j in range(self.num_nodes):
            per_cell.append(len(self._combos[j]))
            per_cell.extend([len(self.ops)] * self.inputs_per_node)
        return per_cell * 2

    def encode(self, arch: Architecture) -> list[int]:
        """The architecture as a flat list of choice indices (see :meth:`cardinalities`)."""
        vec: list[int] = []
        for kind in CELL_TYPES:
            for j, node in enumerate(arch.cell(kind).nodes):
                srcs = tuple(s for s, _ in node)
                try:
                    vec.append(self._combo_index[j][srcs])
                    vec.extend(self._op_index[op] for _, op in node)
                except (KeyError, IndexError):
                    raise InvalidArchitectureError(
                        f"architecture {arch.short_hash} does not belong to search space "
                        f"'{self.name}' (node n{j}: {node})"
                    ) from None
        return vec

    def decode(self, vector: Sequence[int]) -> Architecture:
        """The architecture for a vector of choice indices; every in-range vector is valid."""
        card = self.cardinalities()
        if len(vector) != len(card):
            raise ConfigError(f"vector has {len(vector)} entries, space '{self.name}' needs {len(card)}")
        values = [int(v) for v in vector]
        for pos, (v, c) in enumerate(zip(values, card)):
            if not 0 <= v < c:
                raise ConfigError(f"vector entry {pos} is {v}, must be in [0, {c})")
        it = iter(values)
        cells = []
        for _ in CELL_TYPES:
            nodes = []
            for j in range(self.num_nodes):
                combo = self._combos[j][next(it)]
                nodes.append(tuple((src, self.ops[next(it)]) for src in combo))
            cells.append(self.make_cell(nodes))
        return Architecture(cells[0], cells[1])
