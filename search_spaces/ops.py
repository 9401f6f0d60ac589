"""The op registry's built-in operations: factories ``(C_in, C_out, stride) -> nn.Module``.

Every op maps a ``[N, C_in, H, W]`` tensor to ``[N, C_out, ceil(H/stride), ceil(W/stride)]``, so
any op can sit on any edge, including the stride-2 edges that leave a reduction cell's inputs.
Convolutions follow the ReLU -> conv -> BatchNorm order of NASNet/DARTS. The blueprint expander
later swaps the norm layers, the activation and adds weight normalisation as the blueprint asks,
so third-party ops written with plain ``nn.BatchNorm2d`` and ``nn.ReLU`` get the same treatment.

Third parties add ops with ``@OPS.register("my_op")`` or an entry point in ``gtn_search.ops``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gtn_search.registry import OPS
from search_spaces.layout import (BatchNorm2d, Conv2d, cat_channels, channels_last, channels_last_grad,
                                  is_compiling, to_network_layout)


class ReLUConvBN(nn.Sequential):
    """ReLU, one (possibly asymmetric or dilated) convolution, BatchNorm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int],
        padding: int | tuple[int, int],
        dilation: int = 1,
    ) -> None:
        super().__init__(
            nn.ReLU(),
            Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            BatchNorm2d(c_out),
        )


class FactorizedConv(nn.Sequential):
    """ReLU, a 1xk then a kx1 convolution (stride split over the two), BatchNorm."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int) -> None:
        p = k // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, (1, k), stride=(1, stride), padding=(0, p), bias=False),
            nn.Conv2d(c_out, c_out, (k, 1), stride=(stride, 1), padding=(p, 0), bias=False),
            BatchNorm2d(c_out),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise dilated conv, pointwise conv, BatchNorm (DARTS' dil_conv)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, dilation: int) -> None:
        pad = dilation * (k - 1) // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, k, stride=stride, padding=pad, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convolutions (DARTS' sep_conv); the first one strides."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int) -> None:
        super().__init__(DilConv(c_in, c_in, k, stride, 1), DilConv(c_in, c_out, k, 1, 1))


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two offset 1x1 stride-2 convs, concatenated."""

    #: whether even maps take the subsampling path in the channels-last layout (False: always the
    #: padded one, as DARTS writes it; ``benchmarks/factorized_reduce.py`` measures both)
    subsample_even_maps = True

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_a = Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = BatchNorm2d(c_out)
        self.replicas = 1  # initialisations side by side as channel groups (search_spaces.replicas)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        h, w = x.shape[-2:]
        even = isinstance(h, int) and isinstance(w, int) and h % 2 == 0 and w % 2 == 0
        # the NCHW layout keeps the code of before channels-last networks bit for bit (layout.py)
        fast = even and self.subsample_even_maps and channels_last()
        shifted = self._subsampled(x) if fast else self._padded(x)
        return self.bn(cat_channels([self.conv_a(x), shifted], self.replicas))

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """The second branch on the map shifted by one pixel, zero-padded at the bottom and right."""
        return self.conv_b(F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:])

    def _subsampled(self, x: torch.Tensor) -> torch.Tensor:
        """The same for an even map, where the branch reads pixels (2i+1, 2j+1) only, never the
        padding: subsample and convolve with stride 1 instead of padding and copying the whole map
        (equal within float rounding, tests/test_network.py; mnist-search training steps
        ``benchmarks/factorized_reduce.py``)."""
        conv = self.conv_b
        return F.conv2d(channels_last_grad(x)[:, :, 1::2, 1::2], conv.weight, conv.bias, 1, 0, 1, conv.groups)


