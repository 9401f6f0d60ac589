"""The conditional generator G(z, y): noise plus a label in, a synthetic image out.

Reference architecture (Such et al. 2020): concat(z, onehot(y)) -> Linear(hidden) -> BN1d ->
LeakyReLU(0.1) -> Linear(channels * (H/4) * (W/4)) -> BN1d -> LeakyReLU -> reshape ->
[upsample x2, 3x3 conv channels -> channels/2, BN2d, LeakyReLU] -> [upsample x2, 3x3 conv -> C]
-> tanh, times 2 (to cover the range of normalised data). Every linear and conv layer is weight
normalised, which the paper found key to stable meta-gradients. Any image shape works: the two
upsamplings target ceil(H/2) x ceil(W/2) and then exactly H x W.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gtn_search.configio import StrictModel


class GeneratorConfig(StrictModel):
    """Generator widths; ``reference`` is the paper's, ``small`` a CPU-scale preset."""

    noise_dim: int = Field(default=128, ge=1, le=4096)
    hidden: int = Field(default=1024, ge=8, le=16384)
    channels: int = Field(default=128, ge=4, le=2048)
    weight_norm: bool = True
    output_scale: float = Field(default=2.0, gt=0.0, le=100.0)

    @classmethod
    def preset(cls, name: str) -> GeneratorConfig:
        """``reference`` (1024 hidden, 128 channels) or ``small`` (256 hidden, 64 channels)."""
        if name == "small":
            return cls(noise_dim=64, hidden=256, channels=64)
        if name == "reference":
            return cls()
        from gtn_search.errors import unknown_name

        raise unknown_name("generator preset", name, ["reference", "small"], "generator")


def _wn(module: nn.Module, enabled: bool) -> nn.Module:
    return weight_norm(module) if enabled else module


class Generator(nn.Module):
    """Conditional generator for images of shape ``(C, H, W)`` and ``num_classes`` labels."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, config: GeneratorConfig) -> None:
        super().__init__()
        c, h, w = image_shape
        self.image_shape = (c, h, w)
        self.num_classes = num_classes
        self.config = config
        self.base = (math.ceil(h / 4), math.ceil(w / 4))
        self.mid = (math.ceil(h / 2), math.ceil(w / 2))
        wn = config.weight_norm
        ch = config.channels
        self.fc = nn.Sequential(
            _wn(nn.Linear(config.noise_dim + num_classes, config.hidden, bias=False), wn),
            nn.BatchNorm1d(config.hidden),
            nn.LeakyReLU(0.1),
            _wn(nn.Linear(config.hidden, ch * self.base[0] * self.base[1], bias=False), wn),
            nn.BatchNorm1d(ch * self.base[0] * self.base[1]),
            nn.LeakyReLU(0.1),
        )
        self.conv1 = _wn(nn.Conv2d(ch, ch // 2, 3, padding=1, bias=False), wn)
        self.bn1 = nn.BatchNorm2d(ch // 2)
        self.conv2 = _wn(nn.Conv2d(ch // 2, c, 3, padding=1), wn)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images for noise ``z`` [N, noise_dim] and labels ``y`` ([N] ints or [N, K] soft)."""
        onehot = F.one_hot(y, self.num_classes).to(z.dtype) if y.dim() == 1 else y
        h = self.fc(torch.cat([z, onehot], dim=1)).view(z.shape[0], self.config.channels, *self.base)
        # channels-last makes the upsample+conv pair about twice as fast on CPU (mkldnn)
        h = F.interpolate(h.contiguous(memory_format=torch.channels_last), size=self.mid, mode="nearest")
        h = F.leaky_relu(self.bn1(self.conv1(h)), 0.1)
        h = F.interpolate(h, size=self.image_shape[1:], mode="nearest")
        return (torch.tanh(self.conv2(h)) * self.config.output_scale).contiguous()
