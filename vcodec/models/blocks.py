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


def predictions(units: np.ndarray) -> np.ndarray:
    """`_predictions` for every cell at once: (2, rows, cols) -> (2, rows, cols). A cell's predictor depends
    only on the final values of its neighbours, so the whole grid's follows from the grid."""
    _, rows, cols = units.shape
    padded = np.zeros((2, rows + 1, cols + 2), dtype=np.int64)  # a zero row above, zero columns either side
    padded[:, 1:, 1:-1] = units
    left, top = padded[:, 1:, :-2], padded[:, :-1, 1:-1]
    corner = padded[:, :-1, 2:].copy()
    if cols > 1:  # the top-right cell is missing at the right edge: the top-left one stands in
        corner[:, :, -1] = padded[:, :-1, -3]
    pred = np.median(np.stack([left, top, corner]), axis=0).astype(np.int64)
    pred[:, 0] = left[:, 0]
    return pred


def code_lengths(diffs: np.ndarray) -> np.ndarray:
    """Bits of each signed Exp-Golomb code of `encode_vectors` for integer differences from the prediction."""
    codes = np.where(diffs > 0, 2 * diffs - 1, -2 * diffs)
    return 2 * np.floor(np.log2(codes + 1)).astype(np.int64) + 1


def vector_bits(units: torch.Tensor) -> int:
    """Exact bits `encode_vectors` spends on (2, rows, cols) vectors, before the final byte's padding."""
    grid = units.cpu().numpy().astype(np.int64)
    return int(code_lengths(grid - predictions(grid)).sum())


def snap_block_motion(units: torch.Tensor, cur: torch.Tensor, ref: torch.Tensor, warp_fn, block: int,
                      bits_per_error: float, height: int, width: int, rounds: int = 4) -> torch.Tensor:
    """Rate-distortion pass over searched vectors: each cell may instead take its predictor's vector, its left
    or top neighbour's, or move one unit towards its predictor, where that costs fewer bits than the warping
    error it adds, weighted by `bits_per_error` (bits per unit of summed `yuv_mse`-weighted squared error over
    the cell's pixels). The search alone spends bits on vectors that differ from their predictor by noise;
    H.264 encoders weigh motion bits against the prediction error in the same way. Cells decide together from
    the previous round's predictors; a round is kept only if the frame's total cost falls."""
    rows, cols = units.shape[-2:]
    grid = units.cpu().numpy().astype(np.int64)

    def cell_errors(candidate: np.ndarray) -> np.ndarray:
        field = block_field(torch.from_numpy(candidate), block, *cur.shape[-2:]).to(cur.device)
        se = (warp_fn(ref, field) - cur) ** 2
        weighted = ((6 * se[:, :4].mean(1) + se[:, 4] + se[:, 5]) / 8)[0, :height, :width]
        weighted = F.pad(weighted, (0, cols * block - width, 0, rows * block - height))
        return weighted.reshape(rows, block, cols, block).sum((1, 3)).double().cpu().numpy()

    def costs(candidate: np.ndarray, pred: np.ndarray) -> np.ndarray:
        rate = code_lengths(candidate - pred).sum(0)
        return rate + bits_per_error * cell_errors(candidate)

    total = costs(grid, predictions(grid)).sum()
    for _ in range(rounds):
        pred = predictions(grid)
        left = np.concatenate([grid[:, :, :1], grid[:, :, :-1]], axis=2)
        top = np.concatenate([grid[:, :1], grid[:, :-1]], axis=1)
        options = [grid, pred, left, top, grid + np.sign(pred - grid)]
        choice = np.argmin(np.stack([costs(o, pred) for o in options]), axis=0)
        snapped = np.take_along_axis(np.stack(options), choice[None, None], axis=0)[0]
        new_total = costs(snapped, predictions(snapped)).sum()
        if not new_total < total:
            break
        grid, total = snapped, new_total
    return torch.from_numpy(grid).to(units.device)


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
