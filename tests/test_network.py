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
from search_spaces import ops
from search_spaces.layout import cat_channels, use_channels_last
from search_spaces.presets import get_space

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


def _plain_pool(pool, x):
    return pool(x)


#: the fast pooling path, kept before any test monkeypatches ``ops.channels_last_pool``
_FAST_POOL = ops.channels_last_pool


def _both_pooling_paths(monkeypatch, module, x0):
    """``(output, gradient, second-order gradient)`` of ``module(x0)``, with the fast pooling path
    and with plain pooling (meta-training differentiates through the inner loop, hence the second order)."""
    results = []
    for impl in (_FAST_POOL, _plain_pool):
        monkeypatch.setattr(ops, "channels_last_pool", impl)
        x = x0.clone().requires_grad_(True)
        y = module(x)
        (gx,) = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), x, create_graph=True)
        (ggx,) = torch.autograd.grad((gx * gx).sum(), x, allow_unused=True)
        results.append((y.detach(), gx.detach(), ggx))
    return results


def _assert_bitwise_equal(results, where):
    (y1, g1, gg1), (y2, g2, gg2) = results
    assert torch.equal(y1, y2) and torch.equal(g1, g2), where
    assert (gg1 is None and gg2 is None) or torch.equal(gg1, gg2), where


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_pooling_is_bitwise_equal_to_nchw_pooling(monkeypatch, kind, k, stride):
    """In the NCHW layout the fast pooling path changes no number: outputs, gradients and
    second-order gradients (meta-training differentiates through the inner loop) equal plain NCHW
    pooling bit for bit, also with ties (a pooled map has many equal neighbours) and with a 1x1
    projection."""
    monkeypatch.setattr("search_spaces.layout._channels_last", False)

    torch.manual_seed(k * 10 + stride)
    base = torch.randn(4, 6, 9, 9)
    inputs = {"random": base, "ties": torch.nn.functional.max_pool2d(base, 3, 1, 1)}
    for c_out in (6, 8):
        torch.manual_seed(0)
        module = ops.Pool(kind, 6, c_out, k, stride)
        for name, x0 in inputs.items():
            results = _both_pooling_paths(monkeypatch, module, x0)
            assert all(y.is_contiguous() and gx.is_contiguous() for y, gx, _ in results)
            _assert_bitwise_equal(results, (name, c_out))


def test_pool_fold_factor():
    from search_spaces.ops import pool_fold_factor

    assert pool_fold_factor(32, 4, 28, 1) == 8 and pool_fold_factor(96, 8, 28, 1) == 4
    assert pool_fold_factor(12, 8, 14, 1) == 4 and pool_fold_factor(6, 4, 14, 1) == 2
    assert pool_fold_factor(7, 4, 28, 1) == 1  # an odd batch cannot be paired
    assert pool_fold_factor(32, 4, 28, 2) == 1 and pool_fold_factor(32, 16, 28, 1) == 1  # measured slower
    assert pool_fold_factor(32, 4, 7, 1) == 1
    assert pool_fold_factor(16, 2, 28, 1) == 8 and pool_fold_factor(2, 4, 28, 1) == 1  # two folded images at least


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("shape", [(32, 4, 14), (12, 8, 16), (6, 4, 15), (4, 4, 14)])
def test_folded_channels_last_pooling_is_bitwise_equal_to_plain_pooling(monkeypatch, kind, k, shape):
    """Channels-last pooling of few-channel maps folds several images into the channels (wider
    vectors for the kernel); outputs, gradients and second-order gradients equal plain channels-last
    pooling bit for bit, also with ties, and the result stays channels-last."""
    n, c, h = shape
    assert ops.pool_fold_factor(n, c, h, 1) > 1
    torch.manual_seed(k)
    base = torch.randn(n, c, h, h).contiguous(memory_format=torch.channels_last)
    inputs = {"random": base, "ties": torch.nn.functional.max_pool2d(base, 3, 1, 1).relu()}
    torch.manual_seed(0)
    module = ops.Pool(kind, c, c, k, 1)
    for name, x0 in inputs.items():
        results = _both_pooling_paths(monkeypatch, module, x0)
        assert all(y.is_contiguous(memory_format=torch.channels_last) for y, _, _ in results)
        _assert_bitwise_equal(results, name)


