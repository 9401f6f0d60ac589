"""Pictures of cells: the normal and reduction cell side by side, drawn from their DiGraphs."""

from __future__ import annotations

import os
from pathlib import Path

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


def draw_cell(cell: Cell, ax, title: str = "") -> None:  # type: ignore[no-untyped-def]
    """Draw one cell on a matplotlib axis: op names on edges, outputs into 'out'."""
    g = cell.graph
    pos = _layout(cell)
    colors = [_COLORS[g.nodes[n]["kind"]] for n in g.nodes]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=900, edgecolors="#444444")
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=9)
    op_edges = [(u, v) for u, v, d in g.edges(data=True) if d.get("op")]
    out_edges = [(u, v) for u, v, d in g.edges(data=True) if not d.get("op")]
    nx.draw_networkx_edges(g, pos, edgelist=op_edges, ax=ax, arrows=True, arrowsize=12,
                           node_size=900, connectionstyle="arc3,rad=0.08", edge_color="#555555")
    nx.draw_networkx_edges(g, pos, edgelist=out_edges, ax=ax, arrows=True, arrowsize=12,
                           node_size=900, style="dashed", edge_color="#2ca25f")
    labels = {(u, v): d["op"] for u, v, d in g.edges(data=True) if d.get("op")}
    nx.draw_networkx_edge_labels(g, pos, edge_labels=labels, ax=ax, font_size=7, label_pos=0.55,
                                 connectionstyle="arc3,rad=0.08",
                                 bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    ax.set_title(title)
    ax.axis("off")


def draw_architecture(arch: Architecture, path: str | os.PathLike[str], title: str = "") -> Path:
    """Write a PNG with the normal cell (top) and the reduction cell (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(8.0, 2.0 * (2 + max(arch.normal.num_nodes, arch.reduce.num_nodes)))
    fig, axes = plt.subplots(2, 1, figsize=(width, 9.0))
    for ax, kind in zip(axes, CELL_TYPES):
        draw_cell(arch.cell(kind), ax, f"{kind} cell")
    fig.suptitle(title or f"architecture {arch.short_hash}")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
