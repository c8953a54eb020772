"""YUV 4:2:0 frames and their tensor form.

The codec works natively on 4:2:0: the luma plane is pixel-unshuffled by 2 and
stacked with the two chroma planes, giving 6 channels at half resolution
(DCVC-style). No colour conversion happens on the coding path, so what vcodec
codes is exactly what H.264 codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class YUVFrame:
    """One 8-bit 4:2:0 frame. Chroma planes are ceil(H/2) x ceil(W/2)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v

    def tobytes(self) -> bytes:
        return self.y.tobytes() + self.u.tobytes() + self.v.tobytes()


def chroma_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of a 4:2:0 chroma plane."""
    return (width + 1) // 2, (height + 1) // 2


def frame_to_tensor(frame: YUVFrame) -> torch.Tensor:
    """Frame -> (1, 6, ceil(H/2), ceil(W/2)) float tensor in [0, 1]."""
    cw, ch = chroma_size(frame.width, frame.height)
    y = torch.from_numpy(np.ascontiguousarray(frame.y)).float()[None, None]
    pad_w, pad_h = 2 * cw - frame.width, 2 * ch - frame.height
    if pad_w or pad_h:
        y = F.pad(y, (0, pad_w, 0, pad_h), mode="replicate")
    y4 = F.pixel_unshuffle(y, 2)
    u = torch.from_numpy(np.ascontiguousarray(frame.u)).float()[None, None]
    v = torch.from_numpy(np.ascontiguousarray(frame.v)).float()[None, None]
    return torch.cat([y4, u, v], dim=1) / 255.0


def tensor_to_frame(x: torch.Tensor, width: int, height: int) -> YUVFrame:
    """(1, 6, h, w) tensor in [0, 1] -> 8-bit frame cropped to width x height."""
    cw, ch = chroma_size(width, height)
    q = (x[:, :, :ch, :cw].clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    y = F.pixel_shuffle(q[:, :4], 2)[0, 0, :height, :width]
    return YUVFrame(y.numpy().copy(), q[0, 4].numpy().copy(), q[0, 5].numpy().copy())


def quantize_tensor(x: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] tensor to the 8-bit grid the output video will carry."""
    return (x.clamp(0, 1) * 255.0).round() / 255.0


# BT.601 limited range, the default for SD and most web video.
_RGB_TO_YUV = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
) / 255.0
_YUV_OFFSET = np.array([16.0, 128.0, 128.0])
_YUV_TO_RGB = np.linalg.inv(_RGB_TO_YUV).astype(np.float32)


def rgb_to_yuv420(rgb: np.ndarray) -> YUVFrame:
    """8-bit RGB (H, W, 3) -> 4:2:0 frame (BT.601 limited range, 2x2 mean chroma)."""
    h, w = rgb.shape[:2]
    yuv = rgb.astype(np.float64) @ _RGB_TO_YUV.T + _YUV_OFFSET
    y = np.clip(np.round(yuv[..., 0]), 0, 255).astype(np.uint8)
    cw, ch = chroma_size(w, h)
    c = np.pad(yuv[..., 1:], ((0, 2 * ch - h), (0, 2 * cw - w), (0, 0)), mode="edge")
    c = c.reshape(ch, 2, cw, 2, 2).mean(axis=(1, 3))
    c = np.clip(np.round(c), 0, 255).astype(np.uint8)
    return YUVFrame(y, np.ascontiguousarray(c[..., 0]), np.ascontiguousarray(c[..., 1]))


def yuv420_to_rgb(frame: YUVFrame) -> np.ndarray:
    """4:2:0 frame -> 8-bit RGB (H, W, 3), nearest chroma upsampling, BT.601 limited."""
    h, w = frame.height, frame.width
    u = np.repeat(np.repeat(frame.u, 2, axis=0), 2, axis=1)[:h, :w]
    v = np.repeat(np.repeat(frame.v, 2, axis=0), 2, axis=1)[:h, :w]
    yuv = np.stack([frame.y, u, v], axis=-1).astype(np.float32) - _YUV_OFFSET.astype(np.float32)
    rgb = yuv @ _YUV_TO_RGB.T
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
