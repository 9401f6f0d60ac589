"""The blueprint expander: ``build(architecture, blueprint) -> nn.Module``, params and FLOPs.

NASNet-style: every cell consumes the outputs of the two previous cells; when the cell two back
has a larger resolution (right after a reduction) it is brought down by a factorized reduction,
otherwise a 1x1 conv matches channels. Inside a reduction cell the edges leaving in0/in1 stride by
two. The genotype (a :class:`~search_spaces.architecture.Architecture`) and the torch module are
separate objects: nothing here mutates the genotype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm
from torch.utils.flop_counter import FlopCounterMode

from gtn_search.registry import OPS
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.cell import Cell
from search_spaces.layout import BatchNorm2d, cat_channels, to_network_layout
from search_spaces.ops import FactorizedReduce, ReLUConvBN


class DropPath(nn.Module):
    """Drop a whole edge's output per example with probability p (scheduled drop-path)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep


class CellModule(nn.Module):
    """One cell instantiated at a given width: preprocessing, one op per edge, concatenation.

    A cell input that no node reads (possible when a node may take the same input twice) is
    concatenated into the output too, as NASNet and ENAS do with unused hidden states (brought to
    the reduced resolution in a reduction cell), so every cell's output reaches the classifier
    and every parameter gets a gradient. Cells that read both inputs build exactly as before.
    """

    def __init__(self, cell: Cell, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.edges = nn.ModuleList()
        self.drops = nn.ModuleList()
        self.plan: list[list[int]] = []
        for node in cell.nodes:
            sources = []
            for src, op in node:
                stride = 2 if reduction and src < 2 else 1
                self.edges.append(OPS.get(op)(c, c, stride))
                self.drops.append(DropPath())
                sources.append(src)
            self.plan.append(sources)
        read = {src for node in cell.nodes for src, _ in node}
        self.unread_inputs = [i for i in (0, 1) if i not in read]
        self.calibrate = nn.ModuleList(
            FactorizedReduce(c, c) if reduction else nn.Identity() for _ in self.unread_inputs
        )
        self.outputs = list(cell.outputs)
        self.out_channels = c * (len(self.unread_inputs) + len(self.outputs))
        #: initialisations trained side by side as channel groups (``search_spaces.replicas``)
        self.replicas = 1

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        edge = 0
        for sources in self.plan:
            total = None
            for src in sources:
                y = self.drops[edge](self.edges[edge](states[src]))
                total = y if total is None else total + y
                edge += 1
            states.append(total)
        unread = [cal(states[i]) for cal, i in zip(self.calibrate, self.unread_inputs)]
        return cat_channels(unread + [states[i] for i in self.outputs], self.replicas)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier after the second stage (NASNet/DARTS), used in final training."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 256, 2, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class Network(nn.Module):
    """A NASNet-style network: stem, stages of cells with reductions between, pool, classifier.

    In training mode with ``auxiliary_weight > 0`` the forward pass returns ``(logits, aux)``;
    otherwise only the logits.
    """

    def __init__(self, arch: Architecture, bp: Blueprint) -> None:
        super().__init__()
        c_in, _, _ = bp.input_shape
        c_stem = bp.stem_multiplier * bp.channels
        self.stem = nn.Sequential(nn.Conv2d(c_in, c_stem, 3, padding=1, bias=False), BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, bp.channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        self.aux_after: int | None = None
        aux_channels = 0
        for stage in range(bp.stages):
            kinds = ([True] if stage > 0 else []) + [False] * bp.cells_per_stage
            for reduction in kinds:
                if reduction:
                    c *= bp.channel_multiplier
                cell = CellModule(arch.reduce if reduction else arch.normal, c_pp, c_p, c, reduction, reduction_prev)
                self.cells.append(cell)
                reduction_prev = reduction
                c_pp, c_p = c_p, cell.out_channels
            if stage == bp.stages - 2 or (bp.stages == 1 and stage == 0):
                self.aux_after, aux_channels = len(self.cells) - 1, c_p
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, bp.num_classes)
        self.aux_weight = bp.auxiliary_weight
        self.aux_head = AuxiliaryHead(aux_channels, bp.num_classes) if bp.auxiliary_weight > 0 else None
        #: initialisations trained side by side as channel groups (``search_spaces.replicas``): the
        #: forward pass then maps [N, K*C, H, W] (or [N, C, H, W], shared) to logits [N, K, classes]
        self.replicas = 1

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of a forward pass on ``x``, plus the weighted auxiliary-head loss if any.

        For replicas (logits [N, K, classes]) the sum of the replicas' mean losses, so that each
        replica's gradient is that of its own loss; ``y`` is [N] (shared) or [N, K].
        """
        out = self(x)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        if logits.dim() == 3:
            from search_spaces.replicas import replica_cross_entropy

            return replica_cross_entropy(logits, y)
        loss = nn.functional.cross_entropy(logits, y)
        if aux is not None:
            loss = loss + self.aux_weight * nn.functional.cross_entropy(aux, y)
        return loss

    def set_drop_path(self, p: float) -> None:
        """Set the drop-path probability of every edge (scheduled by the final trainer)."""
        for module in self.modules():
            if isinstance(module, DropPath):
                module.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.replicas > 1 and x.shape[1] * self.replicas == self.stem[0].in_channels:
            x = x.repeat(1, self.replicas, 1, 1)  # every replica sees the same images
        s0 = s1 = to_network_layout(self.stem(x))  # channels-last from here on (search_spaces.layout)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if self.aux_head is not None and self.training and i == self.aux_after:
                aux = self.aux_head(s1)
        logits = self.classifier(self.pool(s1).flatten(1))
        return (logits, aux) if aux is not None else logits


class MeanOnlyBatchNorm(nn.Module):
    """Subtract the per-channel batch mean and add a learned bias (no variance, no running stats).

    With weight normalisation this is the learner normalisation of the GTN reference code.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x - x.mean(dim=dims, keepdim=True) + self.bias.view(shape)


def _replace_modules(root: nn.Module, predicate, make) -> None:  # type: ignore[no-untyped-def]
    for name, child in list(root.named_children()):
        if predicate(child):
            setattr(root, name, make(child))
        else:
            _replace_modules(child, predicate, make)


def apply_layer_style(module: nn.Module, bp: Blueprint) -> nn.Module:
    """Swap norms/activations and add weight norm in place, as the blueprint's style asks."""
    is_bn = lambda m: isinstance(m, nn.BatchNorm2d)
    if bp.norm == "batch_stats":
        _replace_modules(module, is_bn, lambda m: BatchNorm2d(m.num_features, affine=True, track_running_stats=False))
    elif bp.norm == "mean_only":
        _replace_modules(module, is_bn, lambda m: MeanOnlyBatchNorm(m.num_features))
    elif bp.norm == "none":
        _replace_modules(module, is_bn, lambda m: nn.Identity())
    if bp.activation == "leaky_relu":
        _replace_modules(module, lambda m: isinstance(m, nn.ReLU), lambda m: nn.LeakyReLU(0.1))
    convs = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if bp.init == "kaiming":
        for m in convs:
            nn.init.kaiming_normal_(m.weight, nonlinearity="leaky_relu" if bp.activation == "leaky_relu" else "relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if bp.weight_norm:
        for m in convs:
            _weight_norm(m)
    return module


def build(arch: Architecture, blueprint: Blueprint, seed: int | None = None) -> Network:
    """Expand ``arch`` by ``blueprint`` into a fresh network; ``seed`` fixes its initial weights."""
    if seed is None:
        return apply_layer_style(Network(arch, blueprint), blueprint)  # type: ignore[return-value]
    from gtn_search.seeding import torch_seed

    with torch_seed(seed):
        return apply_layer_style(Network(arch, blueprint), blueprint)  # type: ignore[return-value]


@dataclass(frozen=True)
class NetworkCost:
    """Size and compute of a built network (FLOPs counted by torch's FlopCounterMode)."""

    params: int
    forward_flops: int

    @property
    def train_flops_per_image(self) -> int:
        """Forward + backward FLOPs per training image (backward ~ 2x forward)."""
        return 3 * self.forward_flops


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_flops(module: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Forward FLOPs for one image (2 per multiply-add), measured on a batch of two."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(2, *input_shape))
    finally:
        module.train(was_training)
    return math.ceil(counter.get_total_flops() / 2)


def network_cost(module: nn.Module, blueprint: Blueprint) -> NetworkCost:
    """Parameters and forward FLOPs per image of a built network."""
    return NetworkCost(count_parameters(module), count_flops(module, blueprint.input_shape))
