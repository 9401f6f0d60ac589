"""The cell genotype: an immutable, canonical, hashable DAG backed by ``networkx.MultiDiGraph``.

A cell has two input nodes, ``in0`` (output of the cell two back) and ``in1`` (the previous cell),
and B intermediate nodes ``n0 .. n{B-1}``. Each intermediate node takes k inputs from earlier
nodes, applies one op to each input edge and sums the results. As in NASNet, AmoebaNet, ENAS and
NAO, the inputs are chosen independently, so one node may feed another twice (two parallel edges,
keyed by input slot); a space can forbid that (``allow_repeated_inputs``). The cell's output node
``out`` concatenates the intermediate nodes chosen by the output rule:

* ``loose_ends`` (NASNet/NAO, the paper's space): the intermediate nodes no other node consumes;
* ``all`` (DARTS): every intermediate node.

Cells are stored in a canonical form so that equal networks compare and hash equal: the inputs of
a node are sorted (the sum is commutative) and intermediate nodes are renumbered by (depth,
structural signature), which removes relabelings of independent nodes. The canonical form is
always a relabeling of the cell it came from, so two cells with equal canonical forms compute the
same function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import networkx as nx

from gtn_search.configio import FlowList
from gtn_search.errors import InvalidArchitectureError, did_you_mean

OutputRule = Literal["loose_ends", "all"]
OUTPUT_RULES: tuple[str, ...] = ("loose_ends", "all")
INPUT_NAMES: tuple[str, str] = ("in0", "in1")
OUTPUT_NAME = "out"

#: One node: its k inputs as (source index, op name) pairs; indices 0, 1 are in0, in1, 2+j is nj.
NodeSpec = tuple[tuple[int, str], ...]


def node_name(index: int) -> str:
    """Name of node ``index``: 0 -> in0, 1 -> in1, 2 -> n0, 3 -> n1, ..."""
    return INPUT_NAMES[index] if index < 2 else f"n{index - 2}"


def node_index(name: object, num_nodes: int) -> int | None:
    """Index of a node name in a cell with ``num_nodes`` intermediate nodes, or None."""
    if not isinstance(name, str):
        return None
    if name in INPUT_NAMES:
        return INPUT_NAMES.index(name)
    if len(name) > 1 and name[0] == "n" and name[1:].isdigit() and (name[1] != "0" or len(name) == 2):
        j = int(name[1:])
        if j < num_nodes:
            return 2 + j
    return None


def _node_names_hint(num_nodes: int) -> str:
    last = f"n{num_nodes - 1}"
    inner = "n0" if num_nodes == 1 else f"n0..{last}"
    return f"in0, in1, {inner} and {OUTPUT_NAME}"


def outputs_for(nodes: Sequence[NodeSpec], rule: str) -> tuple[int, ...]:
    """Indices of the intermediate nodes the output rule concatenates."""
    intermediate = range(2, 2 + len(nodes))
    if rule == "all":
        return tuple(intermediate)
    consumed = {src for node in nodes for src, _ in node}
    return tuple(i for i in intermediate if i not in consumed)


def _signature(parts: Iterable[str]) -> str:
    return hashlib.blake2b("|".join(sorted(parts)).encode(), digest_size=12).hexdigest()


def canonicalize(nodes: Sequence[NodeSpec], outputs: Iterable[int]) -> tuple[tuple[NodeSpec, ...], tuple[int, ...]]:
    """Renumber intermediate nodes by (depth, structural signature) and sort each node's inputs."""
    sig = {0: "in0", 1: "in1"}
    depth = {0: 0, 1: 0}
    for j, node in enumerate(nodes):
        i = 2 + j
        sig[i] = _signature(f"{sig[src]}:{op}" for src, op in node)
        depth[i] = 1 + max(depth[src] for src, _ in node)
    order = sorted(range(2, 2 + len(nodes)), key=lambda i: (depth[i], sig[i], i))
    new_index = {0: 0, 1: 1}
    new_index.update({old: 2 + rank for rank, old in enumerate(order)})
    new_nodes = tuple(
        tuple(sorted((new_index[src], op) for src, op in nodes[old - 2])) for old in order
    )
    return new_nodes, tuple(sorted(new_index[o] for o in outputs))


