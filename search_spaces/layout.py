"""Memory layout of the networks built from cells: channels-last end to end (the default) or NCHW.

NAS learners have few channels (4-16) and small maps; PyTorch's CPU convolution and pooling kernels
are several times faster on such tensors in channels-last layout (NHWC in memory) than in NCHW,
where they loop over one spatial plane at a time. A built network therefore switches its
activations to channels-last right after the stem and keeps them there (convolutions, norms,
activations, sums, concatenations and pooling all preserve the layout), so no op pays a layout
conversion. The numbers are the same up to float rounding (sums in a different order);
``use_channels_last(False)`` restores the NCHW path (``benchmarks/learner_speed.py`` measures both
side by side). A run always uses one layout, so resumed runs and runs with any number of workers
stay bit-for-bit equal to each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

_channels_last = True


def channels_last() -> bool:
    """Whether built networks compute in channels-last layout."""
    return _channels_last


@contextmanager
def use_channels_last(enabled: bool) -> Iterator[None]:
    """Within the block, built networks compute in channels-last (True) or NCHW (False) layout."""
    global _channels_last
    previous, _channels_last = _channels_last, bool(enabled)
    try:
        yield
    finally:
        _channels_last = previous


def to_network_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` (a 4-d activation) in the layout networks compute in."""
    if _channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


#: whether :func:`channels_last_grad` converts gradients (False: as before it existed;
#: ``benchmarks/grad_layout.py`` measures both)
convert_grads = True


def _to_channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


def channels_last_grad(x: torch.Tensor) -> torch.Tensor:
    """``x``, whose gradient is handed on in channels-last layout (same values, another layout).

    Two backward passes give gradients in another layout than the activations they meet: slicing
    (``x[:, :, ::2, ::2]``) returns an NCHW gradient, and a concatenation hands each input a strided
    slice of its own gradient. Backward kernels of channels-last tensors take a slow path on such
    gradients (``benchmarks/grad_layout.py``: on a 96x32x28x28 activation, ReLU's backward 8.0 ms with
    an NCHW gradient against 1.0 ms with a channels-last one); the copy to channels-last costs a
    fraction of that (0.7-0.9 ms); training steps of mnist-final networks 1.17x faster, mnist-search
    1.06x, NAS learners neither faster nor slower beyond noise. The numbers are equal within float
    rounding (BatchNorm's and the convolutions' backward sums run in another order), as everywhere
    between the two layouts; a run uses one setting, so resumes and worker counts stay bit-for-bit
    equal. A no-op in the NCHW layout, without autograd, and while tracing.
    """
    if convert_grads and _channels_last and x.requires_grad and torch.is_grad_enabled() and not is_compiling():
        x.register_hook(_to_channels_last)
    return x


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a 4-d tensor is laid out channels-last (and not also plain NCHW-contiguous)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def cat_channels(tensors: list[torch.Tensor], replicas: int = 1) -> torch.Tensor:
    """Concatenate activations along channels; with ``replicas`` K > 1, group by group.

    A network that trains K initialisations at once (``search_spaces.replicas``) holds replica k's
    channels as the k-th of K equal groups of every activation. Concatenating such tensors must keep
    that order: replica k's part of the result is the concatenation of replica k's parts of the
    inputs. With K = 1 this is ``torch.cat(tensors, dim=1)``.
    """
    tensors = [channels_last_grad(t) for t in tensors] if tensors[0].dim() == 4 else tensors
    if replicas == 1:
        return torch.cat(tensors, dim=1)
    if _channels_last and tensors[0].dim() == 4:  # concatenate in memory order: [N, H, W, K, c]
        parts = [t.permute(0, 2, 3, 1).unflatten(3, (replicas, -1)) for t in tensors]
        return torch.cat(parts, dim=4).flatten(3).permute(0, 3, 1, 2)
    parts = [t.unflatten(1, (replicas, -1)) for t in tensors]
    return torch.cat(parts, dim=2).flatten(1, 2)


#: whether torch.compile / torch.export is tracing: graphs then take the plain paths
#: (``torch.compiler.is_compiling`` is torch >= 2.3)
is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose strided 1x1 convolutions, in the channels-last CPU layout, subsample first.

    oneDNN's channels-last backward-weights kernel for strided 1x1 convolutions on AVX2
    (``jit_1x1:avx2``) computes wrong weight gradients for 4 input channels on some CPUs and can
    corrupt the heap (seen on an AMD EPYC of family 25 with torch 2.14.1: relative errors of 0.3-1.0
    on 14- and 28-pixel maps, then "corrupted size vs. prev_size"; 8 and 16 channels, other kernel sizes
    and NCHW were right). A 1x1 convolution with stride s and no padding is the same map as a 1x1
    convolution with stride 1 of the input subsampled every s pixels, which takes other kernels;
    that is what this layer computes there (equal within float rounding, tested against NCHW in
    ``tests/test_layout_conv.py``). Everywhere else, and for every other shape, it is ``nn.Conv2d``.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (self.kernel_size == (1, 1) and self.stride != (1, 1) and self.padding == (0, 0)
                and self.padding_mode == "zeros" and _channels_last and input.device.type == "cpu"
                and not is_compiling()):
            sh, sw = self.stride  # type: ignore[misc]
            return F.conv2d(channels_last_grad(input)[:, :, ::sh, ::sw], weight, bias, 1, 0, 1, self.groups)
        return super()._conv_forward(input, weight, bias)


#: batch-statistics norms of channels-last maps with at most this many channels run in NCHW
#: (:class:`BatchNorm2d`); 0 turns that off (``benchmarks/norm_layout.py`` measures both)
nchw_norm_max_channels = 8


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that normalises few-channel channels-last maps in NCHW layout.

    PyTorch's CPU kernel for batch statistics of a channels-last map vectorises over the channels,
    so with 4 or 8 channels it runs several times slower than the NCHW kernel (``benchmarks/
    norm_layout.py``: forward and backward of a 32x4x28x28 map 2.2 ms against 0.5 ms with the two
    layout copies; at 16 channels and more channels-last is the faster one). Where batch statistics
    are computed (training, or a norm without running statistics, as every learner's) on a
    channels-last CPU map of at most :data:`nchw_norm_max_channels` channels, this layer copies the
    map to NCHW, normalises it there and hands the result (and the gradient, see
    :func:`channels_last_grad`) back in channels-last. The numbers are those of the NCHW kernel:
    equal to the channels-last kernel's within float rounding. Everywhere else, and in the NCHW layout
    (``use_channels_last(False)``, the code of before bit for bit), it is ``nn.BatchNorm2d``.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if (_channels_last and input.shape[1] <= nchw_norm_max_channels and input.device.type == "cpu"
                and (self.training or not self.track_running_stats) and is_channels_last(input)
                and not is_compiling()):
            out = super().forward(channels_last_grad(input).contiguous())
            return out.contiguous(memory_format=torch.channels_last)
        return super().forward(input)
