"""Building blocks shared by the transforms: convolutions and GDN."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """'Same'-padded convolution; stride 2 halves the resolution."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that exactly doubles the resolution (stride 2)."""
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016).

    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2); the inverse (IGDN) multiplies.
    beta and gamma are kept non-negative by squaring their parameters, which keeps
    gradients alive near zero (a clamp would not).
    """

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_sqrt = nn.Parameter(torch.ones(channels))
        self.gamma_sqrt = nn.Parameter(torch.eye(channels) * gamma_init**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta_sqrt**2 + 1e-6
        gamma = (self.gamma_sqrt**2)[:, :, None, None]
        norm = F.conv2d(x * x, gamma, beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
