"""Scoring K initialisations of a candidate (``seeds: K``): mean score, summed cost, per-seed metrics."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch

from gtn_search.evaluators import make_evaluator
from gtn_search.seeding import derive_seed
from search_spaces.blueprint import Blueprint
from search_spaces.presets import get_space

TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}


@pytest.mark.parametrize(("name", "batched"), [("real", False), ("gtn", False), ("naswot", False),
                                              ("real", True), ("gtn", True)])
def test_k_seeds_average_k_single_seed_evaluations(name, batched, mnist_root, tiny_teaching_set):
    """One by one (``batch_seeds: false``) the seeds are exactly K single-seed evaluations; batched
    (stacked side by side, the default) the same up to float rounding (here: the same accuracies)."""
    options = {"real": {"dataset": "mnist", "steps": 3, "batch_size": 16, "val_size": 200, "batch_seeds": batched},
               "gtn": {"teaching_set": str(tiny_teaching_set), "val_size": 200, "batch_seeds": batched},
               "naswot": {"dataset": "mnist", "batch_size": 16}}[name]
    arch = get_space("gtn-nas").sample(np.random.default_rng(3))
    bp = Blueprint.from_mapping(TINY_BP)
    single = make_evaluator(name, options, str(mnist_root))
    three = make_evaluator(name, {**options, "seeds": 3}, str(mnist_root))
    seeds = [11, derive_seed(11, "replicate", 1), derive_seed(11, "replicate", 2)]
    assert three.replicate_seeds(11) == seeds and single.replicate_seeds(11) == [11]
    runs = [single.evaluate(arch, bp, s) for s in seeds]
    combined = three.evaluate(arch, bp, 11)
    assert combined.ok and all(r.ok for r in runs)
    assert combined.metrics["seed_scores"] == [r.score for r in runs]
    assert combined.score == pytest.approx(statistics.fmean(r.score for r in runs), abs=1e-12)
    assert combined.metrics["score_std"] == pytest.approx(statistics.stdev(r.score for r in runs))
    assert combined.train_flops == pytest.approx(sum(r.train_flops for r in runs))
    assert combined.eval_flops == pytest.approx(sum(r.eval_flops for r in runs))
    assert combined.sgd_steps == sum(r.sgd_steps for r in runs)
    assert combined.metrics.get("seeds_batched", False) is batched
    assert single.evaluate(arch, bp, 11).score == runs[0].score  # seeds: 1 is the plain evaluation


def test_the_default_seed_count_leaves_the_evaluator_description_unchanged(tiny_teaching_set):
    """Comparison stores and studies are keyed by the description: the new option must not re-key them."""
    one = make_evaluator("gtn", {"teaching_set": str(tiny_teaching_set)})
    assert "seeds" not in one.describe()["options"]
    assert make_evaluator("gtn", {"teaching_set": str(tiny_teaching_set), "seeds": 4}).describe()["options"]["seeds"] == 4


def test_seed_count_is_validated():
    from gtn_search.errors import ConfigError

    with pytest.raises(ConfigError, match="seeds"):
        make_evaluator("real", {"steps": 2, "seeds": 0})


def test_batched_real_data_seeds_train_each_replica_on_its_own_batches(monkeypatch, mnist_root):
    """Stacked, replica k must see exactly the (augmented) batches seed k sees alone."""
    from search_spaces.network import Network

    seen: list = []
    original = Network.training_loss

    def recording(self, x, y):  # type: ignore[no-untyped-def]
        seen.append((x.detach().clone(), y.clone()))
        return original(self, x, y)

    monkeypatch.setattr(Network, "training_loss", recording)
    options = {"dataset": "mnist", "steps": 4, "batch_size": 8, "val_size": 50, "augment": "crop_flip",
               "optimizer": "adam", "lr": 0.01, "style": "blueprint", "schedule": "cosine"}
    arch = get_space("gtn-nas").sample(np.random.default_rng(5))
    bp = Blueprint.from_mapping(TINY_BP)
    batched = make_evaluator("real", {**options, "seeds": 3}, str(mnist_root))
    result = batched.evaluate(arch, bp, 21)
    assert result.ok and result.metrics["seeds_batched"] is True
    stacked, seen[:] = list(seen), []
    alone = []
    for s in batched.replicate_seeds(21):
        single = make_evaluator("real", options, str(mnist_root)).evaluate(arch, bp, s)
        alone.append(single.score)
        runs, seen[:] = list(seen), []
        for step, (x, y) in enumerate(runs):
            k = len(alone) - 1
            assert torch.equal(stacked[step][0][:, k : k + 1], x) and torch.equal(stacked[step][1][:, k], y)
    assert result.metrics["seed_scores"] == pytest.approx(alone, abs=0.05)


def test_a_network_that_cannot_be_stacked_is_scored_seed_by_seed(monkeypatch, tiny_teaching_set, mnist_root):
    import gtn_search.evaluators.common as module
    from search_spaces.replicas import NotStackable

    def refuse(nets):  # type: ignore[no-untyped-def]
        raise NotStackable("module x.Custom is not known to stack")

    monkeypatch.setattr(module, "stack_replicas", refuse)
    arch = get_space("gtn-nas").sample(np.random.default_rng(3))
    bp = Blueprint.from_mapping(TINY_BP)
    options = {"teaching_set": str(tiny_teaching_set), "val_size": 200, "seeds": 2}
    fallback = make_evaluator("gtn", options, str(mnist_root)).evaluate(arch, bp, 4)
    one_by_one = make_evaluator("gtn", {**options, "batch_seeds": False}, str(mnist_root)).evaluate(arch, bp, 4)
    assert fallback.ok and "seeds_batched" not in fallback.metrics
    assert fallback.metrics["seed_scores"] == one_by_one.metrics["seed_scores"]


def test_batch_seeds_at_its_default_leaves_the_description_unchanged(tiny_teaching_set):
    options = {"teaching_set": str(tiny_teaching_set), "seeds": 4}
    assert "batch_seeds" not in make_evaluator("gtn", options).describe()["options"]
    assert make_evaluator("gtn", {**options, "batch_seeds": False}).describe()["options"]["batch_seeds"] is False
