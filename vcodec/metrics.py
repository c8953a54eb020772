"""Quality metrics on 8-bit 4:2:0 frames, as the video-coding world computes them.

PSNR-YUV = (6 * PSNR-Y + PSNR-U + PSNR-V) / 8 per frame; clip-level figures are
the mean of per-frame values.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vcodec.color import YUVFrame, yuv420_to_rgb

MAX_PSNR = 100.0  # reported for identical planes


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return MAX_PSNR if mse == 0 else min(MAX_PSNR, 10 * math.log10(255.0**2 / mse))


def yuv_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample (6 MSE-Y + MSE-U + MSE-V) / 8 of (n, 6, h, w) 4:2:0 tensors: the weighting of PSNR-YUV,
    shared by the training losses and the encoder's rate-distortion decisions."""
    se = (x_hat - x) ** 2
    return (6 * se[:, :4].mean((1, 2, 3)) + se[:, 4].mean((1, 2)) + se[:, 5].mean((1, 2))) / 8


def error_weight(lmbda: float) -> float:
    """Bits that one unit of squared error (0..1 samples, `yuv_mse`-weighted, summed over the 4:2:0 grid's
    positions) is worth at rate-distortion weight λ (on 8-bit MSE, per luma pixel): what the encoder's
    decisions and block motion's vector search weigh distortion by."""
    return lmbda * 255**2 * 4


def frame_psnr(ref: YUVFrame, test: YUVFrame) -> dict[str, float]:
    y, u, v = (psnr(a, b) for a, b in zip(ref.planes(), test.planes()))
    return {"psnr_y": y, "psnr_u": u, "psnr_v": v, "psnr_yuv": (6 * y + u + v) / 8}


def frame_psnr_rgb(ref: YUVFrame, test: YUVFrame) -> float:
    return psnr(yuv420_to_rgb(ref), yuv420_to_rgb(test))


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(ref: np.ndarray, test: np.ndarray) -> float:
    """MS-SSIM (Wang et al. 2003) of two 8-bit planes; fewer scales for small planes.

    Gaussian window 11 / sigma 1.5, valid-region statistics, 2x2 mean downsampling.
    """
    from scipy.ndimage import correlate1d

    x, y = ref.astype(np.float64), test.astype(np.float64)
    coords = np.arange(11, dtype=np.float64) - 5
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scales = max(1, min(len(_MS_SSIM_WEIGHTS), int(math.log2(min(ref.shape) / 11)) + 1))

    def blur(t: np.ndarray) -> np.ndarray:
        t = correlate1d(correlate1d(t, g, axis=0, mode="nearest"), g, axis=1, mode="nearest")
        return t[5:-5, 5:-5]

    values = []
    for s in range(scales):
        if min(x.shape) < 11:
            break
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs_map = (2 * sxy + c2) / (sxx + syy + c2)
        if s == scales - 1:
            values.append(max(0.0, float((((2 * mx * my + c1) / (mx**2 + my**2 + c1)) * cs_map).mean())))
        else:
            values.append(max(0.0, float(cs_map.mean())))
            h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
            x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
            y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
    weights = np.array(_MS_SSIM_WEIGHTS[: len(values)])
    weights /= weights.sum()
    return float(np.prod(np.array(values) ** weights))
