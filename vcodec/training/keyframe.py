"""Keyframe training stage: rate-distortion loss with lambda sampled per sample."""

from __future__ import annotations

import math

import torch

from vcodec.metrics import yuv_mse
from vcodec.models.keyframe import KeyframeCodec


def rd_loss(model: KeyframeCodec, x: torch.Tensor, q: torch.Tensor,
            forward: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """lambda(q) * 255^2 * D + R, R in bits per luma pixel; returns (loss, metrics).

    `forward` is the module to call (a DistributedDataParallel wrapper under torchrun).
    """
    out = (forward or model)(x, q)
    luma_pixels = x.shape[-1] * x.shape[-2] * 4
    bits = -(torch.log2(out["y_likelihood"].float()).sum((1, 2, 3))
             + torch.log2(out["z_likelihood"].float()).sum((1, 2, 3)))
    bpp = bits / luma_pixels
    mse = yuv_mse(out["x_hat"].float(), x)
    loss = (model.lmbda(q) * 255**2 * mse + bpp).mean()
    psnr = float((10 * torch.log10(1.0 / mse.detach().clamp_min(1e-10))).mean())
    return loss, {"bpp": float(bpp.detach().mean()), "psnr_yuv": psnr}


def sample_quality(batch: int, levels: int, step: int, seed: int) -> torch.Tensor:
    """Continuous quality per sample, uniform over [0, levels-1] (trains interpolation too)."""
    g = torch.Generator().manual_seed(seed * 7_000_003 + step + 1)
    return torch.rand(batch, generator=g) * (levels - 1)


def psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))
