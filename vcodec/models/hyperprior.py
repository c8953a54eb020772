"""Mean-scale hyperprior codec (Minnen, Ballé, Toderici 2018, without context model).

x -> g_a -> y (gained per quality) -> h_a -> z; z is coded with a factorized
prior, y with a Gaussian conditional whose mean and scale come from h_s(z). The
same module codes keyframes (6-channel 4:2:0 pixels), motion (2-channel flow)
and residuals: only the channel counts differ.

Variable rate (Cui et al. 2021, "Asymmetric gained deep image compression"): a
quality index q in [0, Q-1] selects a per-channel gain applied to y before
quantization and an inverse gain after it. Fractional q interpolates gains
log-linearly, so one model covers a continuous rate range.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vcodec.entropy import coder
from vcodec.entropy.exact import ExactHyperSynthesis
from vcodec.entropy.models import FactorizedPrior, gaussian_likelihood, scale_indices
from vcodec.entropy.tables import SymbolTables, gaussian_scale_table, gaussian_tables
from vcodec.layers import GDN, conv, deconv

PAD = 32  # input padding multiple: 3 stride-2 stages in g_a, 2 in h_a
# Rate-distortion trade-offs per quality index: loss = lambda * 255^2 * MSE + bpp.
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


@dataclass
class LadderConfig:
    """Base of model configs: the lambda of each quality index."""

    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        return asdict(self)


def initial_log_gains(lambdas: tuple[float, ...]) -> torch.Tensor:
    """Gains start at sqrt(lambda / lambda_mid): the step size of a high-rate MSE quantizer."""
    lam = torch.tensor(lambdas, dtype=torch.float64)
    return (0.5 * torch.log(lam / lam[len(lam) // 2])).float()


class RateLadder:
    """Mixin for codecs with a quality ladder: `levels` and the (interpolated) lambda of a quality."""

    config: LadderConfig
    log_lambdas: torch.Tensor

    def _register_ladder(self, lambdas: tuple[float, ...]) -> None:
        self.register_buffer("log_lambdas", torch.log(torch.tensor(lambdas, dtype=torch.float32)))

    @property
    def levels(self) -> int:
        return self.config.levels

    def lmbda(self, q: torch.Tensor) -> torch.Tensor:
        """lambda for (fractional) quality q, interpolated log-linearly."""
        return torch.exp(log_interp(self.log_lambdas, q))


@dataclass
class Latents:
    """What one hyperprior codes to: the two substreams and the decoded latent."""

    z_bytes: bytes
    y_bytes: bytes
    y_hat: torch.Tensor


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def log_interp(log_table: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Rows of a per-level table of logs, interpolated linearly at fractional q (clamped)."""
    levels = log_table.shape[0]
    q = q.clamp(0, levels - 1)
    lo = q.floor().long().clamp(max=levels - 2)
    t = (q - lo).view(-1, *([1] * (log_table.dim() - 1)))
    return log_table[lo] * (1 - t) + log_table[lo + 1] * t


class GainUnit(nn.Module):
    """Per-quality channel gains, interpolated log-linearly for fractional quality."""

    def __init__(self, levels: int, channels: int, init_log: torch.Tensor):
        super().__init__()
        self.log_gain = nn.Parameter(init_log[:, None].repeat(1, channels).clone())

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return torch.exp(log_interp(self.log_gain, q))[:, :, None, None]


