"""Periodic validation with real entropy coding: the EMA weights code held-apart frames to bytes.

Training losses are estimates (noise instead of rounding, likelihoods instead of
bytes); this is the number that matters. Each validation exports the EMA into a
fresh model, builds its coding tables, compresses and decompresses centre crops
of the validation frames at a few quality indices, and appends real bits per
pixel and PSNR-YUV to RUN_DIR/val.csv.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from vcodec.metrics import yuv_mse
from vcodec.models.keyframe import KeyframeCodec
from vcodec.training.data import load_video_frames


class KeyframeValidator:
    def __init__(self, paths: list[str], frames: int = 2, crop: int = 256, qualities: tuple[float, ...] = (1, 4, 7)):
        pool: list[torch.Tensor] = []
        for p in paths:
            pool += load_video_frames(p, crop, stride=1)[:frames]
        half = crop // 2  # frames are half-resolution 4:2:0 tensors
        self.frames = []
        for f in pool:
            top, left = (f.shape[1] - half) // 2, (f.shape[2] - half) // 2
            self.frames.append(f[None, :, top : top + half, left : left + half].float() / 255)
        self.qualities = qualities

    @torch.no_grad()
    def __call__(self, model: KeyframeCodec, ema: dict[str, torch.Tensor], step: int, run_dir: Path) -> None:
        if not self.frames:
            return
        fresh = KeyframeCodec(model.config)
        fresh.load_state_dict({k: v.detach().cpu() for k, v in ema.items()})
        fresh.eval().update_tables()
        path = run_dir / "val.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "quality", "bpp", "psnr_yuv"])
            for q in self.qualities:
                bits, psnr = 0.0, 0.0
                for x in self.frames:
                    data = fresh.compress(x, q).substream()
                    y_hat = fresh.decompress(data, *x.shape[-2:])
                    x_hat = (fresh.synthesize(y_hat, q, *x.shape[-2:]) * 255).round() / 255
                    bits += 8 * len(data) / (x.shape[-1] * x.shape[-2] * 4)
                    psnr += 10 * math.log10(1 / max(float(yuv_mse(x_hat, x)), 1e-12))
                writer.writerow([step, q, round(bits / len(self.frames), 5), round(psnr / len(self.frames), 3)])
