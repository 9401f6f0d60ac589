"""The cell zoo: every published cell is what its authors published, validates, builds and trains."""

from __future__ import annotations

import pytest
import torch

from gtn_search.errors import InvalidArchitectureError, UnknownNameError
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.cell import node_name
from search_spaces.network import build
from search_spaces.presets import get_space
from search_spaces.space import CellSearchSpace
from search_spaces.yaml_format import dump_architecture
from search_spaces.zoo import cell_from_darts, load_zoo_cell, zoo_names

# The published genotypes, transcribed a second time (independently of the YAML files) from the
# sources each file names: DARTS-style (op, input) pairs, two per node, and the concatenated nodes.
DARTS_STYLE = {
    "nasnet-a": {  # quark0/darts cnn/genotypes.py: NASNet
        "normal": ([("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
                    ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
                    ("sep_conv_3x3", 1), ("skip_connect", 1)], [2, 3, 4, 5, 6]),
        "reduce": ([("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
                    ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
                    ("sep_conv_3x3", 2), ("max_pool_3x3", 1)], [4, 5, 6]),
    },
    "amoebanet-a": {  # quark0/darts cnn/genotypes.py: AmoebaNet
        "normal": ([("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
                    ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
                    ("skip_connect", 0), ("avg_pool_3x3", 1)], [4, 5, 6]),
        "reduce": ([("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
                    ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                    ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)], [3, 4, 6]),
    },
    "darts-v1": {  # quark0/darts cnn/genotypes.py: DARTS_V1
        "normal": ([("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
                    ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)], [2, 3, 4, 5]),
        "reduce": ([("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                    ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)], [2, 3, 4, 5]),
    },
    "darts-v2": {  # quark0/darts cnn/genotypes.py: DARTS_V2
        "normal": ([("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)], [2, 3, 4, 5]),
        "reduce": ([("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                    ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)], [2, 3, 4, 5]),
    },
    "pc-darts": {  # yuhuixu1993/PC-DARTS genotypes.py: PCDARTS = PC_DARTS_cifar
        "normal": ([("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
                    ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)], [2, 3, 4, 5]),
        "reduce": ([("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
                    ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)], [2, 3, 4, 5]),
    },
}
# melodyguan/enas scripts/cifar10_micro_final.sh: fixed_arc, (x_id, x_op, y_id, y_op) per node, ops
# numbered as in src/cifar10/micro_child.py; the unused nodes are concatenated.
ENAS_ARC = {"normal": "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1", "reduce": "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"}
ENAS_OPS = ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity"]
EXPECTED = ["amoebanet-a", "darts-v1", "darts-v2", "enas", "nasnet-a", "pc-darts"]


def _published(name: str, space: CellSearchSpace) -> Architecture:
    if name == "enas":
        cells = []
        for kind in ("normal", "reduce"):
            a = [int(x) for x in ENAS_ARC[kind].split()]
            nodes = {node_name(2 + j): [[node_name(a[4 * j]), ENAS_OPS[a[4 * j + 1]]],
                                        [node_name(a[4 * j + 2]), ENAS_OPS[a[4 * j + 3]]]] for j in range(5)}
            cells.append(space.cell_from_mapping({"nodes": nodes}))
        return Architecture(*cells)
    g = DARTS_STYLE[name]
    return Architecture(*(cell_from_darts(*g[kind], space) for kind in ("normal", "reduce")))


def test_the_zoo_ships_the_six_published_cells():
    assert zoo_names() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_zoo_cell_is_the_published_genotype_with_its_source(name):
    record = load_zoo_cell(name)
    assert record.metadata["name"] == name
    assert record.metadata["source"] and record.metadata["reference"]
    assert record.architecture == _published(name, record.space)
    record.space.validate_architecture(record.architecture)
    if name.startswith(("darts", "pc-darts")):  # DARTS' own space: 4 nodes, all concatenated, distinct inputs
        assert record.space == get_space("darts")


def test_published_cells_take_repeated_inputs():
    """NASNet-A's normal cell applies avg_pool_3x3 to in0 twice; ENAS's cells repeat inputs too."""
    nasnet = load_zoo_cell("nasnet-a").architecture.normal
    assert ((0, "avg_pool_3x3"), (0, "avg_pool_3x3")) in nasnet.nodes
    enas = load_zoo_cell("enas").architecture
    assert any(node[0][0] == node[1][0] for cell in (enas.normal, enas.reduce) for node in cell.nodes)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name", EXPECTED)
def test_zoo_cell_builds_and_trains_one_step(name, shape):
    arch = load_zoo_cell(name).architecture
    bp = Blueprint(input_shape=shape, channels=4, stages=2, cells_per_stage=1, stem_multiplier=1)
    net = build(arch, bp, seed=0)
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    assert net(x).shape == (4, 10)
    before = [p.detach().clone() for p in net.parameters()]
    loss = net.training_loss(x, y)
    loss.backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_zoo_files_are_canonical_dumps():
    """A shipped file is exactly what gtn-search writes for it (so a written-out copy is identical)."""
    from importlib import resources

    for name in EXPECTED:
        text = (resources.files("search_spaces") / "cells" / f"{name}.yaml").read_text()
        assert dump_architecture(load_zoo_cell(name)) == text


def test_unknown_zoo_cell_suggests_a_name():
    with pytest.raises(UnknownNameError, match="unknown zoo cell 'darts_v2' \\(did you mean 'darts-v2'\\?\\)"):
        load_zoo_cell("darts_v2")


def test_cell_from_darts_checks_the_concat_against_the_output_rule():
    normal, _ = DARTS_STYLE["darts-v2"]["normal"]
    darts = get_space("darts")
    with pytest.raises(InvalidArchitectureError, match="dangling node"):
        cell_from_darts(normal, [2, 3], darts)
    with pytest.raises(InvalidArchitectureError, match="8 \\(op, input\\) pairs"):
        cell_from_darts(normal, [2, 3, 4, 5], get_space("gtn-nas"))
    with pytest.raises(InvalidArchitectureError, match="input 7 must be an integer"):
        cell_from_darts(normal[:-1] + [("skip_connect", 7)], [2, 3, 4, 5], darts)


@pytest.mark.parametrize("name", EXPECTED)
def test_zoo_cell_encodes_and_mutates_in_its_space(name):
    import numpy as np

    record = load_zoo_cell(name)
    space, arch = record.space, record.architecture
    assert space.decode(space.encode(arch)) == arch
    rng = np.random.default_rng(0)
    for kind in ("op", "input"):
        child = space.mutate(arch, rng, kind)
        space.validate_architecture(child)
        assert child != arch
