"""Integer probability tables: the only thing the entropy coder ever sees.

Every symbol is coded with one of T fixed tables. Tables are integer counts that
sum to 2**PRECISION, built once (at export time) from the float models and
shipped inside the weights file, so encoder and decoder use bit-identical
probabilities on any machine. Each table covers the symbol values
[offset, offset + length) and ends with one escape entry for values outside
that range (their value is sent on a side channel).
"""

from __future__ import annotations

import math

import numpy as np
import torch

PRECISION = 16
TOTAL = 1 << PRECISION


def quantize_pmf(pmf: np.ndarray, tail: float) -> np.ndarray:
    """Float pmf (+ tail mass for the escape) -> int counts summing to TOTAL, all >= 1."""
    probs = np.append(np.asarray(pmf, dtype=np.float64), max(tail, 0.0))
    probs = np.clip(probs, 0.0, None)
    probs = probs / probs.sum()
    free = TOTAL - len(probs)
    counts = np.floor(probs * free).astype(np.int64) + 1
    counts[np.argmax(counts)] += TOTAL - counts.sum()
    return counts.astype(np.int32)


class SymbolTables:
    """A set of T integer tables with per-table value offset and length."""

    def __init__(self, counts: torch.Tensor, offsets: torch.Tensor, lengths: torch.Tensor):
        self.counts = counts.to(torch.int32)
        self.offsets = offsets.to(torch.int64)
        self.lengths = lengths.to(torch.int64)
        self._models: dict[int, object] = {}

    @classmethod
    def from_pmfs(cls, pmfs: list[np.ndarray], offsets: list[int], tails: list[float]) -> SymbolTables:
        width = max(len(p) for p in pmfs) + 1
        counts = torch.zeros(len(pmfs), width, dtype=torch.int32)
        for t, (pmf, tail) in enumerate(zip(pmfs, tails)):
            q = quantize_pmf(pmf, tail)
            counts[t, : len(q)] = torch.from_numpy(q)
        lengths = torch.tensor([len(p) for p in pmfs])
        return cls(counts, torch.tensor(offsets), lengths)

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def probabilities(self, t: int) -> np.ndarray:
        """Table t as float64 probabilities (exact: counts / 2**PRECISION)."""
        n = int(self.lengths[t]) + 1
        return self.counts[t, :n].numpy().astype(np.float64) / TOTAL

    def bits(self, symbols: torch.Tensor, table_ids: torch.Tensor) -> float:
        """Ideal code length in bits of the symbols under their tables (for rate control)."""
        idx = symbols.long() - self.offsets[table_ids]
        inside = (idx >= 0) & (idx < self.lengths[table_ids])
        idx = torch.where(inside, idx, self.lengths[table_ids])
        p = self.counts[table_ids, idx].double() / TOTAL
        return float(-torch.log2(p).sum())

    def state(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts, "offsets": self.offsets, "lengths": self.lengths}


def gaussian_scale_table(lo: float = 0.11, hi: float = 64.0, levels: int = 64) -> torch.Tensor:
    """Log-spaced standard deviations the Gaussian conditional snaps to."""
    return torch.exp(torch.linspace(math.log(lo), math.log(hi), levels, dtype=torch.float64))


def gaussian_tables(scales: torch.Tensor, tail_mass: float = 1e-7) -> SymbolTables:
    """One table per scale for a zero-mean quantized Gaussian N(0, s) on integers."""
    pmfs, offsets, tails = [], [], []
    z = -_normal_icdf(tail_mass / 2)
    for s in scales.tolist():
        half = max(1, math.ceil(s * z))
        k = np.arange(-half, half + 1, dtype=np.float64)
        upper = _normal_cdf((k + 0.5) / s)
        lower = _normal_cdf((k - 0.5) / s)
        pmfs.append(upper - lower)
        offsets.append(-half)
        tails.append(2.0 * _normal_cdf(np.array([-(half + 0.5) / s]))[0])
    return SymbolTables.from_pmfs(pmfs, offsets, tails)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(-np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def _normal_icdf(p: float) -> float:
    lo, hi = -40.0, 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _normal_cdf(np.array([mid]))[0] < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
