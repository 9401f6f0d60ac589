"""A step sweep (scores after 1, 2, ... steps) from one training is exactly the separate evaluations:
same scores bit for bit, same costs, same failures, each step count with its own seconds."""

from __future__ import annotations

import numpy as np
import pytest

from gtn_search.evaluators import make_evaluator
from gtn_search.evaluators.base import EvalResult, Evaluator
from search_spaces.blueprint import Blueprint
from search_spaces.presets import get_space

TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}
REAL = {"dataset": "mnist", "batch_size": 16, "val_size": 200, "lr": 0.05}


def _same(a: EvalResult, b: EvalResult) -> None:
    assert (a.status, a.score, a.error) == (b.status, b.score, b.error)
    assert (a.sgd_steps, a.images_seen, a.train_flops, a.eval_flops, a.params) == \
        (b.sgd_steps, b.images_seen, b.train_flops, b.eval_flops, b.params)
    assert a.metrics == b.metrics


def _separately(evaluator: Evaluator, arch, bp, seed: int, steps: list[int]) -> dict[int, EvalResult]:  # type: ignore[no-untyped-def]
    return {s: evaluator.with_steps(s).evaluate(arch, bp, seed) for s in steps}


@pytest.mark.parametrize("options", [
    pytest.param({**REAL, "steps": 6}, id="real"),
    pytest.param({**REAL, "steps": 6, "seeds": 2}, id="real-2-seeds-stacked"),
    pytest.param({**REAL, "steps": 6, "seeds": 2, "batch_seeds": False}, id="real-2-seeds-one-by-one"),
    pytest.param({**REAL, "steps": 6, "style": "blueprint", "augment": "crop_flip"}, id="real-blueprint-style"),
])
def test_a_real_data_sweep_is_the_separate_trainings(options, mnist_root):
    arch = get_space("gtn-nas").sample(np.random.default_rng(2))
    bp = Blueprint.from_mapping(TINY_BP)
    evaluator = make_evaluator("real", options, str(mnist_root))
    assert evaluator.can_sweep()
    last = options["steps"]
    steps = [1, last // 2, last]
    swept = evaluator.evaluate_sweep(arch, bp, 7, steps)
    assert sorted(swept) == steps and all(r.ok for r in swept.values())
    for s, separate in _separately(evaluator, arch, bp, 7, steps).items():
        _same(swept[s], separate)
    assert swept[1].score != swept[last].score  # it did train in between
    assert 0 < swept[1].wall_seconds < swept[last].wall_seconds


def test_a_gtn_sweep_is_the_separate_trainings_with_one_or_two_seeds(mnist_root, tiny_teaching_set):
    arch = get_space("gtn-nas").sample(np.random.default_rng(3))
    bp = Blueprint.from_mapping(TINY_BP)
    for seeds in (1, 2):
        evaluator = make_evaluator("gtn", {"teaching_set": str(tiny_teaching_set), "val_size": 200, "seeds": seeds},
                                   str(mnist_root))
        assert evaluator.can_sweep()
        swept = evaluator.evaluate_sweep(arch, bp, 4, [3, 1, 2])  # order and the limit come from the teaching set
        assert sorted(swept) == [1, 2, 3]
        for s, separate in _separately(evaluator, arch, bp, 4, [1, 2, 3]).items():
            assert separate.ok
            _same(swept[s], separate)
        assert len({r.score for r in swept.values()}) > 1


def test_a_sweep_that_diverges_keeps_what_it_scored_before(mnist_root):
    """The same step counts fail as when run separately, with the same reason; earlier ones are kept."""
    arch = get_space("gtn-nas").sample(np.random.default_rng(2))
    bp = Blueprint.from_mapping(TINY_BP)
    evaluator = make_evaluator("real", {**REAL, "steps": 8, "lr": 1e12, "momentum": 0.0}, str(mnist_root))
    swept = evaluator.evaluate_sweep(arch, bp, 7, [1, 4, 8])
    separate = _separately(evaluator, arch, bp, 7, [1, 4, 8])
    assert [r.status for r in swept.values()] == [r.status for r in separate.values()] == ["ok", "failed", "failed"]
    assert "NaN/inf" in swept[4].error
    for s in (1, 4, 8):
        _same(swept[s], separate[s])


def test_a_cosine_schedule_or_epochs_is_not_swept_in_one_training_but_gives_the_same_results(mnist_root):
    arch = get_space("gtn-nas").sample(np.random.default_rng(2))
    bp = Blueprint.from_mapping(TINY_BP)
    cosine = make_evaluator("real", {**REAL, "steps": 4, "schedule": "cosine"}, str(mnist_root))
    assert not cosine.can_sweep()
    assert not make_evaluator("real", {**REAL, "epochs": 0.01}, str(mnist_root)).can_sweep()
    swept = cosine.evaluate_sweep(arch, bp, 7, [2, 4])
    for s, separate in _separately(cosine, arch, bp, 7, [2, 4]).items():
        _same(swept[s], separate)
    assert cosine.config.steps == 4 and cosine.describe()["options"]["steps"] == 4  # with_steps copies


def test_sweep_steps_beyond_the_evaluator_are_refused(mnist_root):
    evaluator = make_evaluator("real", {**REAL, "steps": 4}, str(mnist_root))
    arch = get_space("gtn-nas").sample(np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"sweep steps must be in \[1, 4\]"):
        evaluator.evaluate_sweep(arch, Blueprint.from_mapping(TINY_BP), 7, [2, 8])