def test_folded_pooling_changes_no_number_of_a_differentiable_unroll(monkeypatch):
    """A 2-channel NAS learner (so pools fold up to 8 images) trained by the differentiable inner
    loop: the same final parameters and the same meta-gradients, bit for bit, with and without folding."""
    from gtn_search.gtn.learners import NASLearnerSpec, make_learner
    from gtn_search.gtn.unroll import unroll

    real_factor = ops.pool_fold_factor
    spec = NASLearnerSpec.model_validate({"kind": "nas", "blueprint": {"channels": 2, "stages": 1, "cells_per_stage": 1,
                                                                      "stem_multiplier": 2}})
    folded = 0
    for seed in (0, 1, 3):
        outcomes = []
        for factor in (real_factor, lambda *args: 1):
            monkeypatch.setattr(ops, "pool_fold_factor", factor)
            learner, _ = make_learner(spec, (1, 28, 28), 10, seed)
            folded += factor is real_factor and any(isinstance(m, ops.Pool) for m in learner.modules())
            torch.manual_seed(1)
            images = torch.randn(2, 16, 1, 28, 28).requires_grad_()
            targets = torch.randint(0, 10, (2, 16))
            lr = torch.full((2,), 0.1, requires_grad=True)
            out = unroll(learner, images, targets, lr, torch.full((2,), 0.5), create_graph=True)
            grads = torch.autograd.grad(sum(p.square().sum() for p in out.params.values()), [images, lr])
            outcomes.append(([p.detach() for p in out.params.values()], grads))
        (p1, g1), (p2, g2) = outcomes
        assert all(torch.equal(a, b) for a, b in zip(p1, p2)) and all(torch.equal(a, b) for a, b in zip(g1, g2))
    assert folded >= 2  # the architectures above do pool


def test_training_through_pools_is_unchanged_by_the_channels_last_path(monkeypatch):
    """In the NCHW layout, a learner with pools trained by the GTN inner loop ends with the same
    parameters, and the meta-gradient into the synthetic images is the same, with and without the
    fast pooling path."""
    from gtn_search.gtn.unroll import unroll

    monkeypatch.setattr("search_spaces.layout._channels_last", False)

    def learner():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8, track_running_stats=False),
                             nn.LeakyReLU(0.1), ops.Pool("max", 8, 8, 3, 1), nn.Conv2d(8, 8, 3, padding=1),
                             ops.Pool("avg", 8, 8, 2, 2), ops.Pool("max", 8, 12, 2, 1), nn.Flatten(),
                             nn.Linear(12 * 5 * 5, 10))

    torch.manual_seed(1)
    images, targets = torch.randn(3, 16, 1, 9, 9), torch.randint(0, 10, (3, 16))
    lr, mom = torch.full((3,), 0.05), torch.full((3,), 0.5)
    outcomes = []
    for impl in (_FAST_POOL, _plain_pool):
        monkeypatch.setattr(ops, "channels_last_pool", impl)
        synthetic = images.clone().requires_grad_(True)
        out = unroll(learner(), synthetic, targets, lr, mom, create_graph=True)
        final = {n: p.detach() for n, p in out.params.items()}
        (meta_grad,) = torch.autograd.grad(sum(p.square().sum() for p in out.params.values()), synthetic)
        outcomes.append((final, meta_grad))
    (p1, m1), (p2, m2) = outcomes
    assert all(torch.equal(p1[n], p2[n]) for n in p1)
    assert torch.equal(m1, m2) and m1.abs().sum() > 0


# --- channels-last layout (search_spaces.layout) -------------------------------------------------
LEARNER_BP = {"input_shape": [1, 28, 28], "channels": 4, "stages": 2, "cells_per_stage": 1, "stem_multiplier": 2,
              "norm": "batch_stats", "weight_norm": True, "activation": "leaky_relu", "init": "kaiming"}


def test_built_networks_compute_channels_last_after_the_stem():
    from search_spaces.layout import is_channels_last, use_channels_last

    space = get_space("gtn-nas-extended")
    rng = np.random.default_rng(5)
    for _ in range(6):
        net = build(space.sample(rng), Blueprint.from_mapping(LEARNER_BP), seed=0)
        seen = []
        for cell in net.cells:
            cell.register_forward_hook(lambda m, i, out: seen.append(is_channels_last(out)))
        net(torch.randn(4, 1, 28, 28))
        assert seen and all(seen)
        seen.clear()
        with use_channels_last(False):
            net(torch.randn(4, 1, 28, 28))
        assert seen and not any(seen)


