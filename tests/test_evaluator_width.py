"""A wider learner for a proxy (``channels: C``): the candidate is trained at base width C instead of
the blueprint's, exactly as if the blueprint had said C."""

from __future__ import annotations

import numpy as np
import pytest

from gtn_search.errors import ConfigError
from gtn_search.evaluators import make_evaluator
from search_spaces.blueprint import Blueprint
from search_spaces.presets import get_space

TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}


@pytest.mark.parametrize("name", ["gtn", "real"])
def test_channels_option_trains_the_candidate_at_that_width(name, mnist_root, tiny_teaching_set):
    options = {"real": {"dataset": "mnist", "steps": 3, "batch_size": 16, "val_size": 200},
               "gtn": {"teaching_set": str(tiny_teaching_set), "val_size": 200}}[name]
    arch = get_space("gtn-nas").sample(np.random.default_rng(5))
    narrow = Blueprint.from_mapping(TINY_BP)
    wide = Blueprint.from_mapping({**TINY_BP, "channels": 6})
    widened = make_evaluator(name, {**options, "channels": 6}, str(mnist_root)).evaluate(arch, narrow, 3)
    as_blueprint = make_evaluator(name, options, str(mnist_root)).evaluate(arch, wide, 3)
    plain = make_evaluator(name, options, str(mnist_root)).evaluate(arch, narrow, 3)
    assert widened.ok and as_blueprint.ok and plain.ok
    assert widened.score == as_blueprint.score
    assert widened.params == as_blueprint.params > 3 * plain.params
    assert widened.train_flops == as_blueprint.train_flops > 3 * plain.train_flops


def test_channels_default_leaves_the_description_unchanged_and_is_validated(tiny_teaching_set):
    """Comparison stores and studies are keyed by the description: the new option must not re-key them."""
    options = {"teaching_set": str(tiny_teaching_set)}
    assert "channels" not in make_evaluator("gtn", options).describe()["options"]
    assert make_evaluator("gtn", {**options, "channels": 16}).describe()["options"]["channels"] == 16
    with pytest.raises(ConfigError, match="channels"):
        make_evaluator("real", {"steps": 2, "channels": 0})
