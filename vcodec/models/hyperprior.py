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
import struct
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vcodec.entropy import coder
from vcodec.entropy.exact import ACT_BITS, ExactHyperSynthesis
from vcodec.entropy.models import FactorizedPrior, gaussian_likelihood, scale_indices
from vcodec.entropy.tables import SymbolTables, gaussian_scale_table, gaussian_tables
from vcodec.layers import GDN, conv, deconv
from vcodec.models.context import CheckerboardContext, anchor_mask, from_other_phases, to_anchor_phases

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


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    """Rounding in the forward pass, identity in the backward pass (straight-through)."""
    return x + (torch.round(x) - x).detach()


class GainUnit(nn.Module):
    """Per-quality channel gains, interpolated log-linearly for fractional quality."""

    def __init__(self, levels: int, channels: int, init_log: torch.Tensor):
        super().__init__()
        self.log_gain = nn.Parameter(init_log[:, None].repeat(1, channels).clone())

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return torch.exp(log_interp(self.log_gain, q))[:, :, None, None]


class MeanScaleHyperprior(nn.Module):
    def __init__(self, in_ch: int, n: int, m: int, init_log_gain: torch.Tensor, out_ch: int | None = None,
                 context: bool = False):
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
        # Optional checkerboard context (vcodec.models.context): y is then coded in two halves.
        self.context = CheckerboardContext(m) if context else None
        levels = len(init_log_gain)
        self.gain = GainUnit(levels, m, init_log_gain)
        self.inverse_gain = GainUnit(levels, m, -init_log_gain)
        self.scale_table = gaussian_scale_table()
        self.z_tables: SymbolTables | None = None
        self.y_tables: SymbolTables | None = None
        self._exact_hs: ExactHyperSynthesis | None = None
        self._exact_context: ExactHyperSynthesis | None = None

    # ----------------------------------------------------------------- training
    def _analyze(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """g_a; codecs conditioned on side information the decoder has (vcodec.models.conditional) override
        this and `_synthesize`."""
        if cond is not None:
            raise TypeError(f"{type(self).__name__} takes no condition")
        return self.g_a(x)

    def _synthesize(self, y: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is not None:
            raise TypeError(f"{type(self).__name__} takes no condition")
        return self.g_s(y)

    def forward(self, x: torch.Tensor, q: torch.Tensor, cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training pass: reconstruction and likelihoods with noise/STE quantization."""
        y = self._analyze(x, cond) * self.gain(q)
        z = self.h_a(y)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_hat = _ste_round(z)
        means, scales = self._training_parameters(y, z_hat)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_hat = means + _ste_round(y - means)
        x_hat = self._synthesize(y_hat * self.inverse_gain(q), cond)
        # Likelihoods in float32 even under bf16 autocast: tail probabilities need the precision.
        with torch.autocast(device_type=x.device.type, enabled=False):
            y_likelihood = gaussian_likelihood(y_noisy.float(), means.float(), scales.float())
            z_likelihood = self.z_prior.likelihood(z_noisy.float())
        return {"x_hat": x_hat, "y_likelihood": y_likelihood, "z_likelihood": z_likelihood}

    def _training_parameters(self, y: torch.Tensor, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (means, scales) of y given z_hat (float path; coding uses the exact one)."""
        means, scales = self.h_s(z_hat).chunk(2, dim=1)
        if self.context is not None:
            # Anchors are quantized around the hyperprior's means; the rest see them through the context.
            anchors = anchor_mask(*y.shape[-2:], device=y.device)
            y_anchor = (means + _ste_round(y - means)) * anchors
            d_means, d_scales = self.context(y_anchor).chunk(2, dim=1)
            means, scales = means + d_means * ~anchors, scales + d_scales * ~anchors
        return means, scales

    def straight_through(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_hat, bits) of a gained latent with real rounding, differentiable through straight-through
        estimates: what coding y would cost and decode to, for encoder-side refinement of y."""
        z_hat = _ste_round(self.h_a(y))
        means, scales = self._training_parameters(y, z_hat)
        y_hat = means + _ste_round(y - means)
        bits = -(torch.log2(gaussian_likelihood(y_hat.float(), means.float(), scales.float())).sum()
                 + torch.log2(self.z_prior.likelihood(z_hat.float())).sum())
        return y_hat, bits

    # ------------------------------------------------------------------- coding
    def update_tables(self) -> None:
        """Build the integer coding tables from the current float entropy models."""
        self.z_tables = self.z_prior.tables()
        self.y_tables = gaussian_tables(self.scale_table)
        self._exact_hs = self._exact_context = None

    def load_tables(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.z_tables = SymbolTables(**state["z"])
        self.y_tables = SymbolTables(**state["y"])
        self._exact_hs = self._exact_context = None

    def tables_state(self) -> dict[str, dict[str, torch.Tensor]]:
        assert self.z_tables is not None and self.y_tables is not None
        return {"z": self.z_tables.state(), "y": self.y_tables.state()}

    def _require_tables(self) -> tuple[SymbolTables, SymbolTables]:
        if self.z_tables is None or self.y_tables is None:
            raise RuntimeError("coding tables are not built: call update_tables() or load weights")
        return self.z_tables, self.y_tables

    def entropy_parameters(self, z_sym: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (means, scales) from integer z, computed exactly (see entropy/exact.py)."""
        if self._exact_hs is None:
            self._exact_hs = ExactHyperSynthesis(self.h_s)
        means, scales = self._exact_hs(z_sym).chunk(2, dim=1)
        return means, scales

    def context_parameters(self, means: torch.Tensor, scales: torch.Tensor,
                           y_anchor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The non-anchors' (means, scales): the hyperprior's plus the exact context correction computed
        from the decoded anchors (zero elsewhere); anchors keep the hyperprior's."""
        assert self.context is not None
        if self._exact_context is None:
            self._exact_context = ExactHyperSynthesis(self.context.subgrid_net())
        corrections = self._exact_context(to_anchor_phases(y_anchor), input_frac=ACT_BITS)
        d_means, d_scales = from_other_phases(corrections).chunk(2, dim=1)
        non_anchor = ~anchor_mask(*means.shape[-2:], device=means.device)
        return means + d_means * non_anchor, scales + d_scales * non_anchor

    def scale_index(self, scales: torch.Tensor) -> torch.Tensor:
        return scale_indices(scales.cpu(), self.scale_table)

    @staticmethod
    def _z_table_ids(z_sym: torch.Tensor) -> torch.Tensor:
        c = z_sym.shape[1]
        return torch.arange(c).view(1, c, 1, 1).expand(z_sym.shape)

    @staticmethod
    def quality_tensor(quality: float, device: torch.device) -> torch.Tensor:
        return torch.tensor([float(quality)], device=device)

    @torch.inference_mode()
    def analysis(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Quality-independent latent g_a(x); gains are applied per quality afterwards."""
        return self._analyze(pad_to(x, PAD), None if cond is None else pad_to(cond, PAD))

    def _symbols(self, y0: torch.Tensor, quality: float):
        """(z symbols, final means, scale indices, y symbols) of the analysis output at `quality`."""
        y = (y0 * self.gain(self.quality_tensor(quality, y0.device))).double()
        z_sym = torch.round(self.h_a(y.float())).cpu().long()
        means, scales = self.entropy_parameters(z_sym.to(y0.device))
        y_sym = torch.round(y - means)
        if self.context is not None:
            anchors = anchor_mask(*y.shape[-2:], device=y.device)
            means, scales = self.context_parameters(means, scales, (y_sym + means) * anchors)
            y_sym = torch.where(anchors, y_sym, torch.round(y - means))
        return z_sym, means, self.scale_index(scales), y_sym.cpu().long()

    def _code_y(self, y_sym: torch.Tensor, idx: torch.Tensor, y_tables: SymbolTables) -> bytes:
        """The y substream: one ANS stream, or with a context model the anchors' then the rest's,
        the first prefixed by its u32 length (the decoder needs the anchors before the rest's tables)."""
        if self.context is None:
            return coder.encode(y_sym, idx, y_tables)
        anchors = anchor_mask(*y_sym.shape[-2:]).expand(y_sym.shape)
        first = coder.encode(y_sym[anchors], idx[anchors], y_tables)
        return struct.pack("<I", len(first)) + first + coder.encode(y_sym[~anchors], idx[~anchors], y_tables)

    @torch.inference_mode()
    def estimate_bits(self, y0: torch.Tensor, quality: float) -> float:
        """Ideal code length at `quality` from the analysis output (for rate control)."""
        z_tables, y_tables = self._require_tables()
        z_sym, _, idx, y_sym = self._symbols(y0, quality)
        return z_tables.bits(z_sym, self._z_table_ids(z_sym)) + y_tables.bits(y_sym, idx)

    @torch.inference_mode()
    def compress(self, x: torch.Tensor, quality: float, y0: torch.Tensor | None = None,
                 cond: torch.Tensor | None = None) -> Latents:
        """(1, C, h, w) tensor -> substreams; x is padded internally. y0: precomputed analysis(x)."""
        z_tables, y_tables = self._require_tables()
        z_sym, means, idx, y_sym = self._symbols(self.analysis(x, cond) if y0 is None else y0, quality)
        z_bytes = coder.encode(z_sym, self._z_table_ids(z_sym), z_tables)
        y_bytes = self._code_y(y_sym, idx, y_tables)
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
        means, scales = self.entropy_parameters(z_sym.to(device))
        if self.context is None:
            y_sym = coder.decode(y_bytes, self.scale_index(scales), y_tables)
            return (y_sym.to(device).double() + means).float()
        if len(y_bytes) < 4:
            raise coder.EntropyDecodeError("y substream shorter than its anchor length field")
        (n_first,) = struct.unpack_from("<I", y_bytes)
        if 4 + n_first > len(y_bytes):
            raise coder.EntropyDecodeError("anchor part length exceeds the y substream")
        anchors = anchor_mask(*means.shape[-2:], device=device).expand(means.shape)
        y_sym = torch.zeros(means.shape, dtype=torch.float64, device=device)
        idx = self.scale_index(scales)
        y_sym[anchors] = coder.decode(y_bytes[4 : 4 + n_first], idx[anchors.cpu()], y_tables).to(device).double()
        means, scales = self.context_parameters(means, scales, (y_sym + means) * anchors)
        idx = self.scale_index(scales)
        y_sym[~anchors] = coder.decode(y_bytes[4 + n_first :], idx[~anchors.cpu()], y_tables).to(device).double()
        return (y_sym + means).float()

    @torch.inference_mode()
    def synthesize(self, y_hat: torch.Tensor, quality: float, height: int, width: int,
                   cond: torch.Tensor | None = None) -> torch.Tensor:
        """y_hat -> (1, C, height, width) reconstruction (unclamped); cond at the padded size."""
        q = self.quality_tensor(quality, y_hat.device)
        return self._synthesize(y_hat * self.inverse_gain(q), cond)[:, :, :height, :width]
