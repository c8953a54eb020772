"""Optical flow for motion estimation: warping and a small SpyNet-style pyramid network.

Flow lives on the codec's half-resolution 4:2:0 grid (see vcodec.color) and is
measured in half-resolution pixels; the same displacement moves all 6 channels.
Warping is backward and bilinear: out(p) = ref(p + flow(p)); samples that fall
outside the frame take the nearest border pixel (grid_sample's "border" mode),
which suits camera pans better than zeros.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vcodec.layers import conv


def warp(ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward bilinear warp of ref (B, C, H, W) by flow (B, 2, H, W) in pixels (x, y)."""
    b, _, h, w = ref.shape
    ys = torch.arange(h, device=ref.device, dtype=ref.dtype)
    xs = torch.arange(w, device=ref.device, dtype=ref.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x = gx + flow[:, 0]
    y = gy + flow[:, 1]
    grid = torch.stack([2 * (x + 0.5) / w - 1, 2 * (y + 0.5) / h - 1], dim=-1)
    return F.grid_sample(ref, grid, mode="bilinear", padding_mode="border", align_corners=False)


class FlowLevel(nn.Module):
    """One pyramid level: refines the flow from [current, warped reference, flow]."""

    def __init__(self, channels: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            conv(2 * channels + 2, width, 5, 1), nn.ReLU(inplace=True),
            conv(width, width, 5, 1), nn.ReLU(inplace=True),
            conv(width, width // 2, 5, 1), nn.ReLU(inplace=True),
            conv(width // 2, 2, 5, 1),
        )

    def forward(self, cur: torch.Tensor, ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return flow + self.net(torch.cat([cur, warp(ref, flow), flow], dim=1))


class FlowNet(nn.Module):
    """Coarse-to-fine flow (Ranjan & Black 2017, SpyNet), sized for CPU coding.

    Inputs must be divisible by 2**(levels - 1).
    """

    def __init__(self, channels: int = 6, levels: int = 4, width: int = 32):
        super().__init__()
        self.levels = nn.ModuleList(FlowLevel(channels, width) for _ in range(levels))

    def forward(self, cur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Flow that warps `ref` onto `cur`."""
        pyramid = [(cur, ref)]
        for _ in range(len(self.levels) - 1):
            c, r = pyramid[-1]
            pyramid.append((F.avg_pool2d(c, 2), F.avg_pool2d(r, 2)))
        c, r = pyramid[-1]
        flow = torch.zeros(c.shape[0], 2, *c.shape[-2:], device=c.device, dtype=c.dtype)
        for level, (c, r) in zip(self.levels, reversed(pyramid)):
            if flow.shape[-2:] != c.shape[-2:]:
                flow = 2 * F.interpolate(flow, size=c.shape[-2:], mode="bilinear", align_corners=False)
            flow = level(c, r, flow)
        return flow
