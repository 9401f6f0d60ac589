"""Blueprint expander: random architectures build, run forward+backward, report params/FLOPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces.blueprint import Blueprint
from search_spaces.network import (
    MeanOnlyBatchNorm,
    build,
    count_flops,
    count_parameters,
    network_cost,
)
from search_spaces.presets import get_space

torch.set_num_threads(1)
SHAPES = [(1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("space_name", ["gtn-nas", "gtn-nas-extended", "darts"])
@pytest.mark.parametrize("shape", SHAPES)
def test_random_architectures_build_and_train_one_step(space_name, shape):
    space = get_space(space_name)
    rng = np.random.default_rng(hash(space_name) % 1000)
    bp = Blueprint(input_shape=shape, channels=4, stages=3, cells_per_stage=1)
    for _ in range(4):
        arch = space.sample(rng)
        net = build(arch, bp, seed=0)
        x = torch.randn(3, *shape)
        logits = net(x)
        assert logits.shape == (3, 10) and torch.isfinite(logits).all()
        nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        cost = network_cost(net, bp)
        assert cost.params == count_parameters(net) > 0 and cost.forward_flops > 0


def test_odd_resolutions_and_four_stages():
    arch = get_space("gtn-nas").sample(np.random.default_rng(2))
    bp = Blueprint(input_shape=(1, 27, 27), channels=4, stages=4, cells_per_stage=1)
    assert build(arch, bp)(torch.randn(2, 1, 27, 27)).shape == (2, 10)


def test_every_op_keeps_shape_contract():
    from gtn_search.registry import OPS

    x = torch.randn(2, 6, 7, 7)
    for name in OPS.names():
        for stride in (1, 2):
            y = OPS.get(name)(6, 6, stride)(x)
            assert y.shape == (2, 6, 4 if stride == 2 else 7, 4 if stride == 2 else 7), (name, stride)


def test_seeded_build_is_deterministic_and_flops_grow_with_width():
    arch = get_space("gtn-nas").sample(np.random.default_rng(4))
    small, big = Blueprint(channels=4, cells_per_stage=1), Blueprint(channels=8, cells_per_stage=1)
    a, b = build(arch, small, seed=5), build(arch, small, seed=5)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    state = torch.random.get_rng_state()
    build(arch, small, seed=6)
    assert torch.equal(state, torch.random.get_rng_state())  # seeded builds leave the global RNG alone
    assert count_flops(build(arch, big), big.input_shape) > 2 * count_flops(a, small.input_shape)
    assert count_parameters(build(arch, big)) > count_parameters(a)


def test_flops_of_a_known_network():
    # one 3x3 conv 1->4 on 8x8 with padding: 4*8*8 outputs x 9 MACs x 2 FLOPs
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    assert count_flops(conv, (1, 8, 8)) == 2 * 4 * 8 * 8 * 9


def test_learner_style_uses_weight_norm_batch_stats_and_leaky_relu():
    arch = get_space("gtn-nas").sample(np.random.default_rng(0))
    bp = Blueprint(channels=4, cells_per_stage=1).for_learner()
    net = build(arch, bp, seed=0)
    names = [n for n, _ in net.named_parameters()]
    assert any("parametrizations.weight.original0" in n for n in names)
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.track_running_stats for m in bns)
    assert len(list(net.buffers())) == 0  # a pure function of its parameters (GTN inner loop)
    net.eval()
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(net(x), net(x))
    mean_only = build(arch, bp.model_copy(update={"norm": "mean_only"}), seed=0)
    assert any(isinstance(m, MeanOnlyBatchNorm) for m in mean_only.modules())


def test_auxiliary_head_and_drop_path():
    arch = get_space("gtn-nas").sample(np.random.default_rng(0))
    bp = Blueprint(channels=4, cells_per_stage=1, auxiliary_weight=0.4, drop_path=0.2)
    net = build(arch, bp, seed=0)
    net.set_drop_path(0.3)
    logits, aux = net(torch.randn(2, 1, 28, 28))
    assert logits.shape == aux.shape == (2, 10)
    net.eval()
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
