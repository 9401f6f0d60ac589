"""Search space: seeded sampling, mutations, the categorical encoding, and the space size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gtn_search.errors import ConfigError, InvalidArchitectureError, UnknownNameError
from search_spaces.presets import get_space
from search_spaces.space import CellSearchSpace

SPACES = ["gtn-nas", "gtn-nas-extended", "darts"]


@pytest.mark.parametrize("name", SPACES)
def test_sampling_is_seeded_and_valid(name):
    space = get_space(name)
    a = [space.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    many = [space.sample(np.random.default_rng(s)) for s in range(50)]
    assert len({m.hash for m in many}) == 50  # collisions in a 1e18+ space would be a bug
    for arch in many:
        space.validate_architecture(arch)


@pytest.mark.parametrize("name", SPACES)
def test_encoding_round_trips_and_every_vector_decodes(name):
    space = get_space(name)
    card = space.cardinalities()
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = space.sample(rng)
        vec = space.encode(arch)
        assert len(vec) == len(card) and all(0 <= v < c for v, c in zip(vec, card))
        assert space.decode(vec) == arch
    for _ in range(200):
        vec = [int(rng.integers(c)) for c in card]
        space.validate_architecture(space.decode(vec))


def test_decode_rejects_bad_vectors():
    space = get_space("gtn-nas")
    with pytest.raises(ConfigError, match="needs 30"):
        space.decode([0, 1])
    bad = [0] * len(space.cardinalities())
    bad[1] = 99
    with pytest.raises(ConfigError, match="entry 1 is 99"):
        space.decode(bad)


def _edges(cell):
    return sorted((src, op) for node in cell.nodes for src, op in node)


@pytest.mark.parametrize("name", SPACES)
def test_mutations_are_valid_and_do_what_they_say(name):
    space = get_space(name)
    rng = np.random.default_rng(1)
    changed = {"op": 0, "input": 0}
    for _ in range(150):
        parent = space.sample(rng)
        assert space.mutate(parent, rng, "identity") == parent
        for kind in ("op", "input"):
            child = space.mutate(parent, rng, kind)
            space.validate_architecture(child)
            diff = [k for k in ("normal", "reduce") if child.cell(k) != parent.cell(k)]
            assert len(diff) <= 1  # one cell touched
            if diff:
                changed[kind] += 1
                before, after = parent.cell(diff[0]), child.cell(diff[0])
                if kind == "op":  # same wiring multiset size, the op multiset differs by one op
                    assert sorted(before.ops_used) != sorted(after.ops_used) or before.key != after.key
                    assert len(set(before.ops_used) ^ set(after.ops_used)) <= 2
    # a mutation almost always changes the architecture (only isomorphic rewrites do not)
    assert changed["op"] >= 140 and changed["input"] >= 140


def test_random_mutation_weights_and_errors():
    space = get_space("gtn-nas")
    rng = np.random.default_rng(0)
    parent = space.sample(rng)
    assert space.mutate(parent, rng, weights={"identity": 1.0}) == parent
    with pytest.raises(ConfigError, match="at least one"):
        space.mutate(parent, rng, weights={"op": 0.0})
    with pytest.raises(ConfigError, match="unknown mutation"):
        space.mutate(parent, rng, "swap")


def test_single_op_space_falls_back_to_input_mutation():
    space = CellSearchSpace(name="tiny", ops=("conv_3x3",), num_nodes=3)
    rng = np.random.default_rng(0)
    parent = space.sample(rng)
    child = space.mutate(parent, rng, "op")
    assert child != parent


@pytest.mark.parametrize("repeats", [True, False])
@pytest.mark.parametrize("k, num_nodes", [(1, 2), (2, 2), (2, 3)])
def test_size_matches_brute_force_enumeration(k, num_nodes, repeats):
    space = CellSearchSpace(name="t", ops=("conv_3x3", "identity"), num_nodes=num_nodes, inputs_per_node=k,
                            allow_repeated_inputs=repeats)
    per_cell = space.cardinalities()[: len(space.cardinalities()) // 2]
    vectors = list(itertools.product(*[range(c) for c in per_cell]))
    assert len(vectors) == space.cell_size()
    assert space.size() == space.cell_size() ** 2
    cells = {space.decode(list(v) + list(v)).normal for v in vectors}
    # canonical de-duplication can only merge genotypes, never invent new ones
    assert 0 < len(cells) <= space.cell_size()
    if num_nodes >= 2 and k == 1:
        assert len(cells) < space.cell_size()  # independent nodes swap: isomorphic duplicates merged


def test_space_size_of_the_paper_space():
    space = get_space("gtn-nas")
    ops = 11
    # node j picks 2 of its 2+j predecessors independently (unordered, repeats allowed): C(3+j, 2)
    per_cell = 3 * 6 * 10 * 15 * 21 * ops ** 10
    assert space.cell_size() == per_cell and space.size() == per_cell ** 2
    distinct = get_space("gtn-nas", allow_repeated_inputs=False)
    assert distinct.cell_size() == 1 * 3 * 6 * 10 * 15 * ops ** 10  # C(2+j, 2)


def test_space_config_errors():
    with pytest.raises(UnknownNameError, match="did you mean 'conv_3x3'"):
        CellSearchSpace.from_mapping({"ops": ["conv_3x4"]})
    with pytest.raises(ConfigError, match="listed twice"):
        CellSearchSpace.from_mapping({"ops": ["conv_3x3", "conv_3x3"]})
    with pytest.raises(ConfigError, match="inputs_per_node"):
        CellSearchSpace.from_mapping({"ops": ["conv_3x3"], "inputs_per_node": 3})
    with pytest.raises(UnknownNameError, match="unknown search space"):
        CellSearchSpace.from_mapping("nasbench")
    custom = CellSearchSpace.from_mapping({"name": "gtn-nas", "num_nodes": 3})
    assert custom.num_nodes == 3 and len(custom.ops) == 11
    assert CellSearchSpace.from_mapping(custom.to_mapping()) == custom


def _repeats(arch) -> int:
    return sum(node[0][0] == node[1][0] for cell in (arch.normal, arch.reduce) for node in cell.nodes)


def test_the_paper_space_samples_repeated_inputs_and_darts_does_not():
    rng = np.random.default_rng(0)
    paper = [get_space("gtn-nas").sample(rng) for _ in range(50)]
    assert sum(_repeats(a) > 0 for a in paper) >= 40  # P(no repeat in either cell) = (1/6)^2
    # each input is drawn independently, as the paper's controller does: node j repeats with
    # probability 1/(2+j), 1.45 repeats per cell (a uniform choice of input pair would give 2.19)
    cells = [get_space("gtn-nas").sample_cell(rng) for _ in range(2000)]
    mean = sum(node[0][0] == node[1][0] for c in cells for node in c.nodes) / len(cells)
    assert abs(mean - (1 / 2 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 6)) < 0.08
    assert not any(_repeats(get_space("darts").sample(rng)) for _ in range(50))
    assert not any(_repeats(get_space("gtn-nas", allow_repeated_inputs=False).sample(rng)) for _ in range(50))


def test_repeated_input_cells_encode_decode_and_mutate():
    space = get_space("gtn-nas")
    arch = space.architecture_from_mapping({
        kind: {"nodes": {"n0": [["in0", "avg_pool_3x3"], ["in0", "avg_pool_3x3"]],
                         "n1": [["in1", "identity"], ["in1", "conv_3x3"]],
                         "n2": [["n0", "conv_1x1"], ["n1", "conv_1x1"]],
                         "n3": [["n2", "max_pool_3x3"], ["n2", "identity"]],
                         "n4": [["in0", "conv_3x3"], ["n3", "identity"]]}} for kind in ("normal", "reduce")})
    vec = space.encode(arch)
    assert space.decode(vec) == arch
    rng = np.random.default_rng(3)
    children = [space.mutate(arch, rng, "input") for _ in range(200)]
    for child in children:
        space.validate_architecture(child)
    assert min(_repeats(c) for c in children) < _repeats(arch)  # rewiring can undo a repeat ...
    parent = space.sample(np.random.default_rng(1))
    assert max(_repeats(space.mutate(parent, rng, "input")) for _ in range(200)) > _repeats(parent)  # ... or make one
    distinct = get_space("gtn-nas", allow_repeated_inputs=False)
    with pytest.raises(InvalidArchitectureError, match="does not belong to search space 'gtn-nas'"):
        distinct.encode(arch)
    with pytest.raises(InvalidArchitectureError, match="listed twice"):
        distinct.validate_architecture(arch)


def test_allow_repeated_inputs_round_trips_and_is_written_only_when_false():
    assert "allow_repeated_inputs" not in get_space("gtn-nas").to_mapping()
    darts = get_space("darts")
    assert darts.to_mapping()["allow_repeated_inputs"] is False
    assert CellSearchSpace.from_mapping(darts.to_mapping()) == darts
    assert CellSearchSpace.from_mapping({"name": "darts", "allow_repeated_inputs": True}).allow_repeated_inputs
