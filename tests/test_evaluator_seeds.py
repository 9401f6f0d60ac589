"""Scoring K initialisations of a candidate (``seeds: K``): mean score, summed cost, per-seed metrics."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from gtn_search.evaluators import make_evaluator
from gtn_search.seeding import derive_seed
from search_spaces.blueprint import Blueprint
from search_spaces.presets import get_space

TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}


@pytest.mark.parametrize("name", ["real", "gtn", "naswot"])
def test_k_seeds_average_k_single_seed_evaluations(name, mnist_root, tiny_teaching_set):
    options = {"real": {"dataset": "mnist", "steps": 3, "batch_size": 16, "val_size": 200},
               "gtn": {"teaching_set": str(tiny_teaching_set), "val_size": 200},
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
