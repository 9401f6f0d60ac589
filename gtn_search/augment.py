"""Batch augmentation on in-memory tensors: random crop with padding, horizontal flip, cutout.

Random draws come from a CPU ``torch.Generator`` whatever the batch's device (the same draws on
every device), and the index and mask tensors built from them are moved to the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gtn_search.device import host_to_device


def random_crop_flip(x: torch.Tensor, rng: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Per-image random crop (zero padding ``pad``) and horizontal flip of a [N, C, H, W] batch."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = host_to_device(torch.randint(0, 2 * pad + 1, (n,), generator=rng), x.device)
    dx = host_to_device(torch.randint(0, 2 * pad + 1, (n,), generator=rng), x.device)
    out = _crop(padded, dy, dx, h, w)
    if flip:
        mask = host_to_device(torch.rand(n, generator=rng) < 0.5, x.device)
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out


def _crop(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    n, _c = padded.shape[:2]
    iy = (dy[:, None] + torch.arange(h, device=dy.device)[None, :])  # [N, H]
    ix = (dx[:, None] + torch.arange(w, device=dx.device)[None, :])  # [N, W]
    batch = torch.arange(n, device=dy.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, iy[:, :, None], ix[:, None, :]]  # [N, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, rng: torch.Generator, size: int) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): zero one ``size`` x ``size`` square per image, centred at a
    random pixel and clipped at the borders."""
    n, _, h, w = x.shape
    cy = host_to_device(torch.randint(0, h, (n,), generator=rng), x.device)
    cx = host_to_device(torch.randint(0, w, (n,), generator=rng), x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= (cy[:, None] - size // 2)) & (ys < (cy[:, None] - size // 2 + size))  # [N, H]
    in_x = (xs >= (cx[:, None] - size // 2)) & (xs < (cx[:, None] - size // 2 + size))  # [N, W]
    mask = in_y[:, :, None] & in_x[:, None, :]
    return x.masked_fill(mask[:, None], 0.0)
