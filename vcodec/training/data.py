"""Training data: natural images and video frames as 4:2:0 tensors, random crops.

Every frame is held in memory as a (6, h/2, w/2) uint8 tensor (the codec's own
layout). Crops are drawn from a generator seeded by (seed, step), so a resumed run
sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from vcodec.color import YUVFrame, frame_to_tensor, rgb_to_yuv420
from vcodec.video import VIDEO_SUFFIXES, read_frames

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm"}


def to_uint8_tensor(frame: YUVFrame) -> torch.Tensor:
    return (frame_to_tensor(frame)[0] * 255).round().to(torch.uint8)


def list_files(root: str | os.PathLike, suffixes: set[str], exclude=()) -> list[Path]:
    """A file itself, or the files below a folder with these suffixes, minus those whose stem is excluded."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes)
    return [p for p in files if p.stem not in set(exclude)]


def load_images(root: str | os.PathLike, min_size: int) -> list[torch.Tensor]:
    out = []
    for path in tqdm(list_files(root, IMAGE_SUFFIXES), desc=f"images {Path(root).name}", leave=False):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        if min(rgb.shape[:2]) >= min_size:
            out.append(to_uint8_tensor(rgb_to_yuv420(rgb)))
    return out


def load_video_frames(root: str | os.PathLike, min_size: int, stride: int = 1, exclude=()) -> list[torch.Tensor]:
    out = []
    for path in tqdm(list_files(root, VIDEO_SUFFIXES, exclude), desc=f"clips {Path(root).name}", leave=False):
        frames, info = read_frames(path)
        if min(info.width, info.height) >= min_size:
            out.extend(to_uint8_tensor(f) for f in frames[::stride])
    return out


def load_clips(root: str | os.PathLike, min_size: int, exclude=()) -> list[torch.Tensor]:
    """Each clip as one (T, 6, h, w) uint8 tensor, for training on frame sequences."""
    out = []
    for path in tqdm(list_files(root, VIDEO_SUFFIXES, exclude), desc=f"clips {Path(root).name}", leave=False):
        frames, info = read_frames(path)
        if min(info.width, info.height) >= min_size and len(frames) > 1:
            out.append(torch.stack([to_uint8_tensor(f) for f in frames]))
    return out


def flip(x: torch.Tensor, horizontal: bool, vertical: bool) -> torch.Tensor:
    """Flip 6-channel 4:2:0 tensors (..., 6, h, w); the 4 luma phases swap places."""
    if horizontal:
        x = x.flip(-1)[..., [1, 0, 3, 2, 4, 5], :, :]
    if vertical:
        x = x.flip(-2)[..., [2, 3, 0, 1, 4, 5], :, :]
    return x


class CropSampler:
    """Random crops (luma size `crop`, even) from a pool of frames or clips."""

    def __init__(self, pool: list[torch.Tensor], crop: int, seed: int = 0, rank: int = 0):
        if not pool:
            raise ValueError("no training data large enough for the crop size")
        self.pool, self.half, self.seed, self.rank = pool, crop // 2, seed, rank

    def _generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + step + self.rank * 10**12)

    def batch(self, step: int, size: int, frames: int = 0) -> torch.Tensor:
        """(size, 6, c, c) float crops; with frames > 0, (size, frames, 6, c, c) sequences."""
        g = self._generator(step)
        out = []
        for _ in range(size):
            item = self.pool[int(torch.randint(len(self.pool), (1,), generator=g))]
            h, w = item.shape[-2:]
            top = int(torch.randint(h - self.half + 1, (1,), generator=g))
            left = int(torch.randint(w - self.half + 1, (1,), generator=g))
            if frames:
                start = int(torch.randint(item.shape[0] - frames + 1, (1,), generator=g))
                item = item[start : start + frames]
            crop = item[..., top : top + self.half, left : left + self.half]
            hv = torch.randint(2, (2,), generator=g).tolist()
            out.append(flip(crop, bool(hv[0]), bool(hv[1])))
        return torch.stack(out).float() / 255.0
