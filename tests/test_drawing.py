"""Cell drawings: graphviz when it is installed (DARTS/NNI style), matplotlib otherwise."""

from __future__ import annotations

import re

import pytest

from search_spaces import drawing
from search_spaces.drawing import architecture_dot, draw_architecture, graphviz_available
from search_spaces.zoo import load_zoo_cell


def _arch(name: str):  # type: ignore[no-untyped-def]
    record = load_zoo_cell(name)
    return getattr(record, "architecture", record)


def test_dot_source_has_every_op_edge_with_its_label_and_both_cells():
    arch = _arch("enas")  # several nodes take one input twice: parallel edges
    dot = architecture_dot(arch, title="ENAS")
    assert "rankdir=LR" in dot and 'label="ENAS"' in dot
    assert "subgraph cluster_normal" in dot and "subgraph cluster_reduce" in dot
    for kind in ("normal", "reduce"):
        cell = arch.cell(kind)
        expected = sorted((f"{kind}_{u}", f"{kind}_{v}", d["op"]) for u, v, d in cell.graph.edges(data=True)
                          if d.get("op"))
        found = sorted(re.findall(rf'"({kind}_\w+)" -> "({kind}_\w+)" \[label="(\w+)"\]', dot))
        assert found == expected  # parallel edges drawn once each, with their own label
        loose = [u for u, v, d in cell.graph.edges(data=True) if not d.get("op")]
        assert len(re.findall(rf'"{kind}_\w+" -> "{kind}_out" \[style=dashed', dot)) == len(loose)
    assert 'label="in0\\nc_{k-2}"' in dot  # dot's own line break, not a literal backslash


def test_an_unread_input_is_drawn_into_the_output():
    from search_spaces.cell import Cell, outputs_for

    nodes = [((0, "conv_3x3"), (0, "identity")), ((2, "max_pool_3x3"), (0, "conv_1x1"))]  # in1 is never read
    cell = Cell(nodes, outputs_for(nodes, "loose_ends"))
    lines = "\n".join(drawing._cell_lines(cell, "normal", "normal cell"))
    assert '"normal_in1" -> "normal_out" [style=dashed' in lines and "unread: concatenated" in lines
    assert '"normal_in0" -> "normal_out"' not in lines


def test_draw_falls_back_to_matplotlib_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(drawing.shutil, "which", lambda name: None)
    assert not graphviz_available()
    out = draw_architecture(_arch("darts-v2"), tmp_path / "cells.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not graphviz_available(), reason="graphviz (Python package and dot) is not installed")
@pytest.mark.parametrize("name", ["darts-v2", "nasnet-a"])
def test_graphviz_draws_both_cells_in_one_png(name, tmp_path):
    out = draw_architecture(_arch(name), tmp_path / "cells.png", title=name)
    data = out.read_bytes()
    assert data[:4] == b"\x89PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert height > width / 2 and height > 400  # two clusters stacked
