"""Training-free proxy evaluators: NASWOT, synflow and parameter count, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gtn_search.evaluators import make_evaluator
from gtn_search.evaluators.zero_cost import naswot_score, synflow_score
from search_spaces.blueprint import Blueprint
from search_spaces.presets import get_space

TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}


def test_naswot_matches_the_hand_computed_kernel():
    lin = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    net = nn.Sequential(lin, nn.ReLU())
    x = torch.tensor([[1.0, 1.0], [1.0, -2.0], [-1.0, -1.0]])
    # codes (pre-activation > 0): [1,1,1], [1,0,0], [0,0,0]; K[i,j] = units on which i and j agree
    k = torch.tensor([[3.0, 1.0, 0.0], [1.0, 3.0, 2.0], [0.0, 2.0, 3.0]], dtype=torch.float64)
    assert naswot_score(net, x) == pytest.approx(math.log(torch.linalg.det(k).item()))
    # identical codes for two images make the kernel singular: scored below any regular kernel
    assert naswot_score(net, torch.tensor([[1.0, 1.0], [2.0, 2.0], [-1.0, -1.0]])) < -1e5


def test_synflow_of_a_linear_chain_is_twice_its_output():
    # R = 1^T W2 W1 1 for positive weights; each layer's sum of theta * dR/dtheta equals R
    w1, w2 = torch.rand(4, 3) + 0.1, torch.rand(2, 4) + 0.1
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(-w1)  # signs are removed by the linearisation
        net[1].weight.copy_(w2)
    r = (w2.double() @ w1.double()).sum().item()
    assert synflow_score(net, (3,)) == pytest.approx(math.log1p(2 * r))


@pytest.mark.parametrize("name", ["naswot", "synflow", "params"])
def test_zero_cost_evaluators_score_candidates(name, mnist_root):
    space = get_space("gtn-nas")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(3)]
    bp = Blueprint.from_mapping(TINY_BP)
    ev = make_evaluator(name, {"dataset": "mnist", "batch_size": 16}, str(mnist_root))
    results = [ev.evaluate(a, bp, seed=1) for a in archs]
    assert all(r.ok and math.isfinite(r.score) and r.train_flops == 0 and r.sgd_steps == 0 for r in results)
    assert [ev.evaluate(a, bp, seed=1).score for a in archs] == [r.score for r in results]  # seeded
    if name == "params":
        assert [r.score for r in results] == [float(r.params) for r in results]
    else:
        assert all(r.eval_flops > 0 for r in results) and len({r.score for r in results}) == 3  # discriminates


def test_zero_cost_options_are_validated():
    from gtn_search.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        make_evaluator("naswot", {"batch_size": 1})
    with pytest.raises(ConfigError, match="style"):
        make_evaluator("synflow", {"style": "fancy"})
