"""Cell genotype: canonical form, value semantics, validation errors, stable hashing."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from gtn_search.errors import InvalidArchitectureError
from search_spaces.architecture import Architecture
from search_spaces.cell import Cell
from search_spaces.presets import get_space

REPO = Path(__file__).resolve().parents[1]
RULES = {"num_nodes": 3, "inputs_per_node": 2, "output": "loose_ends", "ops": ("conv_3x3", "identity", "max_pool_3x3")}


def cell(nodes: dict, **overrides) -> Cell:
    return Cell.from_mapping({"nodes": nodes}, **{**RULES, **overrides})


def test_inputs_order_and_independent_node_relabeling_give_equal_cells():
    a = cell({"n0": [["in0", "conv_3x3"], ["in1", "identity"]],
              "n1": [["in1", "max_pool_3x3"], ["in0", "identity"]],
              "n2": [["n0", "conv_3x3"], ["n1", "identity"]]})
    # n0 and n1 swapped, inputs listed in another order: the same network
    b = cell({"n0": [["in0", "identity"], ["in1", "max_pool_3x3"]],
              "n1": [["in1", "identity"], ["in0", "conv_3x3"]],
              "n2": [["n1", "conv_3x3"], ["n0", "identity"]]})
    assert a == b and hash(a) == hash(b) and a.key == b.key
    c = cell({"n0": [["in0", "conv_3x3"], ["in1", "identity"]],
              "n1": [["in1", "max_pool_3x3"], ["in0", "identity"]],
              "n2": [["n0", "identity"], ["n1", "conv_3x3"]]})  # ops on n2's edges swapped
    assert a != c


def test_loose_ends_and_all_output_rules():
    nodes = {"n0": [["in0", "conv_3x3"], ["in1", "identity"]],
             "n1": [["in0", "identity"], ["n0", "identity"]],
             "n2": [["in1", "conv_3x3"], ["in0", "identity"]]}
    loose = cell(nodes)
    assert len(loose.outputs) == 2
    for name in loose.to_mapping()["outputs"]:  # an output is consumed by no other node
        assert list(loose.graph.successors(name)) == ["out"]
    assert len(cell(nodes, output="all").outputs) == 3


def test_graph_is_frozen_and_carries_ops():
    c = cell({"n0": [["in0", "conv_3x3"], ["in1", "identity"]],
              "n1": [["in0", "identity"], ["n0", "identity"]],
              "n2": [["n1", "conv_3x3"], ["in0", "identity"]]})
    g = c.graph
    assert nx.is_frozen(g) and nx.is_directed_acyclic_graph(g)
    assert set(g.nodes) == {"in0", "in1", "n0", "n1", "n2", "out"}
    assert sorted(d["op"] for _, _, d in g.edges(data=True) if d["op"]) == sorted(c.ops_used)
    with pytest.raises(nx.NetworkXError):
        g.add_edge("in0", "n2")
    # from_graph on the cell's own graph gives the same cell back
    assert Cell.from_graph(g, **RULES) == c


def test_pickle_round_trip_keeps_equality():
    space = get_space("gtn-nas")
    import numpy as np

    arch = space.sample(np.random.default_rng(5))
    again = pickle.loads(pickle.dumps(arch))
    assert again == arch and again.hash == arch.hash


@pytest.mark.parametrize(
    "nodes, message",
    [
        ({"n0": [["in0", "conv_3x3"], ["in1", "identity"]], "n1": [["in0", "identity"], ["n2", "identity"]],
          "n2": [["n1", "conv_3x3"], ["in0", "identity"]]}, "cycle"),
        ({"n0": [["in0", "conv_3x3"], ["n2", "identity"]], "n1": [["in0", "identity"], ["n0", "identity"]],
          "n2": [["in1", "conv_3x3"], ["in0", "identity"]]}, "comes later"),
        ({"n0": [["in0", "conv_3x3"]], "n1": [["in0", "identity"], ["n0", "identity"]],
          "n2": [["in1", "conv_3x3"], ["in0", "identity"]]}, "has 1 input(s)"),
        ({"n0": [["in0", "conv_3x3"], ["in1", "sep_conv_9x9"]], "n1": [["in0", "identity"], ["n0", "identity"]],
          "n2": [["in1", "conv_3x3"], ["in0", "identity"]]}, "unknown op 'sep_conv_9x9'"),
        ({"n0": [["in0", "conv_3x3"], ["in1", "identity"]], "n1": [["in0", "identity"], ["x", "identity"]],
          "n2": [["in1", "conv_3x3"], ["in0", "identity"]]}, "unknown node 'x'"),
        ({"n0": [["in0", "conv_3x3"], ["in1", "identity"]], "n1": [["in0", "identity"], ["n0", "identity"]]},
         "node 'n2' is missing"),
        ({"n0": [["in0", "conv_3x3"], ["in1", "identity"]], "n1": [["in0", "identity"], ["n0", "identity"]],
          "n2": [["in1", "conv_3x3"], ["in0", "identity"]], "n3": [["in1", "conv_3x3"], ["in0", "identity"]]},
         "unknown node 'n3'"),
    ],
)
def test_validation_errors_name_the_problem(nodes, message):
    with pytest.raises(InvalidArchitectureError) as info:
        cell(nodes)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_dangling_and_wrong_outputs():
    nodes = {"n0": [["in0", "conv_3x3"], ["in1", "identity"]], "n1": [["in0", "identity"], ["n0", "identity"]],
             "n2": [["in1", "conv_3x3"], ["in0", "identity"]]}
    with pytest.raises(InvalidArchitectureError, match="dangling node 'n2'"):
        Cell.from_mapping({"nodes": nodes, "outputs": ["n1"]}, **RULES)
    with pytest.raises(InvalidArchitectureError, match="'n0', which a later node consumes"):
        Cell.from_mapping({"nodes": nodes, "outputs": ["n0", "n1", "n2"]}, **RULES)
    ok = Cell.from_mapping({"nodes": nodes, "outputs": ["n2", "n1"]}, **RULES)
    assert ok == cell(nodes)


def test_hand_built_graph_without_op_is_rejected():
    g = nx.DiGraph()
    g.add_edge("in0", "n0", op="conv_3x3")
    g.add_edge("in1", "n0")
    with pytest.raises(InvalidArchitectureError, match="edge in1 -> n0 has no op"):
        Cell.from_graph(g, num_nodes=1, inputs_per_node=2, ops=("conv_3x3",))


GOLDEN = {
    "normal": {"nodes": {"n0": [["in0", "conv_3x3"], ["in1", "identity"]],
                         "n1": [["in0", "max_pool_3x3"], ["n0", "conv_1x1"]],
                         "n2": [["n0", "avg_pool_3x3"], ["n1", "identity"]],
                         "n3": [["in1", "conv_1x3_3x1"], ["n2", "conv_3x3"]],
                         "n4": [["n2", "identity"], ["n3", "max_pool_2x2"]]}},
    "reduce": {"nodes": {"n0": [["in0", "conv_1x1"], ["in1", "identity"]],
                         "n1": [["in0", "avg_pool_2x2"], ["in1", "conv_1x7_7x1"]],
                         "n2": [["n0", "max_pool_5x5"], ["n1", "identity"]],
                         "n3": [["in1", "conv_3x3"], ["n1", "avg_pool_5x5"]],
                         "n4": [["in0", "identity"], ["n2", "conv_1x1"]]}},
}
#: The hash format is part of the study database and exported files: changing it breaks them.
GOLDEN_HASH = "0a148ea3316708e4b4bca4304d0bcfe9c5b35e6ca138cb3c5c71f175081af99a"


def _golden_hash() -> str:
    return get_space("gtn-nas").architecture_from_mapping(GOLDEN).hash


def test_hash_is_stable_across_processes_and_hash_seeds():
    here = _golden_hash()
    code = (
        "from tests.test_cell import _golden_hash; import numpy as np;"
        "from search_spaces.presets import get_space;"
        "print(_golden_hash()); print(get_space('gtn-nas').sample(np.random.default_rng(11)).hash)"
    )
    outs = []
    for seed in ("1", "999"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
        outs.append(res.stdout.split())
    import numpy as np

    local_sample = get_space("gtn-nas").sample(np.random.default_rng(11)).hash
    assert outs[0] == outs[1] == [here, local_sample]


def test_golden_hash_unchanged():
    assert len(_golden_hash()) == 64
    assert _golden_hash() == GOLDEN_HASH


def test_architecture_value_object():
    space = get_space("gtn-nas")
    arch = space.architecture_from_mapping(GOLDEN)
    assert isinstance(arch, Architecture)
    assert arch == space.architecture_from_mapping(GOLDEN)
    assert arch.replace("normal", arch.reduce).normal == arch.reduce
    assert arch.short_hash == arch.hash[:12]
    with pytest.raises(InvalidArchitectureError, match="'reduce' cell is missing"):
        space.architecture_from_mapping({"normal": GOLDEN["normal"]})


# -- repeated inputs (issue 12, part 2) ---------------------------------------------------------
def test_a_node_may_take_the_same_input_twice():
    nodes = {"n0": [["in0", "max_pool_3x3"], ["in0", "max_pool_3x3"]],  # NASNet-A: one pool on in0, twice
             "n1": [["n0", "identity"], ["n0", "conv_3x3"]],
             "n2": [["in1", "conv_3x3"], ["n1", "identity"]]}
    c = cell(nodes)
    assert c.nodes[0] == ((0, "max_pool_3x3"), (0, "max_pool_3x3"))
    g = c.graph
    assert isinstance(g, nx.MultiDiGraph) and nx.is_frozen(g)
    assert g.number_of_edges("in0", "n0") == 2 and g.number_of_edges("n0", "n1") == 2
    assert sorted(d["op"] for d in g.get_edge_data("n0", "n1").values()) == ["conv_3x3", "identity"]
    assert Cell.from_graph(g, **RULES) == c  # the graph round-trips, parallel edges included
    # the same cell with the repeated node's inputs listed the other way round: one cell, one hash
    swapped = cell({**nodes, "n1": [["n0", "conv_3x3"], ["n0", "identity"]]})
    assert swapped == c and swapped.key == c.key
    assert cell({**nodes, "n1": [["n0", "identity"], ["in0", "conv_3x3"]]}) != c
    assert "n0 = max_pool_3x3(in0) + max_pool_3x3(in0)" in c.describe()


def test_repeated_inputs_in_a_hand_built_multidigraph():
    g = nx.MultiDiGraph()
    g.add_edge("in1", "n0", op="conv_3x3")
    g.add_edge("in1", "n0", op="identity")
    c = Cell.from_graph(g, num_nodes=1, inputs_per_node=2, ops=("conv_3x3", "identity"))
    assert c.nodes == (((1, "conv_3x3"), (1, "identity")),)


def test_forbidding_repeated_inputs_refuses_with_one_line():
    nodes = {"n0": [["in0", "conv_3x3"], ["in0", "identity"]], "n1": [["in0", "identity"], ["n0", "identity"]],
             "n2": [["in1", "conv_3x3"], ["in0", "identity"]]}
    with pytest.raises(InvalidArchitectureError) as info:
        cell(nodes, allow_repeated_inputs=False, where="x.yaml: architecture.normal")
    message = str(info.value)
    assert message.startswith("x.yaml: architecture.normal: input 'in0' is listed twice for 'n0'")
    assert "allow_repeated_inputs" in message and "\n" not in message
    with pytest.raises(InvalidArchitectureError, match="listed twice"):
        get_space("darts").cell_from_mapping({"nodes": {"n0": [["in0", "identity"], ["in0", "identity"]],
                                                        "n1": [["in0", "identity"], ["n0", "identity"]],
                                                        "n2": [["in0", "identity"], ["n0", "identity"]],
                                                        "n3": [["in0", "identity"], ["n0", "identity"]]}})


#: Hashes computed by gtn-search 913e3a1, before cells could repeat inputs: the hash of every cell
#: without repeated inputs must never change (studies and exported files key trials by it), and
#: the spaces that forbid repeats must sample exactly as before.
PINNED_SAMPLES = {
    "darts": ["f4e2c4a90588e2256ee188ff63e3c2f3b42a3e65206b63677ccf0a3f0731028e",
              "0bd9f053dcffbf292d9942ae7c3c278a718a2340d469fed8136319da3b0d8dfe"],
    "gtn-nas": ["71762263e6b5c289e534c19b630b189b7800c3594501e1cce300d97730884a41",
                "9aeb599f16dae196aa54edfe10850614f1e72f083b322ca4a03499dcd989212c"],
}
OLD_STUDIES = sorted((REPO / "benchmarks" / "results" / "compare_fashion" / "searches").glob("*.db"))


@pytest.mark.parametrize("name", sorted(PINNED_SAMPLES))
def test_hashes_and_distinct_input_sampling_are_unchanged(name):
    import numpy as np

    space = get_space(name, allow_repeated_inputs=False)
    assert [space.sample(np.random.default_rng(s)).hash for s in range(2)] == PINNED_SAMPLES[name]


def test_study_databases_written_before_repeated_inputs_load_with_their_hashes(tmp_path):
    """Every trial of the shipped benchmark studies parses and hashes to the hash stored with it."""
    import json
    import shutil

    from gtn_search.storage import Study

    assert len(OLD_STUDIES) >= 12
    checked = 0
    for path in OLD_STUDIES:
        copy = tmp_path / path.name
        shutil.copy(path, copy)
        study = Study(str(copy), create=False)
        try:
            space = get_space(json.loads(study.get_meta("identity"))["space"])
            for t in study.trials():
                assert space.architecture_from_mapping(t.genotype).hash == t.hash
                checked += 1
        finally:
            study.close()
    assert checked >= 100
