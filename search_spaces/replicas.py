"""K initialisations of one architecture trained as one network: every layer K-fold grouped.

NAS learners are small (4-16 channels) and PyTorch's CPU kernels run far below the machine's
peak on them: a layer with 4x the channels costs much less than 4x the time. Scoring a candidate
from K random initialisations (``seeds: K`` in the GTN and real-data evaluators) therefore stacks
the K networks into one whose every activation holds the K replicas as K channel groups:

- a convolution with ``groups=g`` becomes one with K times the channels and ``groups=K*g``
  (replica k's filters see only replica k's channels), so the stem reads a [N, K*C, H, W] input
  (each replica its own images, or the same images repeated);
- a BatchNorm over K*C channels normalises each replica's channels with that replica's statistics;
- pooling, activations, padding and sums act per channel and need no change; concatenations keep
  the channel groups (``search_spaces.layout.cat_channels``);
- the classifier becomes :class:`GroupedLinear` and the network returns logits [N, K, classes].

Every parameter of the stacked network is the concatenation of the replicas' parameters along
dimension 0 (weight-norm magnitudes and directions included), so an elementwise optimiser (SGD with
momentum and weight decay, Adam, the GTN inner loop) updates each replica exactly as it would alone,
and the loss is the sum of the replicas' mean losses (each replica's gradient is its own). Results
equal separate training up to float rounding (grouped and dense convolutions sum in a different
order; ``tests/test_replicas.py``). Networks with a module this file does not know (a third-party
op), drop-path or an auxiliary head are refused with :class:`NotStackable`; the evaluators then train
the seeds one after the other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from search_spaces.layout import BatchNorm2d
from search_spaces.network import (
    AuxiliaryHead,
    CellModule,
    DropPath,
    MeanOnlyBatchNorm,
    Network,
)
from search_spaces.ops import (
    DilConv,
    FactorizedConv,
    FactorizedReduce,
    Identity,
    Pool,
    ReLUConvBN,
    SepConv,
)

#: modules that act on each channel alone (or only contain other modules): stacked unchanged
_CHANNELWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    nn.Sequential, nn.ModuleList, Pool, Identity, ReLUConvBN, FactorizedConv, DilConv, SepConv,
)


class NotStackable(ValueError):
    """The networks cannot be trained as one stacked network (the reason is the message)."""


class GroupedLinear(nn.Module):
    """K independent linear layers side by side: [N, K*F] -> [N, K, out].

    ``weight`` is [K*out, F] (replica k's rows are the k-th block) and ``bias`` [K*out], so both
    are the replicas' ``nn.Linear`` parameters concatenated along dimension 0.
    """

    def __init__(self, replicas: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.replicas, self.in_features, self.out_features = replicas, in_features, out_features
        self.weight = nn.Parameter(torch.empty(replicas * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(replicas * out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, f, o = self.replicas, self.in_features, self.out_features
        out = torch.einsum("nkf,kof->nko", x.reshape(x.shape[0], k, f), self.weight.view(k, o, f))
        return out if self.bias is None else out + self.bias.view(k, o)


def replica_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over replicas of each replica's mean cross-entropy.

    ``logits`` [N, K, classes]; ``targets`` hard labels [N] (shared) or [N, K], or soft label
    distributions [N, classes] (shared).
    """
    n, k, _ = logits.shape
    if targets.is_floating_point():
        return -(targets.unsqueeze(1) * F.log_softmax(logits, dim=2)).sum(dim=2).mean(dim=0).sum()
    if targets.dim() == 1:
        targets = targets.unsqueeze(1).expand(n, k)
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(dim=0).sum()


def _weight_norm_dim(module: nn.Module) -> int | None:
    """The ``dim`` of a module's weight normalisation (None if it has none); refuses others."""
    if not parametrize.is_parametrized(module):
        return None
    names = set(module.parametrizations.keys())  # type: ignore[union-attr]
    plist = module.parametrizations["weight"] if names == {"weight"} else None  # type: ignore[index]
    if plist is None or len(plist) != 1 or type(plist[0]).__name__ != "_WeightNorm":
        raise NotStackable(f"{type(module).__name__} has a parametrization other than weight norm")
    return int(plist[0].dim)


#: layers of a stacked network still to get weight norm over a dimension (after allocation)
_Pending = list[tuple[nn.Module, int]]


def _wide_conv(conv: nn.Conv2d, k: int, pending: _Pending) -> nn.Module:
    if conv.padding_mode != "zeros":
        raise NotStackable(f"convolution with padding_mode={conv.padding_mode!r}")
    cls = parametrize.type_before_parametrizations(conv)  # nn.Conv2d, or search_spaces.layout.Conv2d
    wide = cls(k * conv.in_channels, k * conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                     stride=conv.stride, padding=conv.padding, dilation=conv.dilation,  # type: ignore[arg-type]
                     groups=k * conv.groups, bias=conv.bias is not None)
    dim = _weight_norm_dim(conv)
    if dim is not None:
        pending.append((wide, dim))
    return wide


def _wide_linear(linear: nn.Linear, k: int, pending: _Pending) -> nn.Module:
    wide = GroupedLinear(k, linear.in_features, linear.out_features, bias=linear.bias is not None)
    dim = _weight_norm_dim(linear)
    if dim not in (None, 0):
        raise NotStackable(f"linear layer with weight norm over dim {dim}")
    if dim is not None:
        pending.append((wide, 0))
    return wide


def _widen(module: nn.Module, k: int, pending: _Pending) -> None:
    """Replace, in place, every layer below ``module`` by its K-fold stacked version."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d):
            setattr(module, name, _wide_conv(child, k, pending))
        elif isinstance(child, nn.Linear):
            setattr(module, name, _wide_linear(child, k, pending))
        elif type(child) in (nn.BatchNorm2d, BatchNorm2d):
            setattr(module, name, type(child)(k * child.num_features, eps=child.eps, momentum=child.momentum,
                                              affine=child.affine, track_running_stats=child.track_running_stats))
        elif isinstance(child, MeanOnlyBatchNorm):
            setattr(module, name, MeanOnlyBatchNorm(k * child.bias.numel()))
        elif isinstance(child, DropPath):
            if child.p > 0:
                raise NotStackable("drop-path draws one mask per example for all replicas")
        elif isinstance(child, AuxiliaryHead):
            raise NotStackable("the auxiliary head is not stacked")
        elif isinstance(child, (CellModule, FactorizedReduce)):
            child.replicas = k
            _widen(child, k, pending)
        elif type(child) in _CHANNELWISE:
            _widen(child, k, pending)
        else:
            raise NotStackable(f"module {type(child).__module__}.{type(child).__qualname__} is not known to stack")


def stack_replicas(nets: Sequence[Network]) -> Network:
    """One network that trains ``nets`` (the same architecture and blueprint, any initialisations)
    side by side; its parameters and buffers are theirs, concatenated along dimension 0.

    The input is [N, K*C, H, W] (replica k's images are the k-th channel group; see
    :func:`stack_inputs`) or [N, C, H, W] (the same images for every replica); the output is logits
    [N, K, classes]. Raises :class:`NotStackable` if the networks cannot be stacked.
    """
    if not nets:
        raise NotStackable("no networks to stack")
    first = nets[0]
    if not isinstance(first, Network):
        raise NotStackable(f"{type(first).__name__} is not a cell network")
    shapes = [(n, tuple(t.shape)) for n, t in first.state_dict().items()]
    for other in nets[1:]:
        if [(n, tuple(t.shape)) for n, t in other.state_dict().items()] != shapes:
            raise NotStackable("the networks differ in structure")
    k = len(nets)
    wide = copy.deepcopy(first)
    pending: _Pending = []
    with torch.random.fork_rng(devices=[]):  # the new layers' initial values are overwritten below
        _widen(wide, k, pending)
    for layer, dim in pending:
        weight_norm(layer, dim=dim)
    first_param = next(first.parameters())
    wide.to(device=first_param.device, dtype=first_param.dtype)
    wide.replicas = k
    states = [net.state_dict() for net in nets]
    stacked = {}
    for name, value in wide.state_dict().items():
        if value.dim() == 0:  # BatchNorm's num_batches_tracked: the same count in every replica
            stacked[name] = states[0][name]
        else:
            stacked[name] = torch.cat([s[name] for s in states], dim=0)
    wide.load_state_dict(stacked)
    wide.train(first.training)
    return wide


def stack_inputs(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-replica image batches [N, C, H, W] as the stacked network's input [N, K*C, H, W]."""
    return torch.cat(list(images), dim=1)


def unstack_parameters(params: dict[str, torch.Tensor], replicas: int) -> list[dict[str, torch.Tensor]]:
    """The parameters of each replica of a stacked network (views, not copies)."""
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(replicas)]
    for name, value in params.items():
        for k, part in enumerate(value.chunk(replicas, dim=0)):
            out[k][name] = part
    return out


def replica_count(module: nn.Module) -> int:
    """How many replicas a network holds (1 for an ordinary network)."""
    return int(getattr(module, "replicas", 1))


__all__ = [
    "GroupedLinear", "NotStackable", "replica_count", "replica_cross_entropy", "stack_inputs",
    "stack_replicas", "unstack_parameters",
]
