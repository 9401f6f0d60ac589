"""Stride-1 max pooling outside autograd as a separable maximum (``search_spaces.ops.separable_max_pool``):
bit for bit PyTorch's kernel, channels-last out, and never where autograd records."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces import ops
from search_spaces.blueprint import blueprint_preset
from search_spaces.network import build
from search_spaces.presets import get_space
from tests.dispatch_watch import watch_ops

CL = torch.channels_last


WINDOWS = [(3, 1, False), (5, 2, False), (2, 0, True), (2, 0, False), (3, 0, True), (5, 1, True)]
SHAPES = [(6, 4, 28, 28), (5, 3, 7, 9), (4, 16, 1, 1), (3, 8, 2, 5)]
#: every window on every map it fits (PyTorch's kernel refuses the others)
CASES = [(k, pad, ceil, shape) for k, pad, ceil in WINDOWS for shape in SHAPES if min(shape[2:]) + 2 * pad >= k]


@pytest.mark.parametrize("k,pad,ceil,shape", CASES)
def test_the_separable_maximum_is_the_kernel_bit_for_bit(k, pad, ceil, shape, monkeypatch):
    g = torch.Generator().manual_seed(k * 10 + pad)
    x = torch.randn(shape, generator=g).round(decimals=1)  # many ties
    x[0, 0, 0, 0] = float("nan")
    x.view(-1)[-1] = float("-inf")
    x = x.contiguous(memory_format=CL)
    pool = nn.MaxPool2d(k, stride=1, padding=pad, ceil_mode=ceil)
    expected = pool(x)
    for chunk_floats in (1 << 20, 1):  # one chunk, and one image per chunk
        monkeypatch.setattr(ops, "MAX_POOL_CHUNK_FLOATS", chunk_floats)
        with torch.no_grad():
            got = ops.separable_max_pool(pool, x)
        assert got is not None and got.shape == expected.shape
        assert torch.equal(got.isnan(), expected.isnan())
        assert torch.equal(got.nan_to_num(), expected.nan_to_num())
        if min(got.shape[2:]) > 1:
            assert got.is_contiguous(memory_format=CL)


def test_autograd_strides_and_dilation_take_the_kernel():
    x = torch.randn(4, 4, 8, 8).contiguous(memory_format=CL)
    pool = nn.MaxPool2d(3, stride=1, padding=1)
    assert ops.separable_max_pool(pool, x.requires_grad_()) is None  # the kernel's gradient, ties included
    with torch.no_grad():
        assert ops.separable_max_pool(pool, x) is not None
        assert ops.separable_max_pool(nn.MaxPool2d(3, stride=2, padding=1), x) is None
        assert ops.separable_max_pool(nn.MaxPool2d(3, stride=1, padding=1, dilation=2), x) is None
    with torch.inference_mode():
        assert ops.separable_max_pool(pool, x.detach()) is not None


def _max_pool_kernel_calls(fn) -> int:  # type: ignore[no-untyped-def]
    names: list[str] = []
    watch_ops(fn, lambda name, args: names.append(name))
    return sum(name.startswith("max_pool2d") for name in names)


def test_scoring_a_network_gives_the_same_bits_without_the_kernel(monkeypatch):
    space = get_space("gtn-nas")
    rng = np.random.default_rng(0)
    archs = [a for a in (space.sample(rng) for _ in range(40))
             if any(op.startswith("max_pool") for node in a.normal.nodes for _, op in node)][:2]
    assert archs
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for arch in archs:
        for preset in ("mnist-tiny", "mnist-search"):
            net = build(arch, blueprint_preset(preset).model_copy(update={"num_classes": 10}), seed=0)
            for mode in (True, False):  # batch statistics and running statistics
                net.train(mode)
                with torch.no_grad():
                    monkeypatch.setattr(ops, "separable_max_pools", False)
                    kernel_calls = _max_pool_kernel_calls(lambda: net(x))
                    before = net(x)
                    monkeypatch.setattr(ops, "separable_max_pools", True)
                    calls = _max_pool_kernel_calls(lambda: net(x))
                    assert torch.equal(net(x), before)
                assert calls < kernel_calls  # the stride-1 pools of the normal cells no longer call it
            net.train()
            loss = net.training_loss(x, torch.zeros(64, dtype=torch.long))
            assert _max_pool_kernel_calls(lambda: net.training_loss(x, torch.zeros(64, dtype=torch.long))) > 0
            assert loss.requires_grad
