"""Quality metrics on 8-bit 4:2:0 frames, as the video-coding world computes them.

PSNR-YUV = (6 * PSNR-Y + PSNR-U + PSNR-V) / 8 per frame; clip-level figures are
the mean of per-frame values.
"""

from __future__ import annotations

import math

import numpy as np

from vcodec.color import YUVFrame, yuv420_to_rgb

MAX_PSNR = 100.0  # reported for identical planes


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return MAX_PSNR if mse == 0 else min(MAX_PSNR, 10 * math.log10(255.0**2 / mse))


def frame_psnr(ref: YUVFrame, test: YUVFrame) -> dict[str, float]:
    y, u, v = (psnr(a, b) for a, b in zip(ref.planes(), test.planes()))
    return {"psnr_y": y, "psnr_u": u, "psnr_v": v, "psnr_yuv": (6 * y + u + v) / 8}


def frame_psnr_rgb(ref: YUVFrame, test: YUVFrame) -> float:
    return psnr(yuv420_to_rgb(ref), yuv420_to_rgb(test))


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
