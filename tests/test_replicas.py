"""K initialisations trained side by side as one stacked network (search_spaces.replicas)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gtn_search.gtn.unroll import evaluate, evaluate_replicas, unroll
from search_spaces.blueprint import Blueprint
from search_spaces.layout import cat_channels, use_channels_last
from search_spaces.network import build
from search_spaces.presets import get_space
from search_spaces.replicas import (
    NotStackable,
    replica_count,
    replica_cross_entropy,
    stack_inputs,
    stack_replicas,
    unstack_parameters,
)
from search_spaces.zoo import load_zoo_cell

LEARNER = {"norm": "batch_stats", "weight_norm": True, "activation": "leaky_relu", "init": "kaiming"}
TINY = {"input_shape": [1, 28, 28], "channels": 4, "stages": 2, "cells_per_stage": 1, "stem_multiplier": 2,
        "num_classes": 10}


def _archs(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [get_space("gtn-nas").sample(rng) for _ in range(n)] + [load_zoo_cell("darts-v2").architecture]


def _batch(steps: int = 3, n: int = 16, channels: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(steps, n, channels, 28, 28, generator=g), torch.randint(0, 10, (steps, n), generator=g)


def test_cat_channels_keeps_each_replica_s_channels_together():
    k = 3
    a = [torch.randn(2, 2, 5, 5) for _ in range(k)]  # replica r's part of tensor A
    b = [torch.randn(2, 3, 5, 5) for _ in range(k)]
    for channels_last in (True, False):
        with use_channels_last(channels_last):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            wide_a = torch.cat(a, 1).contiguous(memory_format=fmt)
            wide_b = torch.cat(b, 1).contiguous(memory_format=fmt)
            out = cat_channels([wide_a, wide_b], k)
            expected = torch.cat([torch.cat([a[r], b[r]], 1) for r in range(k)], 1)
            assert torch.equal(out, expected)
    assert torch.equal(cat_channels([a[0], b[0]]), torch.cat([a[0], b[0]], 1))  # one replica: plain cat


@pytest.mark.parametrize("style", ["learner", "mean_only", "batch"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_a_stacked_network_computes_what_each_replica_computes_alone(style, channels_last):
    # float32 rounding; in channels-last a replica alone normalises its 4 channels with the NCHW
    # kernel (search_spaces.layout.BatchNorm2d), the stacked network its 12 with the channels-last one
    extra = {"learner": LEARNER, "mean_only": {**LEARNER, "norm": "mean_only"}, "batch": {}}[style]
    bp = Blueprint.from_mapping({**TINY, **extra})
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with use_channels_last(channels_last):
        for arch in _archs(3):
            nets = [build(arch, bp, seed=s) for s in (5, 6, 7)]
            wide = stack_replicas(nets)
            assert replica_count(wide) == 3 and replica_count(nets[0]) == 1
            for train in (True, False):
                for m in [wide, *nets]:
                    m.train(train)
                expected = torch.stack([n(x) for n in nets], dim=1)
                out = wide(x)
                assert out.shape == (8, 3, 10)
                torch.testing.assert_close(out, expected, rtol=1e-4, atol=5e-5)
            # each replica its own images: the k-th channel group of the input
            xs = [torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(s)) for s in (2, 3, 4)]
            torch.testing.assert_close(wide(stack_inputs(xs)), torch.stack([n(xi) for n, xi in zip(nets, xs)], 1),
                                       rtol=1e-4, atol=5e-5)


def test_the_gtn_inner_loop_trains_every_replica_as_it_trains_alone():
    """In float64, where float rounding cannot hide a mix-up: stacked training equals separate training."""
    bp = Blueprint.from_mapping({**TINY, **LEARNER})
    images, targets = _batch(steps=3)
    images = images.double()
    lr, momentum = torch.full((3,), 0.05, dtype=torch.float64), torch.full((3,), 0.5, dtype=torch.float64)
    for arch in _archs(2, seed=4):
        nets = [build(arch, bp, seed=s).double() for s in (1, 2, 3)]
        wide = stack_replicas(nets)
        result = unroll(wide, images, targets, lr, momentum)
        solo = [unroll(n, images, targets, lr, momentum) for n in nets]
        for r, (mine, alone) in enumerate(zip(unstack_parameters(result.params, 3), solo)):
            assert mine.keys() == alone.params.keys()
            for name, value in alone.params.items():
                torch.testing.assert_close(mine[name], value, rtol=1e-9, atol=1e-11, msg=f"replica {r}: {name}")
        # the inner loss is the sum of the replicas' losses
        for t in range(3):
            assert float(result.inner_losses[t]) == pytest.approx(sum(float(s.inner_losses[t]) for s in solo), rel=1e-12)
        val_x, val_y = _batch(steps=1, n=40, seed=9)
        scores = evaluate_replicas(wide, result.params, val_x[0].double(), val_y[0], batch_size=40)
        for (acc, loss), alone, net in zip(scores, solo, nets):
            assert (acc, pytest.approx(loss, rel=1e-12)) == evaluate(net, alone.params, val_x[0].double(), val_y[0], 40)


def test_the_meta_gradient_flows_through_a_stacked_network():
    bp = Blueprint.from_mapping({**TINY, **LEARNER})
    arch = _archs(1)[0]
    images, targets = _batch(steps=2, n=8)
    images.requires_grad_(True)
    lr, momentum = torch.full((2,), 0.05), torch.full((2,), 0.5)
    nets = [build(arch, bp, seed=s) for s in (1, 2)]
    result = unroll(stack_replicas(nets), images, targets, lr, momentum, create_graph=True)
    val_x, val_y = _batch(steps=1, n=8, seed=3)
    from gtn_search.gtn.unroll import logits_of

    loss = replica_cross_entropy(logits_of(stack_replicas(nets), result.params, val_x[0]), val_y[0])
    (grad,) = torch.autograd.grad(loss, images)
    expected = torch.zeros_like(images)
    for net in nets:
        alone = unroll(net, images, targets, lr, momentum, create_graph=True)
        expected += torch.autograd.grad(nn.functional.cross_entropy(logits_of(net, alone.params, val_x[0]), val_y[0]),
                                        images)[0]
    torch.testing.assert_close(grad, expected, rtol=1e-3, atol=1e-6)


def test_replica_cross_entropy_is_the_sum_of_the_replicas_losses():
    logits = torch.randn(6, 3, 10)
    hard = torch.randint(0, 10, (6,))
    per = torch.randint(0, 10, (6, 3))
    soft = torch.softmax(torch.randn(6, 10), 1)
    ce = nn.functional.cross_entropy
    assert float(replica_cross_entropy(logits, hard)) == pytest.approx(sum(float(ce(logits[:, r], hard)) for r in range(3)))
    assert float(replica_cross_entropy(logits, per)) == pytest.approx(sum(float(ce(logits[:, r], per[:, r])) for r in range(3)))
    assert float(replica_cross_entropy(logits, soft)) == pytest.approx(sum(float(ce(logits[:, r], soft)) for r in range(3)))


def test_stacking_draws_no_random_numbers_and_leaves_the_replicas_untouched():
    bp = Blueprint.from_mapping({**TINY, **LEARNER})
    arch = _archs(1)[0]
    nets = [build(arch, bp, seed=s) for s in (1, 2)]
    before = [{n: t.clone() for n, t in net.state_dict().items()} for net in nets]
    torch.manual_seed(123)
    stack_replicas(nets)
    after_stack = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_stack)
    for net, state in zip(nets, before):
        assert all(torch.equal(net.state_dict()[n], t) for n, t in state.items())


def test_networks_that_cannot_be_stacked_are_refused_with_the_reason():
    bp = Blueprint.from_mapping({**TINY, **LEARNER})
    arch = _archs(1)[0]
    with pytest.raises(NotStackable, match="differ in structure"):
        stack_replicas([build(arch, bp, seed=1), build(_archs(2, seed=7)[1], bp, seed=2)])
    net = build(arch, bp, seed=1)
    net.set_drop_path(0.2)
    with pytest.raises(NotStackable, match="drop-path"):
        stack_replicas([net, net])
    aux = Blueprint.from_mapping({**TINY, "auxiliary_weight": 0.4})
    with pytest.raises(NotStackable, match="auxiliary"):
        stack_replicas([build(arch, aux, seed=1), build(arch, aux, seed=2)])
    odd = build(arch, bp, seed=1)
    odd.cells[0].edges[0] = nn.GELU()  # a module this file does not know
    with pytest.raises(NotStackable, match="GELU"):
        stack_replicas([odd, odd])