def _to_contiguous(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous()


#: channels-last pooling folds images into the channels of few-channel maps up to this many channels
FOLD_CHANNELS = 32


def pool_fold_factor(batch: int, channels: int, height: int, stride: int) -> int:
    """How many images channels-last pooling folds side by side into the channels (1: none).

    PyTorch's channels-last CPU pooling kernels vectorise over channels and are several times
    slower per element below 16 channels; pooling ``[N/f, f*C, H, W]`` instead of ``[N, C, H, W]``
    computes exactly the same numbers (every channel of every image is pooled alone). Measured
    (one thread, forward + backward, bitwise equal): stride-1 pools of 4- and 8-channel maps of
    14 pixels or more 1.3-3.9x faster including the two layout copies; strided pools, 16 channels
    and 7-pixel maps slower, so they are left alone. At least two folded images remain: a batch of
    one is both channels-last and contiguous to PyTorch, and gradients would come back in another
    layout (changing the float sums of the convolutions around the pool).
    """
    if stride != 1 or channels > 8 or height < 14:
        return 1
    fold = 1
    while batch % (2 * fold) == 0 and batch // (2 * fold) >= 2 and 2 * fold * channels <= FOLD_CHANNELS:
        fold *= 2
    return fold


def _stride(pool: nn.Module) -> int:
    stride = getattr(pool, "stride", 1)
    return stride if isinstance(stride, int) else (stride[0] if len(set(stride)) == 1 else 0)


def _fold_images(x: torch.Tensor, fold: int) -> torch.Tensor:
    """``[N, C, H, W]`` channels-last -> ``[N/f, f*C, H, W]`` channels-last, image i's channels at
    ``(i % f) * C`` of folded image ``i // f``."""
    n, c, h, w = x.shape
    m = x.permute(0, 2, 3, 1).reshape(n // fold, fold, h, w, c).permute(0, 2, 3, 1, 4).contiguous()
    return m.view(n // fold, h, w, fold * c).permute(0, 3, 1, 2)


def _unfold_images(y: torch.Tensor, fold: int, channels: int) -> torch.Tensor:
    """The inverse of :func:`_fold_images` (channels-last in, channels-last out)."""
    nf, _, h, w = y.shape
    m = y.permute(0, 2, 3, 1).reshape(nf, h, w, fold, channels).permute(0, 3, 1, 2, 4).contiguous()
    return m.view(nf * fold, h, w, channels).permute(0, 3, 1, 2)


#: whether stride-1 max pooling outside autograd uses :func:`separable_max_pool` (False: the kernel
#: always; ``benchmarks/max_pool_eval.py`` measures both)
separable_max_pools = True

#: images per chunk of :func:`separable_max_pool`: about this many floats (4 MiB), so a chunk's
#: intermediate maps stay in the CPU's cache
MAX_POOL_CHUNK_FLOATS = 1 << 20


def _pooled_size(size: int, k: int, stride: int, pad: int, ceil: bool) -> int:
    """PyTorch's output size of a pooling window along one dimension."""
    span = size + 2 * pad - k
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:  # the last window must start inside the map
        out -= 1
    return out


def _separable_max(x: torch.Tensor, k: int, stride: int, pad: int, ceil: bool) -> torch.Tensor:
    h, w = x.shape[-2:]
    ho, wo = _pooled_size(h, k, stride, pad, ceil), _pooled_size(w, k, stride, pad, ceil)
    right, bottom = (wo - 1) * stride + k - w - pad, (ho - 1) * stride + k - h - pad
    xp = F.pad(x, (pad, max(right, 0), pad, max(bottom, 0)), value=float("-inf"))
    span_w, span_h = (wo - 1) * stride + 1, (ho - 1) * stride + 1
    rows = xp[..., 0:span_w:stride]
    for j in range(1, k):
        rows = torch.maximum(rows, xp[..., j:j + span_w:stride])
    out = rows[..., 0:span_h:stride, :]
    for i in range(1, k):
        out = torch.maximum(out, rows[..., i:i + span_h:stride, :])
    return out


def separable_max_pool(pool: nn.MaxPool2d, x: torch.Tensor) -> torch.Tensor | None:
    """``pool(x)`` for a stride-1 max pooling outside autograd, as a maximum over shifted rows,
    then over shifted columns, a few images at a time; ``None`` where it does not apply.

    A maximum is exact, so the result is ``pool(x)`` bit for bit (padding counts as -inf, as in
    PyTorch's kernel; NaNs propagate in both). PyTorch's CPU kernel computes argmax indices even
    without autograd and is slow on few-channel maps; evaluating 1,000 validation images of a
    4-channel cell, this is several times faster than that kernel, also at 16 channels (stacked
    seeds; ``benchmarks/max_pool_eval.py``). Strided pools are left to the kernel (no faster this way), and
    anything autograd records too (the gradient of a maximum splits ties, the kernel's does not).
    """
    k, stride, pad, dilation = (getattr(pool, a) for a in ("kernel_size", "stride", "padding", "dilation"))
    if not all(isinstance(v, int) for v in (k, stride, pad, dilation)) or stride != 1 or dilation != 1:
        return None
    if torch.is_grad_enabled() and x.requires_grad:
        return None
    n, c, h, w = x.shape
    chunk = max(1, MAX_POOL_CHUNK_FLOATS // max(1, c * h * w))
    if chunk >= n:
        return _separable_max(x, k, stride, pad, pool.ceil_mode)
    return torch.cat([_separable_max(part, k, stride, pad, pool.ceil_mode) for part in x.split(chunk)])


def channels_last_pool(pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``pool(x)`` for a CPU tensor ``x``, computed in channels-last layout, bitwise equal to ``pool(x)``.

    PyTorch's CPU pooling kernels vectorise over channels in channels-last layout and run one
    scalar loop per output in NCHW: forward + backward 1.2-3.6x faster for the small maps of NAS
    cells, GTN-evaluator trials 7-13% faster (``benchmarks/pool_layout.py``). The result, and the
    gradient handed back to the layers before, are NCHW again, so the convolutions around a pool
    compute exactly what they computed before (the same float sums in the same order; a gradient
    left in channels-last layout would make the convolution's backward pass sum in another order).
    That is the NCHW path (``search_spaces.layout.use_channels_last(False)``); in the default
    channels-last layout the whole network stays channels-last and the pool keeps it so, folding
    images into the channels of few-channel maps (:func:`pool_fold_factor`).
    """
    if x.device.type != "cpu" or x.dim() != 4:
        return pool(x)
    if channels_last():  # the whole network computes channels-last (search_spaces.layout): stay so
        x = to_network_layout(x)
        n, c, h, _ = x.shape
        if not isinstance(n, int) or is_compiling():  # traced (ONNX export): a batch-independent graph
            return pool(x)
        if separable_max_pools and isinstance(pool, nn.MaxPool2d):
            out = separable_max_pool(pool, x)
            if out is not None:
                return out
        fold = pool_fold_factor(n, c, h, _stride(pool))
        return pool(x) if fold == 1 else _unfold_images(pool(_fold_images(x, fold)), fold, c)
    xc = x.contiguous(memory_format=torch.channels_last)
    if xc.requires_grad and xc is not x:
        xc.register_hook(_to_contiguous)
    return pool(xc).contiguous()


class Pool(nn.Module):
    """Max or average pooling with 'same' (ceil) output size; a 1x1 conv if channels change."""

    def __init__(self, kind: str, c_in: int, c_out: int, k: int, stride: int) -> None:
        super().__init__()
        self.k, self.stride = k, stride
        # odd k: padding k//2 gives ceil(H/stride); even k: no padding, ceil_mode gives the same
        pad, ceil = (k // 2, False) if k % 2 else (0, True)
        if kind == "max":
            self.pool: nn.Module = nn.MaxPool2d(k, stride=stride, padding=pad, ceil_mode=ceil)
        else:
            self.pool = nn.AvgPool2d(k, stride=stride, padding=pad, ceil_mode=ceil, count_include_pad=False)
        self.proj = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k % 2 == 0 and self.stride == 1:  # even kernel, stride 1: pad right/bottom to keep size
            x = F.pad(x, (0, self.k - 1, 0, self.k - 1), mode="replicate")
        x = channels_last_pool(self.pool, x)
        return x if self.proj is None else self.proj(x)


class Identity(nn.Module):
    """Skip connection; a factorized reduction when the edge strides or channels change."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if stride == 1 and c_in == c_out:
            self.op: nn.Module = nn.Identity()
        elif stride == 1:
            self.op = ReLUConvBN(c_in, c_out, 1, 1, 0)
        else:
            self.op = FactorizedReduce(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def _register_builtins() -> None:
    builtins = {
        "identity": ("Skip connection (factorized reduce when striding)", lambda ci, co, s: Identity(ci, co, s)),
        "conv_1x1": ("ReLU-conv 1x1-BN", lambda ci, co, s: ReLUConvBN(ci, co, 1, s, 0)),
        "conv_3x3": ("ReLU-conv 3x3-BN", lambda ci, co, s: ReLUConvBN(ci, co, 3, s, 1)),
        "conv_1x3_3x1": ("ReLU-conv 1x3-conv 3x1-BN", lambda ci, co, s: FactorizedConv(ci, co, 3, s)),
        "conv_1x7_7x1": ("ReLU-conv 1x7-conv 7x1-BN", lambda ci, co, s: FactorizedConv(ci, co, 7, s)),
        "sep_conv_3x3": ("Two depthwise-separable 3x3 convs", lambda ci, co, s: SepConv(ci, co, 3, s)),
        "sep_conv_5x5": ("Two depthwise-separable 5x5 convs", lambda ci, co, s: SepConv(ci, co, 5, s)),
        "sep_conv_7x7": ("Two depthwise-separable 7x7 convs (NASNet, AmoebaNet)", lambda ci, co, s: SepConv(ci, co, 7, s)),
        "dil_conv_3x3": ("Dilated (2) depthwise-separable 3x3 conv", lambda ci, co, s: DilConv(ci, co, 3, s, 2)),
        "dil_conv_5x5": ("Dilated (2) depthwise-separable 5x5 conv", lambda ci, co, s: DilConv(ci, co, 5, s, 2)),
    }
    for k in (2, 3, 5):
        for kind in ("max", "avg"):
            builtins[f"{kind}_pool_{k}x{k}"] = (
                f"{'Max' if kind == 'max' else 'Average'} pooling {k}x{k}",
                lambda ci, co, s, kind=kind, k=k: Pool(kind, ci, co, k, s),
            )
    for name, (description, factory) in builtins.items():
        factory.__name__ = name
        OPS.add(name, factory, description=description, source="search_spaces.ops (built-in)")


_register_builtins()

#: The operations of the GTN-NAS paper's space (Such et al. 2020, appendix).
PAPER_OPS: tuple[str, ...] = (
    "identity",
    "conv_1x1",
    "conv_3x3",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "max_pool_2x2",
    "max_pool_3x3",
    "max_pool_5x5",
    "avg_pool_2x2",
    "avg_pool_3x3",
    "avg_pool_5x5",
)

#: DARTS-style op names (quark0/darts ``genotypes.py``) that are spelt differently here; every
#: other DARTS name (sep_conv_*, dil_conv_*, max_pool_3x3, avg_pool_3x3) is the same op here.
DARTS_OP_NAMES: dict[str, str] = {
    "skip_connect": "identity",
    "conv_7x1_1x7": "conv_1x7_7x1",  # DARTS' op is a 1x7 then a 7x1 convolution, as ours
}
