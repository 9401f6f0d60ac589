"""Training-memory estimates on the meta device, and networks that would not fit refused up front."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gtn_search.evaluators import make_evaluator
from search_spaces import memory
from search_spaces.blueprint import Blueprint, blueprint_preset
from search_spaces.memory import MemoryLimitError, check_fits, estimate_training_memory
from search_spaces.network import build
from search_spaces.presets import get_space

ARCH = get_space("gtn-nas").sample(np.random.default_rng(0))


def test_estimate_matches_the_built_network():
    bp = blueprint_preset("mnist-search")
    e64, e128 = estimate_training_memory(ARCH, bp, 64), estimate_training_memory(ARCH, bp, 128)
    module = build(ARCH, bp)
    assert e64.params == sum(p.numel() for p in module.parameters())
    assert e128.bytes - e64.bytes == 4 * 2 * 64 * e64.activations_per_image  # linear in the batch
    # at least every cell output of a real forward pass is kept for backward
    outputs = []
    hooks = [c.register_forward_hook(lambda m, i, o: outputs.append(o.numel())) for c in module.cells]
    module(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert sum(outputs) < e64.activations_per_image < 50 * sum(outputs)


def test_a_network_that_would_not_fit_is_refused_up_front():
    huge = Blueprint.from_mapping({"channels": 1024, "stages": 3, "cells_per_stage": 8, "input_shape": [3, 256, 256]})
    with pytest.raises(MemoryLimitError, match=r"would need about [0-9,.]+ GiB .* but 20\.0 GiB are available"):
        check_fits(ARCH, huge, 256, "final training", limit=20 * 1024**3)
    assert check_fits(ARCH, blueprint_preset("mnist-tiny"), 64, "x", limit=20 * 1024**3).gib < 1


def test_evaluators_record_the_refusal_and_final_training_stops(monkeypatch, tmp_path, mnist_root, capsys):
    monkeypatch.setattr(memory, "available_memory", lambda: 1024**2)  # pretend 1 MiB is free
    bp = blueprint_preset("mnist-tiny")
    result = make_evaluator("params", {"dataset": "mnist"}, str(mnist_root)).evaluate(ARCH, bp, seed=0)
    assert result.status == "failed" and "refused before training" in result.error and "GiB" in result.error
    from gtn_search.cli import main
    from search_spaces.yaml_format import ArchitectureRecord, save_architecture

    path = save_architecture(tmp_path / "a.yaml", ArchitectureRecord(ARCH, get_space("gtn-nas"), bp))
    assert main(["train", str(path), "--data-root", str(mnist_root), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: final training: training this network at batch 96 would need about")