def test_channels_last_trains_like_nchw_within_float_tolerance():
    """The fast layout changes only the order of float sums: a forward pass agrees to ~1e-5, and
    after four inner steps (which amplify rounding differences, as a different thread count does)
    the logits and inner losses agree to about 1% and the (second-order, tiny) meta-gradients
    through the inner loop to a few %."""
    from gtn_search.gtn.unroll import logits_of, unroll
    from search_spaces.layout import use_channels_last

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm() / b.norm())

    space = get_space("gtn-nas")
    rng = np.random.default_rng(2)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(4, 16, 1, 28, 28, generator=g)
    targets = torch.randint(0, 10, (4, 16), generator=g)
    x_val = torch.randn(64, 1, 28, 28, generator=g)
    for _ in range(4):
        arch = space.sample(rng)
        runs = []
        for layout in (False, True):
            imgs = images.clone().requires_grad_(True)
            lr = torch.full((4,), 0.05, requires_grad=True)
            with use_channels_last(layout):
                net = build(arch, Blueprint.from_mapping(LEARNER_BP), seed=1)
                before = net(x_val).detach()
                res = unroll(net, imgs, targets, lr, torch.full((4,), 0.5), create_graph=True)
                logits = logits_of(net, res.params, x_val)
                logits.logsumexp(1).mean().backward()
            runs.append((before, res.inner_losses, logits.detach(), imgs.grad, lr.grad))
        (f0, l0, z0, gi0, gl0), (f1, l1, z1, gi1, gl1) = runs
        torch.testing.assert_close(f1, f0, rtol=1e-4, atol=1e-4)
        assert [float(v) for v in l1] == pytest.approx([float(v) for v in l0], rel=1e-3)
        assert rel(z1, z0) < 1e-2 and rel(gi1, gi0) < 5e-2 and rel(gl1, gl0) < 5e-2


def test_cells_with_an_unread_input_leave_no_parameter_without_gradient():
    """A node may take the same input twice, so a cell may read only in0 or only in1; the unread
    input is concatenated into the cell output, so no cell of the network is cut off."""
    space = get_space("gtn-nas")
    rng = np.random.default_rng(0)
    bp = Blueprint(input_shape=(1, 28, 28), channels=2, stages=2, cells_per_stage=1, stem_multiplier=1)
    seen = 0
    for _ in range(300):
        arch = space.sample(rng)
        unread = [{0, 1} - {s for node in c.nodes for s, _ in node} for c in (arch.normal, arch.reduce)]
        if not any(unread):
            continue
        seen += 1
        net = build(arch, bp, seed=0)
        assert [sorted(u) for u in unread] == [net.cells[0].unread_inputs, net.cells[1].unread_inputs]
        nn.functional.cross_entropy(net(torch.randn(2, 1, 28, 28)), torch.tensor([0, 1])).backward()
        assert all(p.grad is not None for p in net.parameters())
    assert seen >= 10


def _padded_factorized_reduce(m, x):
    """FactorizedReduce as DARTS writes it: the second branch reads the map shifted by one pixel,
    zero-padded at the bottom and right (the reference the fast path must equal)."""
    x = m.relu(x)
    shifted = torch.nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
    return m.bn(cat_channels([m.conv_a(x), m.conv_b(shifted)], m.replicas))


@pytest.mark.parametrize("channels_last_layout", [True, False])
@pytest.mark.parametrize("shape", [(12, 8, 28, 28), (6, 16, 14, 14), (4, 4, 7, 7), (3, 5, 9, 12)])
def test_factorized_reduce_equals_the_padded_reference_and_pads_no_even_map(channels_last_layout, shape):
    """On even maps the shifted branch only reads pixels (2i+1, 2j+1), never the zero padding, so it
    subsamples instead of padding and copying the whole map: outputs, gradients and second-order
    gradients equal those of the padded reference within float rounding (the 1x1 convolution runs on
    another input shape, so oneDNN may sum in another order). Odd maps, and every map in the NCHW
    layout (the code of before channels-last networks, kept bit for bit), still pad."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    n, c, h, w = shape
    torch.manual_seed(0)
    m = ops.FactorizedReduce(c, 2 * c)
    x0 = torch.randn(shape)
    with use_channels_last(channels_last_layout):
        if channels_last_layout:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        results = []
        for impl in (m, lambda x: _padded_factorized_reduce(m, x)):
            x = x0.clone().requires_grad_(True)
            y = impl(x)
            weights = torch.linspace(-1, 1, y.numel()).view_as(y)
            gx, ga, gb = torch.autograd.grad((y * weights).sum(), (x, m.conv_a.weight, m.conv_b.weight),
                                             create_graph=True)
            (ggx,) = torch.autograd.grad((gx * gx).sum() + (gb * gb).sum(), x)
            results.append([t.detach() for t in (y, gx, ga, gb, ggx)])
        for a, b in zip(*results):
            if h % 2 or w % 2 or not channels_last_layout:
                assert torch.equal(a, b), shape
            else:
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
        recorder = Ops()
        with recorder:
            m(x0.clone().requires_grad_(True)).sum().backward()
    assert ("constant_pad_nd" in recorder.names) == (h % 2 == 1 or w % 2 == 1 or not channels_last_layout)
