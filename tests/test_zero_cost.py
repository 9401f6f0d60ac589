"""Training-free proxy evaluators (NASWOT, jacob_cov, synflow, params, FLOPs), checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gtn_search.evaluators import make_evaluator
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from gtn_search.evaluators.zero_cost import jacob_cov_score, naswot_score, synflow_score
from search_spaces.blueprint import Blueprint
from search_spaces.network import MeanOnlyBatchNorm
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


def _bn_wn_net() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(
        weight_norm(nn.Conv2d(2, 3, 3, padding=1)), nn.BatchNorm2d(3, track_running_stats=False), nn.LeakyReLU(0.1),
        weight_norm(nn.Conv2d(3, 4, 3, padding=1)), MeanOnlyBatchNorm(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), weight_norm(nn.Linear(4, 3)),
    )


def test_synflow_is_the_reference_computation_with_norms_off_and_effective_weights():
    """As SamsungLabs/zero-cost-nas computes it: BN forward is the identity (bn=False), all parameters
    made positive, float64 ones input, and the sum of |w * dR/dw| over conv/linear weights, where w is
    the effective weight g v/||v|| of a weight-normalised layer (not g and v)."""
    net = _bn_wn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    conv1, conv2, lin = net[0], net[3], net[8]
    ws = [m.weight.detach().double().abs().requires_grad_(True) for m in (conv1, conv2, lin)]
    bs = [m.bias.detach().double().abs() for m in (conv1, conv2, lin)]
    h = F.leaky_relu(F.conv2d(torch.ones(1, 2, 5, 5, dtype=torch.float64), ws[0], bs[0], padding=1), 0.1)
    h = F.relu(F.conv2d(h, ws[1], bs[1], padding=1)).mean(dim=(2, 3))
    F.linear(h, ws[2], bs[2]).sum().backward()
    expected = sum(float((w.detach() * w.grad).abs().sum()) for w in ws)
    assert synflow_score(net, (2, 5, 5)) == pytest.approx(math.log1p(expected), rel=1e-12)
    # the scored network itself is untouched (signs, dtype, parametrisation)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert next(net.parameters()).dtype == torch.float32


def test_jacob_cov_matches_a_hand_computed_jacobian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randn(5, 4)
    w1, b1, w2 = (t.detach().double() for t in (net[0].weight, net[0].bias, net[2].weight))
    gate = ((x.double() @ w1.T + b1) > 0).double()  # relu' per image and hidden unit
    jac = (gate * w2.sum(0)) @ w1  # d sum(outputs) / d x, one row per image
    eig = np.linalg.eigvalsh(np.corrcoef(jac.numpy()))
    expected = -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5))
    assert jacob_cov_score(net, x) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("name", ["naswot", "jacob_cov", "synflow", "params", "flops"])
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
    elif name == "flops":
        assert [r.score for r in results] == [float(r.metrics["forward_flops"]) for r in results]
    else:
        assert all(r.eval_flops > 0 for r in results) and len({r.score for r in results}) == 3  # discriminates


def test_zero_cost_options_are_validated():
    from gtn_search.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        make_evaluator("naswot", {"batch_size": 1})
    with pytest.raises(ConfigError, match="style"):
        make_evaluator("synflow", {"style": "fancy"})
