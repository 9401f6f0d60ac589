"""Strided 1x1 convolutions of cell networks give the right gradients in the channels-last layout.

oneDNN's channels-last backward-weights kernel for strided 1x1 convolutions computed wrong weight
gradients (relative error 0.3-1.0) for 4 input channels on an AMD EPYC of family 25 and corrupted
the heap; ``search_spaces.layout.Conv2d`` subsamples first there. These tests compare every gradient
with a float64 NCHW computation of the same layer, on the shapes of 4-channel NAS learners.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces.blueprint import blueprint_preset
from search_spaces.layout import Conv2d, use_channels_last
from search_spaces.network import build
from search_spaces.ops import FactorizedReduce, ReLUConvBN
from search_spaces.presets import get_space
from search_spaces.replicas import stack_replicas
from tests.dispatch_watch import watch_ops


def _gradients(module: nn.Module, x: torch.Tensor, second_order: bool) -> list[torch.Tensor]:
    """Gradients of a loss of ``module(x)`` w.r.t. the input and parameters (and, with
    ``second_order``, of the squared gradient norm, as a meta-gradient through an SGD step needs)."""
    x = x.clone().requires_grad_()
    params = list(module.parameters())
    out = module(x)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    grads = torch.autograd.grad(loss, [x, *params], create_graph=second_order)
    if not second_order:
        return list(grads)
    return list(torch.autograd.grad(sum((g * g).sum() for g in grads), [x, *params], allow_unused=True,
                                    materialize_grads=True))


@pytest.mark.parametrize("second_order", [False, True], ids=["first-order", "second-order"])
@pytest.mark.parametrize("batch,size", [(20, 8), (20, 14), (32, 14), (32, 28)])
@pytest.mark.parametrize("make", [lambda: FactorizedReduce(4, 8), lambda: ReLUConvBN(4, 8, 1, 2, 0)],
                         ids=["factorized-reduce", "conv-1x1-stride-2"])
def test_strided_pointwise_gradients_in_channels_last_match_nchw_float64(make, batch, size, second_order):
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(batch, 4, size, size)
    with use_channels_last(False):
        reference = _gradients(copy.deepcopy(layer).double(), x.double(), second_order)
    with use_channels_last(True):
        got = _gradients(layer, x.contiguous(memory_format=torch.channels_last), second_order)
    for g, r in zip(got, reference):
        scale = r.abs().max().item() + 1e-12
        assert (g.double() - r).abs().max().item() / scale < 1e-4


def test_the_layer_is_nn_conv2d_outside_channels_last_and_equal_inside():
    torch.manual_seed(1)
    conv = Conv2d(4, 6, 1, stride=2, bias=True)
    plain = nn.Conv2d(4, 6, 1, stride=2, bias=True)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(3, 4, 9, 9)
    with use_channels_last(False):
        assert torch.equal(conv(x), plain(x))  # the NCHW path is nn.Conv2d's own, bit for bit
    with use_channels_last(True):
        xc = x.contiguous(memory_format=torch.channels_last)
        assert torch.allclose(conv(xc), plain(xc), atol=1e-6)
        assert conv(xc).shape == (3, 6, 5, 5)


def test_stacked_replicas_keep_the_layer():
    arch = get_space("gtn-nas").sample(np.random.default_rng(0))
    bp = blueprint_preset("mnist-tiny")
    nets = [build(arch, bp, seed=s) for s in (0, 1)]
    kinds = {type(m).__name__ for m in stack_replicas(nets).modules() if isinstance(m, nn.Conv2d)
             and m.kernel_size == (1, 1) and m.stride != (1, 1)}
    assert kinds and all("Conv2d" in k for k in kinds)
    assert all(isinstance(m, Conv2d) for m in stack_replicas(nets).modules()
               if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1))


def _grad_layouts_seen(step) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """How many ReLU / pooling / BatchNorm backward calls got a gradient that is not channels-last."""
    watched = {"threshold_backward", "leaky_relu_backward", "max_pool2d_with_indices_backward",
               "avg_pool2d_backward", "native_batch_norm_backward"}
    bad: dict[str, int] = {}

    def seen(name: str, args: tuple) -> None:
        if name not in watched:
            return
        grad = args[0]
        if grad.dim() == 4 and grad.shape[1] > 1 and grad.shape[2] * grad.shape[3] > 1 \
                and not grad.is_contiguous(memory_format=torch.channels_last):
            bad[name] = bad.get(name, 0) + 1

    watch_ops(step, seen)
    return bad


@pytest.mark.parametrize("preset", ["mnist-search", "mnist-tiny"])
def test_backward_kernels_get_channels_last_gradients_and_the_numbers_stay_within_rounding(preset, monkeypatch):
    import search_spaces.layout as layout

    space, rng = get_space("gtn-nas"), np.random.default_rng(3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)
    seen_without = 0
    for _ in range(3):
        net = build(space.sample(rng), blueprint_preset(preset).model_copy(update={"num_classes": 10}), seed=0)
        params = list(net.parameters())

        def step() -> list[torch.Tensor]:
            loss = net.training_loss(x, y)
            return [loss.detach(), *torch.autograd.grad(loss, params)]

        assert _grad_layouts_seen(step) == {}
        converted = step()
        monkeypatch.setattr(layout, "convert_grads", False)
        seen_without += sum(_grad_layouts_seen(step).values())
        plain = step()
        monkeypatch.setattr(layout, "convert_grads", True)
        # float rounding: relative to the largest gradient entry (some gradients are zero but for rounding)
        scale = max(float(b.abs().max()) for b in plain)
        for a, b in zip(converted, plain):
            assert float((a - b).abs().max()) <= 1e-5 * scale
    assert seen_without > 0  # the cells sampled here do hit the slow layouts without the conversion

