"""YAML files: exact round trips, hand-written files, and every kind of malformed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gtn_search.errors import ConfigError, GTNSearchError
from search_spaces.blueprint import Blueprint, blueprint_preset
from search_spaces.presets import get_space
from search_spaces.yaml_format import (
    ArchitectureRecord,
    dump_architecture,
    dump_architectures,
    dump_blueprint,
    load_architecture,
    load_architectures,
    load_blueprint,
    save_architecture,
    save_architectures,
)

MALFORMED = sorted((Path(__file__).parent / "data" / "malformed").glob("*.yaml"))


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("name", ["gtn-nas", "darts"])
def test_round_trip_is_exact(tmp_path, name):
    space = get_space(name)
    rng = np.random.default_rng(3)
    bp = blueprint_preset("cifar10-final")
    for i in range(20):
        record = ArchitectureRecord(space.sample(rng), space, bp, {"score": 0.9123456789, "rank": i, "tags": ["a"]})
        path = save_architecture(tmp_path / f"a{i}.yaml", record)
        loaded = load_architecture(path)
        assert loaded == record
        assert dump_architecture(loaded) == path.read_text()
    records = [ArchitectureRecord(space.sample(rng), space, None) for _ in range(5)]
    path = save_architectures(tmp_path / "many.yaml", records)
    assert load_architectures(path) == records
    assert dump_architectures(load_architectures(path)) == path.read_text()


def test_blueprint_file_round_trip(tmp_path):
    bp = Blueprint(input_shape=(3, 32, 32), channels=20, weight_norm=True, norm="mean_only")
    path = tmp_path / "bp.yaml"
    path.write_text(dump_blueprint(bp))
    assert load_blueprint(path) == bp


def test_hand_written_file_with_preset_space_and_other_node_order(tmp_path):
    text = """\
format: gtn-search/architecture
version: 1
search_space: gtn-nas
architecture:
  normal:
    nodes:
      n0: [[in1, identity], [in0, conv_3x3]]
      n1: [[in0, max_pool_3x3], [n0, conv_1x1]]
      n2: [[n0, avg_pool_3x3], [n1, identity]]
      n3: [[in1, conv_1x3_3x1], [n2, conv_3x3]]
      n4: [[n2, identity], [n3, max_pool_2x2]]
  reduce:
    nodes:
      n0: [[in0, conv_3x3], [in1, identity]]
      n1: [[in0, max_pool_3x3], [n0, conv_1x1]]
      n2: [[n0, avg_pool_3x3], [n1, identity]]
      n3: [[in1, conv_1x3_3x1], [n2, conv_3x3]]
      n4: [[n2, identity], [n3, max_pool_2x2]]
"""
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    record = load_architecture(path)
    assert record.architecture.normal == record.architecture.reduce  # same cell, inputs listed differently
    assert record.blueprint is None and record.metadata == {}


def test_malformed_corpus_covers_many_kinds_of_mistakes():
    assert len(MALFORMED) >= 12


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_files_raise_one_clear_error(path):
    from search_spaces.yaml_format import validate_file

    with pytest.raises(GTNSearchError) as info:
        validate_file(path)
    message = str(info.value)
    assert expected_message(path) in message
    assert message.startswith(str(path))  # names the file
    assert "\n" not in message


def test_metadata_must_be_plain_data():
    space = get_space("gtn-nas")
    record = ArchitectureRecord(space.sample(np.random.default_rng(0)), space, None, {"x": object()})
    with pytest.raises(ConfigError, match="plain data"):
        dump_architecture(record)


def test_collection_needs_shared_space(tmp_path):
    a, b = get_space("gtn-nas"), get_space("gtn-nas-extended")
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="share one search space"):
        dump_architectures([ArchitectureRecord(a.sample(rng), a), ArchitectureRecord(a.sample(rng), b)])
    with pytest.raises(ConfigError, match="holds 2 architectures"):
        load_architecture(save_architectures(tmp_path / "two.yaml", [ArchitectureRecord(a.sample(rng), a)] * 2))


def test_repeated_inputs_round_trip_exactly(tmp_path):
    space = get_space("gtn-nas")
    arch = space.architecture_from_mapping({
        kind: {"nodes": {"n0": [["in0", "avg_pool_3x3"], ["in0", "avg_pool_3x3"]],
                         "n1": [["in1", "conv_3x3"], ["in0", "identity"]],
                         "n2": [["n0", "identity"], ["n0", "conv_1x1"]],
                         "n3": [["in1", "identity"], ["in1", "conv_1x7_7x1"]],
                         "n4": [["n1", "max_pool_3x3"], ["n2", "identity"]]}} for kind in ("normal", "reduce")})
    record = ArchitectureRecord(arch, space, blueprint_preset("mnist-tiny"), {"note": "repeats"})
    path = save_architecture(tmp_path / "rep.yaml", record)
    assert "n0: [[in0, avg_pool_3x3], [in0, avg_pool_3x3]]" in path.read_text()
    loaded = load_architecture(path)
    assert loaded == record and loaded.architecture.hash == arch.hash
    assert dump_architecture(loaded) == path.read_text()


OLD_FILES = sorted((Path(__file__).parent / "data" / "pre_repeated_inputs").glob("*.yaml"))


@pytest.mark.parametrize("path", OLD_FILES, ids=[p.stem for p in OLD_FILES])
def test_files_written_before_repeated_inputs_load_unchanged(path):
    """Collections written by gtn-search 913e3a1 (``space sample``) load with the hashes they
    recorded and are written back byte for byte (no allow_repeated_inputs line is added)."""
    import yaml

    records = load_architectures(path)
    recorded = [entry["hash"] for entry in yaml.safe_load(path.read_text())["architectures"]]
    assert [r.architecture.hash for r in records] == recorded
    assert dump_architectures(records) == path.read_text()
