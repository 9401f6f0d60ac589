"""Pictures of cells: the normal and the reduction cell of an architecture in one PNG.

With graphviz installed (the ``graphviz`` Python package and its ``dot`` program, e.g. Debian's
``graphviz``), cells are drawn as DARTS and NNI users know them: inputs on the left, nodes in order,
the op name on every edge, the output on the right, laid out by ``dot`` so that labels never
overlap; both cells on one image. Without it, a matplotlib drawing of the same graph is the fallback.
:func:`architecture_dot` gives the graphviz source itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

import networkx as nx

from search_spaces.architecture import CELL_TYPES, Architecture
from search_spaces.cell import INPUT_NAMES, OUTPUT_NAME, Cell

_COLORS = {"input": "#9ecae1", "intermediate": "#fdd49e", "output": "#a1d99b"}


def _layout(cell: Cell) -> dict[str, tuple[float, float]]:
    """Columns by depth (inputs left, output right); nodes of one column spread vertically."""
    g = cell.graph
    depth: dict[str, int] = {name: 0 for name in INPUT_NAMES}
    for name in nx.topological_sort(g):
        if name in depth:
            continue
        depth[name] = 1 + max(depth[p] for p in g.predecessors(name))
    depth[OUTPUT_NAME] = max(depth.values()) + (0 if OUTPUT_NAME in depth else 1)
    columns: dict[int, list[str]] = {}
    for name in sorted(g.nodes, key=lambda n: g.nodes[n]["index"]):
        columns.setdefault(depth[name], []).append(name)
    pos = {}
    for d, names in columns.items():
        for i, name in enumerate(names):
            pos[name] = (float(d), (len(names) - 1) / 2.0 - i)
    return pos


def _arc_groups(cell: Cell) -> dict[float, list[tuple[str, str, str]]]:
    """Op edges grouped by arc radius: parallel edges (a node taking one input twice) bend apart."""
    groups: dict[float, list[tuple[str, str, str]]] = {}
    seen: dict[tuple[str, str], int] = {}
    for u, v, d in cell.graph.edges(data=True):
        if d.get("op"):
            rank = seen.get((u, v), 0)
            seen[(u, v)] = rank + 1
            groups.setdefault(0.08 + 0.35 * rank, []).append((u, v, d["op"]))
    return groups


def draw_cell(cell: Cell, ax, title: str = "") -> None:  # type: ignore[no-untyped-def]
    """Draw one cell on a matplotlib axis: op names on edges, outputs into 'out'."""
    g = cell.graph
    pos = _layout(cell)
    colors = [_COLORS[g.nodes[n]["kind"]] for n in g.nodes]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=900, edgecolors="#444444")
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=9)
    for rad, edges in _arc_groups(cell).items():
        h = nx.DiGraph()
        h.add_nodes_from(g.nodes)
        h.add_edges_from((u, v) for u, v, _ in edges)
        style = f"arc3,rad={rad}"
        nx.draw_networkx_edges(h, pos, ax=ax, arrows=True, arrowsize=12, node_size=900,
                               connectionstyle=style, edge_color="#555555")
        nx.draw_networkx_edge_labels(h, pos, edge_labels={(u, v): op for u, v, op in edges}, ax=ax,
                                     font_size=7, label_pos=0.55, connectionstyle=style,
                                     bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    out = nx.DiGraph()
    out.add_nodes_from(g.nodes)
    out.add_edges_from((u, v) for u, v, d in g.edges(data=True) if not d.get("op"))
    nx.draw_networkx_edges(out, pos, ax=ax, arrows=True, arrowsize=12,
                           node_size=900, style="dashed", edge_color="#2ca25f")
    ax.set_title(title)
    ax.axis("off")


def graphviz_available() -> bool:
    """Whether the ``graphviz`` Python package and the ``dot`` program are both installed."""
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def _quote(text: str) -> str:
    """A dot string literal (line breaks become dot's centred ``\\n``)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _cell_lines(cell: Cell, prefix: str, label: str) -> list[str]:
    """The graphviz lines of one cell as a cluster: nodes by index, op names on the edges."""
    g = cell.graph
    ident = {n: _quote(f"{prefix}_{n}") for n in g.nodes}
    captions = {INPUT_NAMES[0]: "c_{k-2}", INPUT_NAMES[1]: "c_{k-1}", OUTPUT_NAME: "c_{k}"}
    lines = [f"  subgraph cluster_{prefix} {{", f"    label={_quote(label)}; fontsize=16; style=rounded; "
             f"color=\"#bbbbbb\";"]
    for name in sorted(g.nodes, key=lambda n: g.nodes[n]["index"]):
        kind = g.nodes[name]["kind"]
        shape = "box" if kind != "intermediate" else "ellipse"
        text = f"{name}\n{captions[name]}" if name in captions else name
        lines.append(f"    {ident[name]} [label={_quote(text)}, shape={shape}, style=filled, "
                     f"fillcolor={_quote(_COLORS[kind])}];")
    lines.append("    { rank=same; " + " ".join(ident[n] for n in INPUT_NAMES) + " }")
    for u, v, d in g.edges(data=True):
        if d.get("op"):
            lines.append(f"    {ident[u]} -> {ident[v]} [label={_quote(d['op'])}];")
        else:
            lines.append(f"    {ident[u]} -> {ident[v]} [style=dashed, color=\"#2ca25f\"];")
    for name in INPUT_NAMES:  # an input no node reads is concatenated into the output (NASNet, ENAS)
        if not any(d.get("op") for _, _, d in g.out_edges(name, data=True)):
            lines.append(f"    {ident[name]} -> {ident[OUTPUT_NAME]} [style=dashed, color=\"#2ca25f\", "
                         f"label=\"unread: concatenated\", fontcolor=\"#2ca25f\"];")
    lines.append("  }")
    return lines


def architecture_dot(arch: Architecture, title: str = "") -> str:
    """Graphviz (dot) source of both cells of ``arch``, left to right, one cluster per cell."""
    lines = ["digraph architecture {", "  rankdir=LR; newrank=true; nodesep=0.35; ranksep=0.6;",
             f"  labelloc=t; fontsize=18; label={_quote(title or f'architecture {arch.short_hash}')};",
             '  node [fontname="Helvetica", fontsize=12]; edge [fontname="Helvetica", fontsize=10];']
    for kind in reversed(CELL_TYPES):  # dot stacks the clusters bottom-up: the normal cell ends on top
        lines += _cell_lines(arch.cell(kind), kind, f"{kind} cell")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_architecture(arch: Architecture, path: str | os.PathLike[str], title: str = "",
                      engine: Literal["auto", "graphviz", "matplotlib"] = "auto") -> Path:
    """Write a PNG with the normal and the reduction cell, with graphviz when it is installed."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if engine == "graphviz" or (engine == "auto" and graphviz_available()):
        import graphviz

        out.write_bytes(graphviz.Source(architecture_dot(arch, title)).pipe(format="png"))
        return out
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(8.0, 2.0 * (2 + max(arch.normal.num_nodes, arch.reduce.num_nodes)))
    fig, axes = plt.subplots(2, 1, figsize=(width, 9.0))
    for ax, kind in zip(axes, CELL_TYPES):
        draw_cell(arch.cell(kind), ax, f"{kind} cell")
    fig.suptitle(title or f"architecture {arch.short_hash}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
