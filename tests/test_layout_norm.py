"""Few-channel batch statistics of channels-last networks are computed by the NCHW kernel
(``search_spaces.layout.BatchNorm2d``): same values as that kernel, channels-last in and out."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import search_spaces.layout as layout
from search_spaces.blueprint import blueprint_preset
from search_spaces.layout import BatchNorm2d, use_channels_last
from search_spaces.network import build
from search_spaces.presets import get_space
from search_spaces.replicas import stack_replicas
from tests.dispatch_watch import watch_ops

CL = torch.channels_last
LEARNER = {"norm": "batch_stats", "weight_norm": True, "activation": "leaky_relu", "init": "kaiming", "num_classes": 10}


def _norm(channels: int, **kwargs) -> tuple[BatchNorm2d, nn.BatchNorm2d]:  # type: ignore[no-untyped-def]
    torch.manual_seed(channels)
    ours = BatchNorm2d(channels, **kwargs)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.uniform_(-0.5, 0.5)
    plain = nn.BatchNorm2d(channels, **kwargs)
    plain.load_state_dict(ours.state_dict())
    return ours, plain


def _out_and_grads(module: nn.Module, x: torch.Tensor, second_order: bool = False) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    out = module(x)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    grads = torch.autograd.grad(loss, [x, module.weight, module.bias], create_graph=second_order)
    if second_order:
        grads = torch.autograd.grad(sum((g * g).sum() for g in grads), [x, module.weight, module.bias],
                                    allow_unused=True, materialize_grads=True)
    return [out.detach(), *grads]


@pytest.mark.parametrize("channels", [4, 8])
def test_a_few_channel_norm_is_the_nchw_kernel_in_and_out_channels_last(channels):
    ours, plain = _norm(channels, track_running_stats=False)
    x = torch.randn(32, channels, 14, 14).contiguous(memory_format=CL)
    got = _out_and_grads(ours, x)
    nchw = _out_and_grads(plain, x.contiguous())
    assert got[0].is_contiguous(memory_format=CL) and not got[0].is_contiguous()
    assert got[1].is_contiguous(memory_format=CL)  # the input's gradient goes back channels-last
    for g, r in zip(got, nchw):
        assert torch.equal(g, r)  # bit for bit what the NCHW kernel computes
    # and within float rounding of the channels-last kernel it replaces
    for g, r in zip(got, _out_and_grads(plain, x)):
        assert float((g - r).abs().max()) <= 1e-4 * float(r.abs().max())


def test_second_order_gradients_through_the_detour_match_float64():
    ours, plain = _norm(4, track_running_stats=False)
    x = torch.randn(16, 4, 14, 14)
    got = _out_and_grads(ours, x.contiguous(memory_format=CL), second_order=True)
    reference = _out_and_grads(copy.deepcopy(plain).double(), x.double(), second_order=True)
    for g, r in zip(got, reference):
        assert float((g.double() - r).abs().max()) <= 1e-4 * float(r.abs().max())


def test_wide_maps_running_statistics_and_the_nchw_layout_take_the_plain_kernel():
    ours, plain = _norm(16, track_running_stats=False)
    x = torch.randn(8, 16, 7, 7).contiguous(memory_format=CL)
    assert torch.equal(ours(x), plain(x))  # 16 channels: channels-last is the faster kernel there
    ours, plain = _norm(4)
    x = torch.randn(8, 4, 7, 7).contiguous(memory_format=CL)
    ours(x), plain(x)  # one training step of running statistics each
    ours.eval(), plain.eval()
    assert torch.equal(ours(x), plain(x))  # inference with running statistics: elementwise, no detour
    ours.train(), plain.train()
    with use_channels_last(False):  # the code of before, bit for bit, whatever layout a tensor has
        assert torch.equal(ours(x), plain(x))


def test_off_switch_restores_the_channels_last_kernel(monkeypatch):
    ours, plain = _norm(4, track_running_stats=False)
    x = torch.randn(8, 4, 7, 7).contiguous(memory_format=CL)
    monkeypatch.setattr(layout, "nchw_norm_max_channels", 0)
    assert torch.equal(ours(x), plain(x))


def _norm_inputs(step) -> list[tuple[int, bool]]:  # type: ignore[no-untyped-def]
    """(channels, channels-last) of every map a batch-statistics kernel normalised during ``step``."""
    norms: list[tuple[int, bool]] = []

    def seen(name: str, args: tuple) -> None:
        if name in ("native_batch_norm", "_native_batch_norm_legit") and args[0].dim() == 4:
            norms.append((args[0].shape[1], layout.is_channels_last(args[0])))

    watch_ops(step, seen)
    return norms


@pytest.mark.parametrize("preset,style", [("mnist-tiny", LEARNER), ("mnist-search", {"num_classes": 10})],
                         ids=["4-channel-learner", "mnist-search"])
def test_built_networks_normalise_few_channels_in_nchw_within_rounding_of_before(preset, style, monkeypatch):
    space, rng = get_space("gtn-nas"), np.random.default_rng(5)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
    for _ in range(2):
        net32 = build(space.sample(rng), blueprint_preset(preset).model_copy(update=style), seed=0)
        results = {}
        for dtype in (torch.float32, torch.float64):
            net = copy.deepcopy(net32).to(dtype)
            params = list(net.parameters())

            def step() -> list[torch.Tensor]:
                loss = net.training_loss(x.to(dtype), y)
                return [loss.detach(), *torch.autograd.grad(loss, params)]

            monkeypatch.setattr(layout, "nchw_norm_max_channels", 8)
            seen = _norm_inputs(step)
            assert any(c <= 8 for c, _ in seen)
            assert not any(c <= 8 and cl for c, cl in seen)  # no few-channel map met the channels-last kernel
            assert any(c > 8 and cl for c, cl in seen) or preset == "mnist-tiny"  # wider ones still do
            detour = step()
            monkeypatch.setattr(layout, "nchw_norm_max_channels", 0)
            assert any(c <= 8 and cl for c, cl in _norm_inputs(step))
            results[dtype] = (detour, step())
        # the same arithmetic: in float64 the two kernels agree to rounding of float64 ...
        detour, before = results[torch.float64]
        scale = max(float(b.abs().max()) for b in before)
        assert all(float((a - b).abs().max()) <= 1e-10 * scale for a, b in zip(detour, before))
        # ... and in float32 to what float32 rounding grows into through BatchNorm's backward pass
        detour, before = results[torch.float32]
        scale = max(float(b.abs().max()) for b in before)
        assert all(float((a - b).abs().max()) <= 1e-3 * scale for a, b in zip(detour, before))


def test_stacked_replicas_keep_the_layer():
    arch = get_space("gtn-nas").sample(np.random.default_rng(0))
    bp = blueprint_preset("mnist-tiny").model_copy(update=LEARNER)
    nets = [build(arch, bp, seed=s) for s in (0, 1)]
    assert all(type(m) is BatchNorm2d for m in nets[0].modules() if isinstance(m, nn.BatchNorm2d))
    norms = [m for m in stack_replicas(nets).modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(type(m) is BatchNorm2d and m.num_features % 2 == 0 for m in norms)
    assert not any(m.track_running_stats for m in norms)


def test_batch_statistics_of_the_detour_are_each_channel_s_own():
    """A stacked pair of 4-channel replicas (8 channels, under the limit) still normalises each
    channel with its own statistics: the detour is per channel like the kernel it replaces."""
    ours, _ = _norm(8, track_running_stats=False)
    x = torch.randn(8, 8, 6, 6).contiguous(memory_format=CL)
    got = ours(x).detach()
    xd = x.double()
    mean, var = xd.mean((0, 2, 3), keepdim=True), xd.var((0, 2, 3), unbiased=False, keepdim=True)
    ref = (xd - mean) / torch.sqrt(var + ours.eps) * ours.weight.detach().double().view(1, -1, 1, 1) \
        + ours.bias.detach().double().view(1, -1, 1, 1)
    assert float((got.double() - ref).abs().max()) < 1e-5
