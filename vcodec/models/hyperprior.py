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
from vcodec.entropy.temporal import temporal_table_ids
from vcodec.layers import GDN, conv, deconv
from vcodec.models.channel import ChannelContext
from vcodec.models.context import CheckerboardContext, anchor_mask, from_other_phases, to_anchor_phases
from vcodec.models.detail import DetailStage

PAD = 32  # input padding multiple: 3 stride-2 stages in g_a, 2 in h_a (fewer stages divide it too)
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
    """What one hyperprior codes: its coding groups of (symbols, table ids, tables) in parsing order, z
    first, and the decoded latent. A frame's groups from all its latents share one substream (format 4)."""

    groups: list[tuple[torch.Tensor, torch.Tensor, SymbolTables]]
    y_hat: torch.Tensor

    @property
    def z(self) -> torch.Tensor:
        """The integer hyper-latent: what a temporal prior for the next frame's is conditioned on."""
        return self.groups[0][0]

    def substream(self) -> bytes:
        """This latent alone in one substream, as `MeanScaleHyperprior.decompress` reads it."""
        return coder.encode_groups(self.groups)

    def split_substreams(self) -> tuple[bytes, bytes]:
        """(z, y) as two substreams: the format-3.x layout."""
        return coder.encode_groups(self.groups[:1]), coder.encode_groups(self.groups[1:])


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
                 context: bool = False, channel_slices: int = 1, detail: tuple[int, int] = (0, 0), side_ch: int = 0,
                 stages: int = 3):
        super().__init__()
        out_ch = out_ch or in_ch
        self.n, self.m = n, m
        # `stages` stride-2 layers in g_a (mirrored in g_s): 3 puts y at 1/8 of the input, 2 at 1/4 (the third
        # analysis layer and the first synthesis layer then keep the resolution, with the same weight shapes).
        if stages not in (2, 3):
            raise ValueError(f"stages must be 2 or 3, not {stages}")
        self.stages = stages
        third = 2 if stages == 3 else 1
        self.g_a = nn.Sequential(
            conv(in_ch, n), GDN(n), conv(n, n), GDN(n), conv(n, n, stride=third), GDN(n), conv(n, m, 3, 1)
        )
        self.g_s = nn.Sequential(
            conv(m, n, 3, 1), GDN(n, inverse=True), deconv(n, n, stride=third), GDN(n, inverse=True),
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
        # Optional channel-wise context (vcodec.models.channel): y is then coded slice by slice.
        self.channel_context = (ChannelContext(m, channel_slices, passes=2 if context else 1)
                                if channel_slices > 1 else None)
        levels = len(init_log_gain)
        self.gain = GainUnit(levels, m, init_log_gain)
        self.inverse_gain = GainUnit(levels, m, -init_log_gain)
        self.scale_table = gaussian_scale_table()
        self.z_tables: SymbolTables | None = None
        self.y_tables: SymbolTables | None = None
        # Optional p(z | previous frame's z) tables (vcodec.entropy.temporal), fitted after training.
        self.z_temporal: SymbolTables | None = None
        self._exact_hs: ExactHyperSynthesis | None = None
        self._exact_context: ExactHyperSynthesis | None = None
        self._exact_channel: dict[tuple[int, int], ExactHyperSynthesis] = {}
        # Optional nonlinear output stage (vcodec.models.detail): (width, residual blocks); width 0 = none.
        self.detail = DetailStage(n, out_ch, detail[0], detail[1], side_ch) if detail[0] > 0 else None

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
        hidden = self.g_s[:-1](y)
        return self._output(hidden, self.g_s[-1](hidden), None)

    def _output(self, hidden: torch.Tensor, linear: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
        """The synthesis output: g_s's linear last layer, through the detail stage when there is one."""
        return linear if self.detail is None else self.detail(hidden, linear, side)

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
        """Differentiable (means, scales) of y given z_hat (float path; coding uses the exact one).

        With context models, the coding groups are visited in coding order
        (`_groups`); each group is quantized around its own means, and later
        groups see it through the contexts, as the decoder will.
        """
        means, scales = self.h_s(z_hat).chunk(2, dim=1)
        if self.context is None and self.channel_context is None:
            return means, scales
        known = torch.zeros_like(y)  # decoded values so far, zero elsewhere
        out_means, out_scales = means, scales
        for pass_index, positions in enumerate(self._passes(*y.shape[-2:], y.device)):
            base_means, base_scales = means, scales
            if pass_index == 1:  # the checkerboard's non-anchors: spatial context from every anchor
                d_means, d_scales = self.context(known).chunk(2, dim=1)
                base_means, base_scales = means + d_means, scales + d_scales
            for slice_index, ch in enumerate(self._slices()):
                m, s = base_means[:, ch], base_scales[:, ch]
                if self.channel_context is not None:
                    m, s = self.channel_context(pass_index, slice_index, known, m, s)
                group = self._group_mask(positions, ch)
                known = torch.where(group, self._widen(m + _ste_round(y[:, ch] - m), ch), known)
                out_means = torch.where(group, self._widen(m, ch), out_means)
                out_scales = torch.where(group, self._widen(s, ch), out_scales)
        return out_means, out_scales

    # ------------------------------------------------------------ coding groups
    def _passes(self, height: int, width: int, device: torch.device) -> list[torch.Tensor]:
        """Position masks (1, 1, h, w) in coding order: the checkerboard's anchors then the rest, or all at once."""
        if self.context is None:
            return [torch.ones(1, 1, height, width, dtype=torch.bool, device=device)]
        anchors = anchor_mask(height, width, device=device)
        return [anchors, ~anchors]

    def _slices(self) -> list[slice]:
        """Channel ranges in coding order: the channel context's slices, or all channels at once."""
        return self.channel_context.slices if self.channel_context is not None else [slice(0, self.m)]

    def _group_mask(self, positions: torch.Tensor, ch: slice) -> torch.Tensor:
        """(1, m, h, w) bool: the positions of one pass within one channel slice."""
        channels = torch.zeros(1, self.m, 1, 1, dtype=torch.bool, device=positions.device)
        channels[:, ch] = True
        return positions & channels

    def _widen(self, t: torch.Tensor, ch: slice) -> torch.Tensor:
        """A slice's tensor placed at its channels of an m-channel tensor (zeros elsewhere)."""
        return F.pad(t, (0, 0, 0, 0, ch.start, self.m - ch.stop))

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
        self.z_temporal = None  # fitted to the old z statistics
        self._exact_hs = self._exact_context = None
        self._exact_channel = {}

    def load_tables(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.z_tables = SymbolTables(**state["z"])
        self.y_tables = SymbolTables(**state["y"])
        self.z_temporal = SymbolTables(**state["z_temporal"]) if "z_temporal" in state else None
        self._exact_hs = self._exact_context = None
        self._exact_channel = {}

    def tables_state(self) -> dict[str, dict[str, torch.Tensor]]:
        assert self.z_tables is not None and self.y_tables is not None
        state = {"z": self.z_tables.state(), "y": self.y_tables.state()}
        if self.z_temporal is not None:
            state["z_temporal"] = self.z_temporal.state()
        return state

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

    def _z_coding(self, shape: torch.Size, z_prev: torch.Tensor | None) -> tuple[torch.Tensor, SymbolTables]:
        """(table ids, tables) for z of this shape: the temporal tables given the previous frame's z, else the
        factorized prior's."""
        z_tables, _ = self._require_tables()
        if z_prev is None:
            return self._z_table_ids(torch.empty(shape)), z_tables
        if self.z_temporal is None:
            raise RuntimeError("a previous z was given but no temporal tables are loaded")
        if z_prev.shape != shape:
            raise ValueError(f"previous z has shape {tuple(z_prev.shape)}, this frame's {tuple(shape)}")
        return temporal_table_ids(z_prev), self.z_temporal

    @staticmethod
    def quality_tensor(quality: float, device: torch.device) -> torch.Tensor:
        return torch.tensor([float(quality)], device=device)

    @torch.inference_mode()
    def analysis(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Quality-independent latent g_a(x); gains are applied per quality afterwards."""
        return self._analyze(pad_to(x, PAD), None if cond is None else pad_to(cond, PAD))

    def channel_parameters(self, pass_index: int, slice_index: int, known: torch.Tensor, means: torch.Tensor,
                           scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A slice's (means, scales) corrected by the channel context, computed exactly from the exact values
        decoded so far (`known`, zero elsewhere) and the slice's exact parameters."""
        assert self.channel_context is not None
        key = (pass_index, slice_index)
        if key not in self._exact_channel:
            self._exact_channel[key] = ExactHyperSynthesis(self.channel_context.net(pass_index, slice_index))
        inputs = ChannelContext.inputs(known, means, scales)
        d_means, d_scales = self._exact_channel[key](inputs, input_frac=ACT_BITS).chunk(2, dim=1)
        return means + d_means, scales + d_scales

    def _walk_groups(self, means: torch.Tensor, scales: torch.Tensor, code_group) -> torch.Tensor:
        """Visit the coding groups in order, deriving each group's exact parameters from the values decoded
        before it; `code_group(i, ch, selected, means, scale_indices)` gets a group's index, channel slice,
        position mask within the slice, and its means and scale indices (1-D, in row-major order), and returns
        its integer symbols (float64). Returns y_hat (float64).

        Encoder and decoder both run this walk, so they derive the same parameters by construction.
        """
        known = torch.zeros_like(means)
        group = 0
        for pass_index, positions in enumerate(self._passes(*means.shape[-2:], means.device)):
            base_means, base_scales = means, scales
            if pass_index == 1:
                base_means, base_scales = self.context_parameters(means, scales, known)
            for slice_index, ch in enumerate(self._slices()):
                m, s = base_means[:, ch], base_scales[:, ch]
                if self.channel_context is not None:
                    m, s = self.channel_parameters(pass_index, slice_index, known, m, s)
                selected = positions.expand_as(m)
                m_sel = m[selected]
                symbols = code_group(group, ch, selected, m_sel, self.scale_index(s[selected]))
                known[:, ch][selected] = symbols.to(known.device, torch.float64) + m_sel
                group += 1
        return known

    def _groups(self) -> int:
        return (1 if self.context is None else 2) * len(self._slices())

    def _symbols(self, y0: torch.Tensor, quality: float, z_prev: torch.Tensor | None = None) -> Latents:
        """The coding groups and y_hat of the analysis output at `quality`; z under the temporal prior given
        the previous frame's z (`z_prev`), else under the factorized prior."""
        _, y_tables = self._require_tables()
        y = (y0 * self.gain(self.quality_tensor(quality, y0.device))).double()
        z_sym = torch.round(self.h_a(y.float())).cpu().long()
        means, scales = self.entropy_parameters(z_sym.to(y0.device))
        groups = [(z_sym, *self._z_coding(z_sym.shape, z_prev))]

        def quantize(i: int, ch: slice, selected: torch.Tensor, m: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            symbols = torch.round(y[:, ch][selected] - m)
            groups.append((symbols.cpu().long(), idx, y_tables))
            return symbols

        y_hat = self._walk_groups(means, scales, quantize)
        return Latents(groups, y_hat.float())

    @torch.inference_mode()
    def estimate_bits(self, y0: torch.Tensor, quality: float) -> float:
        """Ideal code length at `quality` from the analysis output (for rate control)."""
        return sum(tables.bits(s, i) for s, i, tables in self._symbols(y0, quality).groups)

    @torch.inference_mode()
    def compress(self, x: torch.Tensor, quality: float, y0: torch.Tensor | None = None,
                 cond: torch.Tensor | None = None, z_prev: torch.Tensor | None = None) -> Latents:
        """(1, C, h, w) tensor -> coding groups and y_hat; x is padded internally. y0: precomputed analysis(x);
        z_prev: the previous frame's z, to code z under the temporal prior.

        With context models y is coded as several groups, one after another,
        each group's parameters derived from the groups before it.
        """
        return self._symbols(self.analysis(x, cond) if y0 is None else y0, quality, z_prev)

    def _split_y(self, y_bytes: bytes) -> list[bytes]:
        """Format 2.x layout of a y substream: one ANS stream per coding group, each but the last prefixed by
        its u32 length."""
        parts, pos = [], 0
        for i in range(self._groups() - 1):
            if pos + 4 > len(y_bytes):
                raise coder.EntropyDecodeError(f"y substream ends inside coding group {i}'s length field")
            (n,) = struct.unpack_from("<I", y_bytes, pos)
            if pos + 4 + n > len(y_bytes):
                raise coder.EntropyDecodeError(f"coding group {i}'s length exceeds the y substream")
            parts.append(y_bytes[pos + 4 : pos + 4 + n])
            pos += 4 + n
        parts.append(y_bytes[pos:])
        return parts

    def _z_shape(self, height: int, width: int) -> torch.Size:
        """Shape of z for an input of height x width (before padding)."""
        hp, wp = math.ceil(height / PAD) * PAD, math.ceil(width / PAD) * PAD
        down = 2 ** (self.stages + 2)
        return torch.Size((1, self.n, hp // down, wp // down))

    def _z_ids(self, height: int, width: int) -> torch.Tensor:
        """Table ids of z under the factorized prior for an input of height x width (before padding)."""
        return self._z_table_ids(torch.empty(self._z_shape(height, width)))

    @torch.inference_mode()
    def parse(self, reader: coder.PartDecoder, height: int, width: int) -> torch.Tensor:
        """y_hat parsed group by group, z first, from a substream that may carry other latents' groups
        after this one's (format 4: one substream per frame)."""
        return self.parse_latent(reader, height, width)[1]

    @torch.inference_mode()
    def parse_latent(self, reader: coder.PartDecoder, height: int, width: int,
                     z_prev: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, y_hat) as `parse`, z under the temporal prior given the previous frame's z (`z_prev`)."""
        _, y_tables = self._require_tables()
        z_sym = reader.decode(*self._z_coding(self._z_shape(height, width), z_prev))
        means, scales = self.entropy_parameters(z_sym.to(self.gain.log_gain.device))
        y_hat = self._walk_groups(means, scales, lambda i, ch, sel, m, idx: reader.decode(idx, y_tables).double())
        return z_sym, y_hat.float()

    def decompress(self, data: bytes, height: int, width: int) -> torch.Tensor:
        """The inverse of `Latents.substream`."""
        return self.parse(coder.PartDecoder(data), height, width)

    @torch.inference_mode()
    def decompress_latents(self, z_bytes: bytes, y_bytes: bytes, height: int, width: int,
                           framed: bool = False) -> torch.Tensor:
        """Separate z and y substreams (formats 2.x and 3.x) -> y_hat for an input whose size was height x
        width; `framed`: the y substream has the format-2.x layout (a separate, length-prefixed ANS stream
        per coding group)."""
        z_tables, y_tables = self._require_tables()
        z_sym = coder.decode(z_bytes, self._z_ids(height, width), z_tables)
        means, scales = self.entropy_parameters(z_sym.to(self.gain.log_gain.device))
        if framed:
            parts = self._split_y(y_bytes)
            y_hat = self._walk_groups(means, scales,
                                      lambda i, ch, sel, m, idx: coder.decode(parts[i], idx, y_tables).double())
        else:
            reader = coder.PartDecoder(y_bytes)
            y_hat = self._walk_groups(means, scales, lambda i, ch, sel, m, idx: reader.decode(idx, y_tables).double())
        return y_hat.float()

    @torch.inference_mode()
    def synthesize(self, y_hat: torch.Tensor, quality: float, height: int, width: int,
                   cond: torch.Tensor | None = None) -> torch.Tensor:
        """y_hat -> (1, C, height, width) reconstruction (unclamped); cond at the padded size."""
        q = self.quality_tensor(quality, y_hat.device)
        return self._synthesize(y_hat * self.inverse_gain(q), cond)[:, :, :height, :width]
