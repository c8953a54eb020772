"""A temporal prior for hyper-latents: p(ẑ_t | ẑ_t-1) per channel, as integer tables.

Within a GOP a P-frame's hyper-latent ẑ is 90-99% equal to the previous
P-frame's at the same position (docs/TRAINING.md), which the factorized prior
cannot use. Here each channel c has one table per class k of the previous
value at the same position (clipped to [-RANGE, RANGE]): symbol i of channel c
is coded with table c * CLASSES + k. Table ids come from integers the decoder
already parsed, and the tables are integer counts, so parsing stays
bit-identical on every device (DESIGN §5).

The tables are fitted by counting ẑ pairs of consecutive P-frames coded by the
frozen model (tools/fit_temporal_prior.py), each channel's counts smoothed
towards that channel's factorized table: a class never seen codes exactly as
the factorized prior does.
"""

from __future__ import annotations

import numpy as np
import torch

from vcodec.entropy.tables import TOTAL, SymbolTables

RANGE = 3
CLASSES = 2 * RANGE + 1


def temporal_table_ids(z_prev: torch.Tensor) -> torch.Tensor:
    """Table id of every symbol of a (1, C, h, w) ẑ given the previous frame's ẑ (same shape)."""
    c = z_prev.shape[1]
    channel = torch.arange(c).view(1, c, 1, 1)
    return channel * CLASSES + z_prev.long().clamp(-RANGE, RANGE) + RANGE


class TemporalCounts:
    """Histograms of ẑ_t per (channel, class of ẑ_t-1) over each channel's factorized support."""

    def __init__(self, factorized: SymbolTables):
        self.factorized = factorized
        channels, width = len(factorized), int(factorized.lengths.max()) + 1
        self.counts = np.zeros((channels, CLASSES, width), dtype=np.float64)

    def add(self, z: torch.Tensor, z_prev: torch.Tensor) -> None:
        """Count one pair of consecutive P-frame hyper-latents (1, C, h, w)."""
        tables = self.factorized
        channel = torch.arange(z.shape[1]).view(1, -1, 1, 1).expand_as(z)
        idx = z.long() - tables.offsets[channel]
        length = tables.lengths[channel]
        idx = torch.where((idx >= 0) & (idx < length), idx, length)  # out of range: the escape entry
        k = z_prev.long().clamp(-RANGE, RANGE) + RANGE
        np.add.at(self.counts, (channel.flatten().numpy(), k.flatten().numpy(), idx.flatten().numpy()), 1.0)

    def tables(self, smoothing: float) -> SymbolTables:
        """Integer tables: counts plus `smoothing` pseudo-counts spread as the factorized table, per class."""
        tables = self.factorized
        pmfs, offsets, tails = [], [], []
        for c in range(len(tables)):
            n = int(tables.lengths[c])
            prior = tables.counts[c, : n + 1].numpy().astype(np.float64) / TOTAL
            for k in range(CLASSES):
                seen = self.counts[c, k, : n + 1]
                p = (seen + smoothing * prior) / (seen.sum() + smoothing)
                pmfs.append(p[:n])
                offsets.append(int(tables.offsets[c]))
                tails.append(float(p[n]))
        return SymbolTables.from_pmfs(pmfs, offsets, tails)
