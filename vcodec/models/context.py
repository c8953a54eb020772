"""Checkerboard context model (He et al. 2021, "Checkerboard context model for efficient learned image
compression").

The latent's positions are split like a checkerboard. Anchors, (row + column)
even, are coded first with the hyperprior's Gaussian parameters alone; every
other position then also sees its already decoded anchor neighbours through a
masked 5x5 convolution, whose output corrects the hyperprior's means and scales
there. Two passes instead of the serial raster scan of Minnen et al.'s
autoregressive context: decoding stays parallel.

The correction is computed in the same fixed-point arithmetic as the
hyper-synthesis (vcodec.entropy.exact), on decoded anchors that are themselves
exact (integer symbols plus exact means), so a decoder on any device derives the
same entropy parameters. Its last layer starts at zero: a codec given a context
model starts out coding exactly as it did without one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def anchor_mask(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, height, width) bool, True at anchor positions ((row + column) even)."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols) % 2 == 0)[None, None]


class CheckerboardConv(nn.Conv2d):
    """Convolution that sees only the taps an odd step away, where a non-anchor's anchor neighbours lie."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5):
        super().__init__(in_ch, out_ch, kernel, padding=kernel // 2)
        offsets = torch.arange(kernel) - kernel // 2
        self.register_buffer("mask", ((offsets[:, None] + offsets[None, :]) % 2 != 0).float()[None, None],
                             persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, padding=self.padding)


class CheckerboardContext(nn.Module):
    """Decoded anchors (zero elsewhere) -> additive corrections to (means, scales) for the non-anchors."""

    def __init__(self, m: int):
        super().__init__()
        self.net = nn.Sequential(CheckerboardConv(m, m), nn.ReLU(inplace=True), nn.Conv2d(m, 2 * m, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, anchors: torch.Tensor) -> torch.Tensor:
        return self.net(anchors)
