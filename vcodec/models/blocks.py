"""Block motion: one vector per cell of the 4:2:0 grid, as H.264 sends motion.

The learned motion autoencoder reproduces a sharpened flow field only to within
several dB of warp (docs/TRAINING.md); a field that is constant over BxB cells,
each vector fitted to the warping error and sent in quarter luma pixels, warps
better at fewer bits on natural video. The vectors are integers, coded with
median prediction and signed Exp-Golomb codes, so every device parses and
rebuilds exactly the same field.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vcodec.errors import StreamError
from vcodec.metrics import yuv_mse

VECTOR_UNIT = 8  # vectors in 1/8 px of the 4:2:0 (half-resolution) grid: quarter luma pixels
VECTOR_LIMIT = 2**15  # |component| < this, in VECTOR_UNITs
FIT_STEPS = 30
FIT_STEP_SIZE = 0.1


def grid_shape(height: int, width: int, block: int) -> tuple[int, int]:
    """Rows and columns of cells that cover a height x width frame (4:2:0 grid)."""
    return math.ceil(height / block), math.ceil(width / block)


def _expand(cells: torch.Tensor, block: int, height: int, width: int) -> torch.Tensor:
    """(1, 2, rows, cols) cell vectors -> (1, 2, height, width), each constant over its cell; cells past the
    covered frame (padding) repeat the edge cells."""
    rows, cols = cells.shape[-2:]
    field = F.pad(cells, (0, math.ceil(width / block) - cols, 0, math.ceil(height / block) - rows), mode="replicate")
    return field.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)[..., :height, :width]


def block_field(units: torch.Tensor, block: int, height: int, width: int) -> torch.Tensor:
    """(2, rows, cols) integer vectors -> (1, 2, height, width) flow in pixels of the 4:2:0 grid."""
    return _expand(units.double().div(VECTOR_UNIT).float()[None], block, height, width)


def fit_block_motion(cur: torch.Tensor, ref: torch.Tensor, start: torch.Tensor, warp_fn, block: int,
                     rows: int, cols: int, steps: int = FIT_STEPS) -> torch.Tensor:
    """The encoder's search: cell vectors from `start`'s (a dense field's) cell means, refined by gradient steps
    on the warping error, rounded to VECTOR_UNITs: (2, rows, cols) int64 for the frame's covered cells."""
    height, width = cur.shape[-2:]
    with torch.inference_mode(False), torch.enable_grad():
        cur, ref = cur.detach().clone(), ref.detach().clone()
        vectors = F.avg_pool2d(start.detach().clone(), block, ceil_mode=True)[..., :rows, :cols]
        vectors = vectors.contiguous().requires_grad_(True)
        optimizer = torch.optim.Adam([vectors], lr=FIT_STEP_SIZE)
        for _ in range(steps):
            field = _expand(vectors, block, height, width)
            (vectors.grad,) = torch.autograd.grad(yuv_mse(warp_fn(ref, field), cur).sum(), [vectors])
            optimizer.step()
    units = torch.round(vectors.detach()[0] * VECTOR_UNIT).long()
    return units.clamp(-VECTOR_LIMIT + 1, VECTOR_LIMIT - 1)


def _predictions(units: np.ndarray, r: int, c: int) -> np.ndarray:
    """H.264's motion vector predictor: the median of the left, top and top-right cells (top-left at the
    right edge); the left cell alone on the first row; missing cells count as zero vectors."""
    cols = units.shape[2]
    zero = np.zeros(2, dtype=np.int64)
    left = units[:, r, c - 1] if c > 0 else zero
    if r == 0:
        return left
    top = units[:, r - 1, c]
    corner = units[:, r - 1, c + 1] if c + 1 < cols else (units[:, r - 1, c - 1] if c > 0 else zero)
    return np.median(np.stack([left, top, corner]), axis=0).astype(np.int64)


def encode_vectors(units: torch.Tensor) -> bytes:
    """(2, rows, cols) integer vectors -> bytes: each component's difference from its prediction as a signed
    Exp-Golomb code (0, 1, -1, 2, -2, ... -> 1, 010, 011, 00100, ...), bits packed MSB first."""
    grid = units.cpu().numpy().astype(np.int64)
    bits: list[str] = []
    for r in range(grid.shape[1]):
        for c in range(grid.shape[2]):
            for d in grid[:, r, c] - _predictions(grid, r, c):
                code = 2 * int(d) - 1 if d > 0 else -2 * int(d)
                word = bin(code + 1)[2:]
                bits.append("0" * (len(word) - 1) + word)
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def decode_vectors(data: bytes, rows: int, cols: int) -> torch.Tensor:
    """Inverse of `encode_vectors` for a rows x cols grid; damaged data raises StreamError."""
    text = "".join(f"{byte:08b}" for byte in data)
    grid = np.zeros((2, rows, cols), dtype=np.int64)
    pos = 0
    for r in range(rows):
        for c in range(cols):
            pred = _predictions(grid, r, c)
            for k in range(2):
                zeros = 0
                while pos + zeros < len(text) and text[pos + zeros] == "0":
                    zeros += 1
                end = pos + 2 * zeros + 1
                if end > len(text) or zeros > 17:
                    raise StreamError("block motion vectors: the data ends inside a vector or is damaged")
                code = int(text[pos + zeros:end], 2) - 1
                pos = end
                d = (code + 1) // 2 if code % 2 else -(code // 2)
                value = int(pred[k]) + d
                if abs(value) >= VECTOR_LIMIT:
                    raise StreamError("block motion vectors: a vector is out of range (damaged data)")
                grid[k, r, c] = value
    return torch.from_numpy(grid)