class Cell:
    """An immutable cell genotype in canonical form, with its ``networkx.MultiDiGraph``.

    Build cells with :meth:`from_graph` or :meth:`from_mapping` (which validate), or through a
    :class:`~search_spaces.space.CellSearchSpace` (sampling, mutation, decoding).
    """

    __slots__ = ("_graph", "_key", "_nodes", "_outputs")

    def __init__(self, nodes: Sequence[NodeSpec], outputs: Iterable[int]) -> None:
        canon_nodes, canon_outputs = canonicalize(tuple(tuple(n) for n in nodes), outputs)
        self._nodes = canon_nodes
        self._outputs = canon_outputs
        self._graph: nx.MultiDiGraph | None = None  # built on first use (sampling does not need it)
        self._key = json.dumps(self.to_mapping(), sort_keys=True, separators=(",", ":"))

    # -- value semantics ----------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        """Canonical inputs of each intermediate node, as (source index, op) pairs."""
        return self._nodes

    @property
    def outputs(self) -> tuple[int, ...]:
        """Indices of the intermediate nodes concatenated into the cell output."""
        return self._outputs

    @property
    def num_nodes(self) -> int:
        return len(self._nodes)

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The cell as a frozen MultiDiGraph: nodes in0, in1, n0.., out; edges carry ``op``.

        Edges into an intermediate node are keyed by input slot (0..k-1), so a node that takes
        the same input twice has two parallel edges; edges into ``out`` have key 0 and op None.
        """
        if self._graph is None:
            self._graph = self._build_graph()
        return self._graph

    @property
    def key(self) -> str:
        """Canonical JSON text of the cell; equal cells have equal keys in every process."""
        return self._key

    @property
    def ops_used(self) -> tuple[str, ...]:
        return tuple(op for node in self._nodes for _, op in node)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Cell({self.describe()})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Cell, (self._nodes, self._outputs))

    def describe(self) -> str:
        """One-line human form: ``n0 = conv_3x3(in0) + identity(in1); ...; out = concat(n0, n1)``."""
        parts = [
            f"{node_name(2 + j)} = " + " + ".join(f"{op}({node_name(s)})" for s, op in node)
            for j, node in enumerate(self._nodes)
        ]
        parts.append(f"{OUTPUT_NAME} = concat({', '.join(node_name(o) for o in self._outputs)})")
        return "; ".join(parts)

    # -- graph ----------------------------------------------------------------------------------
    def _build_graph(self) -> nx.MultiDiGraph:
        g = nx.MultiDiGraph()
        for i, name in enumerate(INPUT_NAMES):
            g.add_node(name, kind="input", index=i)
        for j in range(len(self._nodes)):
            g.add_node(node_name(2 + j), kind="intermediate", index=2 + j)
        g.add_node(OUTPUT_NAME, kind="output", index=2 + len(self._nodes))
        for j, node in enumerate(self._nodes):
            for slot, (src, op) in enumerate(node):
                g.add_edge(node_name(src), node_name(2 + j), key=slot, op=op, slot=slot)
        for o in self._outputs:
            g.add_edge(node_name(o), OUTPUT_NAME, key=0, op=None, slot=None)
        return nx.freeze(g)

    # -- serialisation --------------------------------------------------------------------------
    def to_mapping(self) -> dict[str, Any]:
        """Plain-data form used in YAML: ``{nodes: {n0: [[in0, op], ...]}, outputs: [...]}``."""
        return {
            "nodes": {
                node_name(2 + j): FlowList([node_name(s), op] for s, op in node)
                for j, node in enumerate(self._nodes)
            },
            "outputs": [node_name(o) for o in self._outputs],
        }

    @classmethod
    def from_mapping(
        cls,
        data: Any,
        *,
        num_nodes: int,
        inputs_per_node: int,
        output: str = "loose_ends",
        ops: Iterable[str] | None = None,
        allow_repeated_inputs: bool = True,
        where: str = "cell",
    ) -> Cell:
        """Parse and validate the YAML form (see :meth:`to_mapping`)."""
        if not isinstance(data, Mapping):
            raise InvalidArchitectureError(
                f"{where}: expected a mapping with 'nodes' (and optionally 'outputs'), "
                f"got {type(data).__name__}"
            )
        unknown = [k for k in data if k not in ("nodes", "outputs")]
        if unknown:
            raise InvalidArchitectureError(
                f"{where}: unknown field '{unknown[0]}'{did_you_mean(str(unknown[0]), ['nodes', 'outputs'])}; "
                f"a cell has 'nodes' and optionally 'outputs'"
            )
        nodes = data.get("nodes")
        if not isinstance(nodes, Mapping) or not nodes:
            raise InvalidArchitectureError(
                f"{where}.nodes: expected a mapping like 'n0: [[in0, conv_3x3], [in1, identity]]'"
                f", got {type(nodes).__name__ if nodes is not None else 'nothing'}"
            )
        g = nx.MultiDiGraph()
        g.add_nodes_from(INPUT_NAMES)
        for name, inputs in nodes.items():
            if not isinstance(name, str):
                raise InvalidArchitectureError(f"{where}.nodes: node names must be strings, got {name!r}")
            g.add_node(name)
            if not isinstance(inputs, list):
                raise InvalidArchitectureError(
                    f"{where}.nodes.{name}: expected a list of [input, op] pairs, "
                    f"got {type(inputs).__name__}"
                )
            for pos, pair in enumerate(inputs):
                if (
                    not isinstance(pair, list)
                    or len(pair) != 2
                    or not all(isinstance(x, str) for x in pair)
                ):
                    raise InvalidArchitectureError(
                        f"{where}.nodes.{name}[{pos}]: expected a pair [input node, op name] of "
                        f"strings, got {pair!r}"
                    )
                src, op = pair
                g.add_edge(src, name, key=pos, op=op)
        outputs = data.get("outputs")
        if outputs is not None:
            if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
                raise InvalidArchitectureError(
                    f"{where}.outputs: expected a list of node names, got {outputs!r}"
                )
            if len(set(outputs)) != len(outputs):
                raise InvalidArchitectureError(f"{where}.outputs: a node is listed twice: {outputs}")
            for o in outputs:
                g.add_edge(o, OUTPUT_NAME)
        return cls.from_graph(
            g, num_nodes=num_nodes, inputs_per_node=inputs_per_node, output=output, ops=ops,
            allow_repeated_inputs=allow_repeated_inputs, where=where,
        )

    @classmethod
    def from_graph(
        cls,
        graph: nx.DiGraph | nx.MultiDiGraph,
        *,
        num_nodes: int,
        inputs_per_node: int,
        output: str = "loose_ends",
        ops: Iterable[str] | None = None,
        allow_repeated_inputs: bool = True,
        where: str = "cell",
    ) -> Cell:
        """Validate a graph against the cell rules and return the canonical Cell.

        The graph (a DiGraph, or a MultiDiGraph when a node takes the same input twice) has nodes
        in0, in1, n0..n{B-1} and optionally ``out``; each edge into an intermediate node carries
        its op in the ``op`` attribute. Edges into ``out``, when given, must name exactly the
        nodes the output rule selects.
        """
        nodes = validate_graph(
            graph,
            num_nodes=num_nodes,
            inputs_per_node=inputs_per_node,
            output=output,
            ops=None if ops is None else tuple(ops),
            allow_repeated_inputs=allow_repeated_inputs,
            where=where,
        )
        return cls(nodes, outputs_for(nodes, output))


def validate_graph(
    graph: Any,
    *,
    num_nodes: int,
    inputs_per_node: int,
    output: str,
    ops: tuple[str, ...] | None,
    where: str,
    allow_repeated_inputs: bool = True,
) -> list[NodeSpec]:
    """Check every cell rule; return each node's inputs. Raise on the first broken rule."""
    fail = InvalidArchitectureError
    if not isinstance(graph, (nx.DiGraph, nx.MultiDiGraph)):
        raise fail(f"{where}: expected a networkx.DiGraph or MultiDiGraph, got {type(graph).__name__}")
    if output not in OUTPUT_RULES:
        raise fail(f"{where}: unknown output rule '{output}'; use one of {', '.join(OUTPUT_RULES)}")
    for name in graph.nodes:
        if name != OUTPUT_NAME and node_index(name, num_nodes) is None:
            raise fail(
                f"{where}: unknown node '{name}'{did_you_mean(str(name), _expected_names(num_nodes))};"
                f" node names are {_node_names_hint(num_nodes)}"
            )
    missing = [node_name(2 + j) for j in range(num_nodes) if node_name(2 + j) not in graph]
    if missing:
        raise fail(
            f"{where}: node '{missing[0]}' is missing; this space has {num_nodes} intermediate "
            f"nodes ({_node_names_hint(num_nodes)}), each with {inputs_per_node} inputs"
        )
    for name in INPUT_NAMES:
        if name in graph and graph.in_degree(name) > 0:
            src = next(iter(graph.predecessors(name)))
            raise fail(f"{where}: input node '{name}' takes an input from '{src}'; in0/in1 are the "
                       f"cell's inputs and cannot have inputs")
    if OUTPUT_NAME in graph and graph.out_degree(OUTPUT_NAME) > 0:
        dst = next(iter(graph.successors(OUTPUT_NAME)))
        raise fail(f"{where}: '{OUTPUT_NAME}' feeds '{dst}'; the cell output cannot be an input")
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([str(cycle[0][0])] + [str(edge[1]) for edge in cycle])
        raise fail(f"{where}: cycle {path}; a cell must be acyclic (inputs come from earlier nodes)")
    known_ops = None if ops is None else set(ops)
    nodes: list[NodeSpec] = []
    for j in range(num_nodes):
        dst = node_name(2 + j)
        in_edges = _in_edges(graph, dst)
        preds = [u for u, _ in in_edges]
        for u in preds:
            if u == OUTPUT_NAME:
                raise fail(f"{where}: '{dst}' takes '{OUTPUT_NAME}' as input; only in0, in1 and "
                           f"earlier nodes can be inputs")
            if node_index(u, num_nodes) >= 2 + j:  # type: ignore[operator]
                raise fail(
                    f"{where}: '{dst}' takes an input from '{u}', which comes later; a node may "
                    f"only use in0, in1 and earlier nodes"
                )
        if len(preds) != inputs_per_node:
            raise fail(
                f"{where}: '{dst}' has {len(preds)} input(s); this space takes exactly "
                f"{inputs_per_node} per node"
            )
        repeated = next((u for u in preds if preds.count(u) > 1), None)
        if repeated is not None and not allow_repeated_inputs:
            raise fail(
                f"{where}: input '{repeated}' is listed twice for '{dst}'; this space forbids "
                f"repeated inputs (allow_repeated_inputs: false): use different inputs or allow them"
            )
        spec = []
        for u, data in in_edges:
            op = data.get("op")
            if not isinstance(op, str) or not op:
                raise fail(f"{where}: edge {u} -> {dst} has no op; set its 'op' attribute")
            if known_ops is not None and op not in known_ops:
                raise fail(
                    f"{where}: edge {u} -> {dst} uses unknown op '{op}'"
                    f"{did_you_mean(op, known_ops)}; this space's ops: {', '.join(ops or ())}"
                )
            spec.append((node_index(u, num_nodes), op))
        nodes.append(tuple(spec))  # type: ignore[arg-type]
    if OUTPUT_NAME in graph:
        listed = [u for u, _ in _in_edges(graph, OUTPUT_NAME)]
        twice = next((u for u in listed if listed.count(u) > 1), None)
        if twice is not None:
            raise fail(f"{where}: outputs lists '{twice}' twice; list each output node once")
        declared = set(listed)
        for name in sorted(declared):
            if name in INPUT_NAMES:
                raise fail(f"{where}: outputs lists cell input '{name}'; only intermediate nodes "
                           f"can be outputs")
        expected = {node_name(i) for i in outputs_for(nodes, output)}
        dangling = sorted(expected - declared)
        if dangling:
            what = "no later node uses it and it is not" if output == "loose_ends" else "it is not"
            raise fail(
                f"{where}: dangling node '{dangling[0]}': {what} among the outputs; add it to "
                f"outputs (or drop 'outputs' to use the '{output}' rule)"
            )
        extra = sorted(declared - expected)
        if extra:
            raise fail(
                f"{where}: outputs lists '{extra[0]}', which a later node consumes; under the "
                f"'{output}' rule only unconsumed nodes are outputs (drop 'outputs' to derive them)"
            )
    return nodes


def _in_edges(graph: nx.DiGraph | nx.MultiDiGraph, dst: str) -> list[tuple[str, dict[str, Any]]]:
    """(source, edge data) of every edge into ``dst``, parallel edges of a MultiDiGraph included."""
    return [(u, d) for u, _, d in graph.in_edges(dst, data=True)]


def _expected_names(num_nodes: int) -> list[str]:
    return [node_name(i) for i in range(2 + num_nodes)] + [OUTPUT_NAME]
