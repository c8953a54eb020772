"""Differentiable entropy models used in training, and their export to tables.

- `FactorizedPrior`: the non-parametric per-channel density of Ballé et al. 2018
  (appendix 6.1) for the hyper-latent z.
- `gaussian_likelihood`: the Gaussian conditional of Minnen et al. 2018 for the
  latent y given the hyperprior's mean and scale.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vcodec.entropy.tables import SymbolTables, gaussian_scale_table

LIKELIHOOD_BOUND = 1e-9
SCALE_BOUND = 0.11


class FactorizedPrior(nn.Module):
    """Per-channel learned CDF: c(x) = sigmoid(f_K(...f_1(x))), monotone by construction."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """x: (C, 1, n) -> logits of the CDF at x, (C, 1, n)."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(round(z)) under the prior, evaluated at (noisy or rounded) z of shape (B, C, H, W)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cdf(v - 0.5)
        upper = self._logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lik.reshape(c, b, h, w).permute(1, 0, 2, 3)
        return lik.clamp_min(LIKELIHOOD_BOUND)

    @torch.no_grad()
    def tables(self, radius: int = 255, tail_mass: float = 1e-7) -> SymbolTables:
        """Integer tables, one per channel, covering all but `tail_mass` of each density."""
        grid = torch.arange(-radius, radius + 1, dtype=torch.float64)
        c = len(self.biases[0])
        v = grid.repeat(c, 1, 1)
        params = [p.double() for p in (*self.matrices, *self.biases, *self.factors)]
        k = len(self.matrices)
        mats, biases, factors = params[:k], params[k : 2 * k], params[2 * k :]

        def logits(x: torch.Tensor) -> torch.Tensor:
            for i, (m, b) in enumerate(zip(mats, biases)):
                x = torch.matmul(F.softplus(m), x) + b
                if i < len(factors):
                    x = x + torch.tanh(factors[i]) * torch.tanh(x)
            return x

        cdf_lo = torch.sigmoid(logits(v - 0.5))[:, 0].numpy()
        cdf_hi = torch.sigmoid(logits(v + 0.5))[:, 0].numpy()
        pmfs, offsets, tails = [], [], []
        for ch in range(c):
            keep = np.nonzero((cdf_hi[ch] > tail_mass / 2) & (cdf_lo[ch] < 1 - tail_mass / 2))[0]
            lo, hi = (int(keep[0]), int(keep[-1])) if keep.size else (radius, radius)
            pmf = cdf_hi[ch, lo : hi + 1] - cdf_lo[ch, lo : hi + 1]
            pmfs.append(pmf)
            offsets.append(lo - radius)
            tails.append(float(cdf_lo[ch, lo] + 1.0 - cdf_hi[ch, hi]))
        return SymbolTables.from_pmfs(pmfs, offsets, tails)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def gaussian_likelihood(y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """P(round(y - mean)) under N(0, scale) on the integers, symmetric form for stability."""
    values = torch.abs(y - means)
    scales = scales.clamp_min(SCALE_BOUND)
    upper = _std_normal_cdf((0.5 - values) / scales)
    lower = _std_normal_cdf((-0.5 - values) / scales)
    return (upper - lower).clamp_min(LIKELIHOOD_BOUND)


def scale_indices(scales: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Index of the smallest table scale >= each scale (exact comparisons in float64)."""
    idx = torch.searchsorted(table, scales.double().contiguous())
    return idx.clamp_(0, len(table) - 1)


__all__ = [
    "FactorizedPrior",
    "gaussian_likelihood",
    "gaussian_scale_table",
    "scale_indices",
    "SCALE_BOUND",
]