class MeanScaleHyperprior(nn.Module):
    def __init__(self, in_ch: int, n: int, m: int, init_log_gain: torch.Tensor, out_ch: int | None = None):
        super().__init__()
        out_ch = out_ch or in_ch
        self.n, self.m = n, m
        self.g_a = nn.Sequential(
            conv(in_ch, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m, 3, 1)
        )
        self.g_s = nn.Sequential(
            conv(m, n, 3, 1), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True), deconv(n, out_ch),
        )
        self.h_a = nn.Sequential(
            conv(m, n, 3, 1), nn.LeakyReLU(inplace=True), conv(n, n), nn.LeakyReLU(inplace=True), conv(n, n)
        )
        self.h_s = nn.Sequential(
            deconv(n, m), nn.ReLU(inplace=True), deconv(m, m), nn.ReLU(inplace=True), conv(m, 2 * m, 3, 1)
        )
        self.z_prior = FactorizedPrior(n)
        levels = len(init_log_gain)
        self.gain = GainUnit(levels, m, init_log_gain)
        self.inverse_gain = GainUnit(levels, m, -init_log_gain)
        self.scale_table = gaussian_scale_table()
        self.z_tables: SymbolTables | None = None
        self.y_tables: SymbolTables | None = None
        self._exact_hs: ExactHyperSynthesis | None = None

    # ----------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, q: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass: reconstruction and likelihoods with noise/STE quantization."""
        y = self.g_a(x) * self.gain(q)
        z = self.h_a(y)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_hat = z + (torch.round(z) - z).detach()
        means, scales = self.h_s(z_hat).chunk(2, dim=1)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_hat = means + (torch.round(y - means) - (y - means)).detach() + (y - means)
        x_hat = self.g_s(y_hat * self.inverse_gain(q))
        # Likelihoods in float32 even under bf16 autocast: tail probabilities need the precision.
        with torch.autocast(device_type=x.device.type, enabled=False):
            y_likelihood = gaussian_likelihood(y_noisy.float(), means.float(), scales.float())
            z_likelihood = self.z_prior.likelihood(z_noisy.float())
        return {"x_hat": x_hat, "y_likelihood": y_likelihood, "z_likelihood": z_likelihood}

    # ------------------------------------------------------------------- coding
    def update_tables(self) -> None:
        """Build the integer coding tables from the current float entropy models."""
        self.z_tables = self.z_prior.tables()
        self.y_tables = gaussian_tables(self.scale_table)
        self._exact_hs = None

    def load_tables(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.z_tables = SymbolTables(**state["z"])
        self.y_tables = SymbolTables(**state["y"])
        self._exact_hs = None

    def tables_state(self) -> dict[str, dict[str, torch.Tensor]]:
        assert self.z_tables is not None and self.y_tables is not None
        return {"z": self.z_tables.state(), "y": self.y_tables.state()}

    def _require_tables(self) -> tuple[SymbolTables, SymbolTables]:
        if self.z_tables is None or self.y_tables is None:
            raise RuntimeError("coding tables are not built: call update_tables() or load weights")
        return self.z_tables, self.y_tables

    def entropy_parameters(self, z_sym: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scale indices) from integer z, computed exactly (see entropy/exact.py)."""
        if self._exact_hs is None:
            self._exact_hs = ExactHyperSynthesis(self.h_s)
        params = self._exact_hs(z_sym)
        means, scales = params.chunk(2, dim=1)
        return means, scale_indices(scales.cpu(), self.scale_table)

    @staticmethod
    def _z_table_ids(z_sym: torch.Tensor) -> torch.Tensor:
        c = z_sym.shape[1]
        return torch.arange(c).view(1, c, 1, 1).expand(z_sym.shape)

    @staticmethod
    def quality_tensor(quality: float, device: torch.device) -> torch.Tensor:
        return torch.tensor([float(quality)], device=device)

    @torch.inference_mode()
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """Quality-independent latent g_a(x); gains are applied per quality afterwards."""
        return self.g_a(pad_to(x, PAD))

    def _symbols(self, y0: torch.Tensor, quality: float):
        y = y0 * self.gain(self.quality_tensor(quality, y0.device))
        z_sym = torch.round(self.h_a(y)).cpu().long()
        means, idx = self.entropy_parameters(z_sym.to(y0.device))
        y_sym = torch.round(y.double() - means).cpu().long()
        return z_sym, means, idx, y_sym

    @torch.inference_mode()
    def estimate_bits(self, y0: torch.Tensor, quality: float) -> float:
        """Ideal code length at `quality` from the analysis output (for rate control)."""
        z_tables, y_tables = self._require_tables()
        z_sym, _, idx, y_sym = self._symbols(y0, quality)
        return z_tables.bits(z_sym, self._z_table_ids(z_sym)) + y_tables.bits(y_sym, idx)

    @torch.inference_mode()
    def compress(self, x: torch.Tensor, quality: float, y0: torch.Tensor | None = None) -> Latents:
        """(1, C, h, w) tensor -> substreams; x is padded internally. y0: precomputed analysis(x)."""
        z_tables, y_tables = self._require_tables()
        z_sym, means, idx, y_sym = self._symbols(self.analysis(x) if y0 is None else y0, quality)
        z_bytes = coder.encode(z_sym, self._z_table_ids(z_sym), z_tables)
        y_bytes = coder.encode(y_sym, idx, y_tables)
        y_hat = (y_sym.to(means.device).double() + means).float()
        return Latents(z_bytes, y_bytes, y_hat)

    @torch.inference_mode()
    def decompress_latents(self, z_bytes: bytes, y_bytes: bytes, height: int, width: int) -> torch.Tensor:
        """Substreams -> y_hat for an input whose size was height x width."""
        z_tables, y_tables = self._require_tables()
        hp, wp = math.ceil(height / PAD) * PAD, math.ceil(width / PAD) * PAD
        z_shape = (1, self.n, hp // 32, wp // 32)
        z_sym = coder.decode(z_bytes, self._z_table_ids(torch.empty(z_shape)), z_tables)
        device = self.gain.log_gain.device
        means, idx = self.entropy_parameters(z_sym.to(device))
        y_sym = coder.decode(y_bytes, idx, y_tables)
        return (y_sym.to(device).double() + means).float()

    @torch.inference_mode()
    def synthesize(self, y_hat: torch.Tensor, quality: float, height: int, width: int) -> torch.Tensor:
        """y_hat -> (1, C, height, width) reconstruction (unclamped)."""
        q = self.quality_tensor(quality, y_hat.device)
        return self.g_s(y_hat * self.inverse_gain(q))[:, :, :height, :width]
