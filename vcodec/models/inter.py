"""Inter (P-frame) codec of the DVC family (Lu et al. 2019), on YUV 4:2:0.

    flow = FlowNet(x_t, x̂_{t-1})                      motion estimation
    g = median(flow), to 1/8 px                       global motion, sent as two integers
    flow_hat = g + MotionCodec(flow − g)              learned motion coding (hyperprior)
    x̄ = warp(x̂_{t-1}, flow_hat)                      (luma at full resolution with `luma_warp`)
    x̄ += Refine([x̄, x̂_{t-1}, flow_hat])              motion compensation
    r̂ = ResidualCodec(x_t − x̄ | x̄)                    learned residual coding (hyperprior); with
    x̂_t = x̄ + r̂                                         `conditional`, both transforms also see x̄

The reference is always the decoder's previous reconstruction, and each
sub-codec's entropy parameters depend only on its own hyper-latent, so a P-frame
parses identically on any device (DESIGN §5). Both sub-codecs share the quality
index with the keyframe codec.

The global motion takes the camera's translation off the motion codec: a
convolutional autoencoder codes a field near zero cheaply and precisely, while a
constant field of 10 px cost it 0.05 bpp at 1.4 px end-point error on a pan
(docs/TRAINING.md). It is exact (integers in 1/8 px), so it adds nothing that
could differ between encoder and decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from vcodec.entropy import coder
from vcodec.layers import conv
from vcodec.metrics import error_weight
from vcodec.models.blocks import block_field, encode_vectors, fit_block_motion, grid_shape, snap_block_motion
from vcodec.models.conditional import ConditionalHyperprior
from vcodec.models.flow import FlowNet, refine_flow, warp, warp_yuv420
from vcodec.models.hyperprior import (
    PAD,
    LadderConfig,
    Latents,
    MeanScaleHyperprior,
    RateLadder,
    initial_log_gains,
    pad_to,
)
from vcodec.models.refinement import refine_latent

FLOW_SCALE = 4.0  # the motion codec sees flow / FLOW_SCALE: keeps its input near unit range
GLOBAL_MOTION_UNIT = 8  # global motion is sent in 1/8 px of the 4:2:0 (half-resolution) grid
GLOBAL_MOTION_LIMIT = 2**15 - 1  # int16


def global_motion(flow: torch.Tensor) -> torch.Tensor:
    """Per-sample median of each flow component, in integer 1/8 px units: (B, 2) int64.

    The median rather than the mean: a moving foreground does not pull it off the
    background's motion.
    """
    median = flow.detach().flatten(2).median(dim=2).values
    return torch.round(median * GLOBAL_MOTION_UNIT).clamp(-GLOBAL_MOTION_LIMIT, GLOBAL_MOTION_LIMIT).long()


def motion_field(units: torch.Tensor) -> torch.Tensor:
    """(B, 2) global motion in 1/8 px units -> (B, 2, 1, 1) flow in pixels, broadcastable over a field."""
    return (units.double() / GLOBAL_MOTION_UNIT).float()[:, :, None, None]


@dataclass
class InterConfig(LadderConfig):
    motion_n: int = 64
    motion_m: int = 96
    motion_stages: int = 3  # stride-2 stages in the motion codec: its latent at 1/16 of luma resolution, or 1/8 with 2
    residual_n: int = 128  # the keyframe codec's widths, so the residual codec can start from its weights
    residual_m: int = 192
    refine_width: int = 64
    flow_width: int = 32
    flow_levels: int = 3
    context: bool = False  # checkerboard context models in the motion and residual codecs
    conditional: bool = False  # the residual codec also sees the prediction (vcodec.models.conditional)
    residual_slices: int = 1  # > 1: channel-wise context in the residual codec (vcodec.models.channel)
    luma_warp: bool = False  # motion compensation warps luma at full resolution (vcodec.models.flow.warp_yuv420)
    detail_width: int = 0  # > 0: a nonlinear output stage in the residual codec's synthesis (vcodec.models.detail)
    detail_blocks: int = 2


class Refine(nn.Module):
    """Motion-compensation refinement: a residual CNN on [warped, reference, flow]."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            conv(14, width, 3, 1), nn.LeakyReLU(0.1, inplace=True),
            conv(width, width, 3, 1), nn.LeakyReLU(0.1, inplace=True),
            conv(width, width, 3, 1), nn.LeakyReLU(0.1, inplace=True),
            conv(width, 6, 3, 1),
        )

    def forward(self, warped: torch.Tensor, ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return warped + self.net(torch.cat([warped, ref, flow / FLOW_SCALE], dim=1))


# A P-frame's integer hyper-latents (motion z, residual z).
HyperLatents = tuple[torch.Tensor, torch.Tensor]


@dataclass
class InterLatents:
    global_motion: tuple[int, int]  # (dx, dy) in 1/8 px
    motion_quality: float  # the motion codec's quality index
    motion: Latents | None  # None with block motion
    residual: Latents
    x_hat: torch.Tensor  # reconstruction, unclamped, padded size
    block: int = 0  # block motion's cell size on the 4:2:0 grid; 0: the motion codec's field
    vectors: torch.Tensor | None = None  # block motion's (2, rows, cols) vectors (vcodec.models.blocks)

    def substream(self) -> bytes:
        """The latents' coding groups in one substream, motion first: what `InterCodec.parse` reads."""
        return coder.encode_groups((self.motion.groups if self.motion else []) + self.residual.groups)

    @property
    def z(self) -> HyperLatents:
        """The motion and residual hyper-latents, which the next P-frame's temporal prior is conditioned on
        (no motion hyper-latent with block motion)."""
        return self.motion.z if self.motion else None, self.residual.z


class InterCodec(RateLadder, nn.Module):
    def __init__(self, config: InterConfig | None = None):
        super().__init__()
        self.config = config = config or InterConfig()
        init = initial_log_gains(config.lambdas)
        self.flow_net = FlowNet(6, levels=config.flow_levels, width=config.flow_width)
        self.motion = MeanScaleHyperprior(2, config.motion_n, config.motion_m, init, context=config.context,
                                          stages=config.motion_stages)
        self.refine = Refine(config.refine_width)
        detail = (config.detail_width, config.detail_blocks)
        if config.conditional:
            self.residual = ConditionalHyperprior(6, config.residual_n, config.residual_m, init, cond_ch=6,
                                                  context=config.context, channel_slices=config.residual_slices,
                                                  detail=detail)
        else:
            self.residual = MeanScaleHyperprior(6, config.residual_n, config.residual_m, init, context=config.context,
                                                channel_slices=config.residual_slices, detail=detail)
        self._register_ladder(config.lambdas)

    def _condition(self, pred: torch.Tensor) -> torch.Tensor | None:
        """What the residual codec is conditioned on: the prediction, for a conditional residual codec."""
        return pred if self.config.conditional else None

    def warp(self, ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """The codec's backward warp: luma at full resolution with `luma_warp`, else all on the 4:2:0 grid."""
        return warp_yuv420(ref, flow) if self.config.luma_warp else warp(ref, flow)

    def predict(self, ref: torch.Tensor, flow_hat: torch.Tensor) -> torch.Tensor:
        """Motion-compensated prediction x̄ from the reference and the decoded flow."""
        return self.refine(self.warp(ref, flow_hat), ref, flow_hat)

    def predict_blocks(self, ref: torch.Tensor, vectors: torch.Tensor, block: int) -> torch.Tensor:
        """`predict` from block motion's (2, rows, cols) vectors on block x block cells (vcodec.models.blocks)."""
        return self.predict(ref, block_field(vectors, block, *ref.shape[-2:]).to(ref.device))

    # ----------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, ref: torch.Tensor, q: torch.Tensor,
                refine_steps: int = 0, block: int = 0, vector_rd: float = 0.0) -> dict[str, torch.Tensor]:
        """Training pass on padded tensors (sizes divisible by 32).

        `refine_steps` > 0 sharpens the flow as the encoder does (`estimate_motion`), so the motion codec,
        the refinement network and the residual codec learn on the fields they are given at coding time.
        The sharpening enters as a constant offset: the flow network still receives the loss's gradient.
        `block` > 0 sends the motion as block vectors instead (`compress_blocks`); "motion_bits" is then their
        exact size, a constant to the loss, and the motion networks receive no gradient; `vector_rd` > 0
        adds the encoder's rate-distortion pass over the vectors (`MotionSearch.vector_rd`) at each sample's λ.
        """
        if block > 0:
            return self._forward_blocks(x, ref, q, refine_steps, block, vector_rd)
        # Motion estimation is the encoder's search: under error-propagation-aware training
        # (vcodec.training.inter) the reference carries gradients, which do not flow through the search.
        flow = self.flow_net(x, ref.detach())
        if refine_steps > 0:
            flow = flow + (refine_flow(x, ref, flow, self.warp, steps=refine_steps) - flow).detach()
        g = motion_field(global_motion(flow)).to(flow.device)
        m = self.motion((flow - g) * (1 / FLOW_SCALE), q)
        flow_hat = m["x_hat"] * FLOW_SCALE + g
        pred = self.predict(ref, flow_hat)
        r = self.residual(x - pred, q, self._condition(pred))
        return {
            "x_hat": pred + r["x_hat"],
            "prediction": pred,
            "likelihoods": [m["y_likelihood"], m["z_likelihood"], r["y_likelihood"], r["z_likelihood"]],
        }

    def _forward_blocks(self, x: torch.Tensor, ref: torch.Tensor, q: torch.Tensor, refine_steps: int,
                        block: int, vector_rd: float) -> dict[str, torch.Tensor]:
        """`forward` with block motion: the encoder's search per sample, then prediction and residual coding."""
        height, width = x.shape[-2:]
        with torch.no_grad():
            start = refine_flow(x, ref, self.flow_net(x, ref.detach()), self.warp, steps=refine_steps)
        vectors = []
        for i in range(x.shape[0]):
            v = fit_block_motion(x[i:i + 1], ref[i:i + 1], start[i:i + 1], self.warp, block,
                                 *grid_shape(height, width, block))
            if vector_rd > 0:
                weight = vector_rd * error_weight(float(self.lmbda(q[i:i + 1])))
                with torch.no_grad():
                    v = snap_block_motion(v, x[i:i + 1], ref[i:i + 1].detach(), self.warp, block, weight, height,
                                          width)
            vectors.append(v)
        flow_hat = torch.cat([block_field(v, block, height, width) for v in vectors]).to(x.device)
        pred = self.predict(ref, flow_hat)
        r = self.residual(x - pred, q, self._condition(pred))
        motion_bits = torch.tensor([8.0 * len(encode_vectors(v)) for v in vectors], device=x.device)
        return {
            "x_hat": pred + r["x_hat"],
            "prediction": pred,
            "likelihoods": [r["y_likelihood"], r["z_likelihood"]],
            "motion_bits": motion_bits,
        }

    # ------------------------------------------------------------------- coding
    def update_tables(self) -> None:
        self.motion.update_tables()
        self.residual.update_tables()

    def tables_state(self) -> dict:
        return {"motion": self.motion.tables_state(), "residual": self.residual.tables_state()}

    def load_tables(self, state: dict) -> None:
        self.motion.load_tables(state["motion"])
        self.residual.load_tables(state["residual"])

    @property
    def temporal_prior(self) -> bool:
        """Whether fitted p(z | previous P-frame's z) tables are loaded (vcodec.entropy.temporal)."""
        return self.motion.z_temporal is not None and self.residual.z_temporal is not None

    @torch.inference_mode()
    def compress(self, x: torch.Tensor, ref: torch.Tensor, quality: float, effort: int = 0,
                 z_prev: HyperLatents | None = None, motion_quality: float | None = None,
                 flow: torch.Tensor | None = None) -> InterLatents:
        """Code x (1, 6, h, w) given the decoder's reference (same size); `effort` > 0 refines the
        residual latent with that many steps (vcodec.models.refinement); `z_prev`: the previous P-frame's
        hyper-latents, to code this frame's under the temporal prior; `motion_quality`: the motion codec's
        quality index (default: `quality`); `flow`: `estimate_motion(x, ref)`, when already computed."""
        motion_quality = quality if motion_quality is None else motion_quality
        h, w = x.shape[-2:]
        xp, refp = pad_to(x, PAD), pad_to(ref, PAD)
        flow = self.estimate_motion(x, ref) if flow is None else flow
        units = global_motion(flow)
        g = motion_field(units).to(flow.device)
        motion_z_prev, residual_z_prev = z_prev if z_prev is not None else (None, None)
        motion = self.motion.compress((flow - g) * (1 / FLOW_SCALE), motion_quality, z_prev=motion_z_prev)
        gm = (int(units[0, 0]), int(units[0, 1]))
        pred = self._prediction(gm, motion.y_hat, refp, motion_quality)
        residual, x_hat = self._code_residual(xp, pred, quality, effort, residual_z_prev)
        return InterLatents(gm, motion_quality, motion, residual, x_hat[:, :, :h, :w])

    @torch.inference_mode()
    def compress_blocks(self, x: torch.Tensor, ref: torch.Tensor, quality: float, block: int, flow: torch.Tensor,
                        effort: int = 0, z_prev: HyperLatents | None = None,
                        vectors: torch.Tensor | None = None, rate_weight: float = 0.0) -> InterLatents:
        """`compress` with block motion instead of the motion codec: one vector per block x block cell,
        searched from `flow` (`estimate_motion(x, ref)`) and sent exactly (vcodec.models.blocks);
        `vectors`: the search's result for this frame and block size, when already computed. `rate_weight` > 0
        (bits per unit of summed warping error) weighs the vectors' bits against their warping error
        (`snap_block_motion`)."""
        h, w = x.shape[-2:]
        xp, refp = pad_to(x, PAD), pad_to(ref, PAD)
        if vectors is None:
            vectors = fit_block_motion(xp, refp, flow, self.warp, block, *grid_shape(h, w, block))
            if rate_weight > 0:
                vectors = snap_block_motion(vectors, xp, refp, self.warp, block, rate_weight, h, w)
        pred = self.predict_blocks(refp, vectors, block)
        residual, x_hat = self._code_residual(xp, pred, quality, effort, z_prev[1] if z_prev else None)
        return InterLatents((0, 0), quality, None, residual, x_hat[:, :, :h, :w], block, vectors)

    def _code_residual(self, xp: torch.Tensor, pred: torch.Tensor, quality: float, effort: int,
                       z_prev: torch.Tensor | None) -> tuple[Latents, torch.Tensor]:
        """The residual codec's part of a P-frame: its latents and the reconstruction (padded size)."""
        cond = self._condition(pred)
        target = xp - pred
        y0 = self.residual.analysis(target, cond)
        if effort > 0:
            lmbda = float(self.lmbda(self.residual.quality_tensor(quality, xp.device)))
            y0 = refine_latent(self.residual, target, y0, quality, lmbda, effort, cond=cond)
        residual = self.residual.compress(target, quality, y0, cond=cond, z_prev=z_prev)
        return residual, pred + self.residual.synthesize(residual.y_hat, quality, *pred.shape[-2:], cond=cond)

    @torch.inference_mode()
    def estimate_motion(self, x: torch.Tensor, ref: torch.Tensor, refine_steps: int = 0) -> torch.Tensor:
        """The flow network's estimate for x given the reference, at the padded size; `refine_steps` > 0
        sharpens it against this pair's warping error (vcodec.models.flow.refine_flow)."""
        xp, refp = pad_to(x, PAD), pad_to(ref, PAD)
        flow = self.flow_net(xp, refp)
        return refine_flow(xp, refp, flow, self.warp, steps=refine_steps)

    def _prediction(self, gm: tuple[int, int], motion_y_hat: torch.Tensor, refp: torch.Tensor,
                    motion_quality: float) -> torch.Tensor:
        g = motion_field(torch.tensor([gm])).to(refp.device)
        flow_hat = self.motion.synthesize(motion_y_hat, motion_quality, *refp.shape[-2:]) * FLOW_SCALE + g
        return self.predict(refp, flow_hat)

    @torch.inference_mode()
    def parse(self, data: bytes, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Entropy-decode both sub-codecs' latents from the frame's one substream (format 4: the motion
        codec's groups, then the residual codec's); needs no reference, so it can run ahead."""
        motion_y, residual_y, _ = self.parse_frame(data, height, width)
        return motion_y, residual_y

    @torch.inference_mode()
    def parse_frame(self, data: bytes, height: int, width: int, z_prev: HyperLatents | None = None,
                    block_motion: bool = False) -> tuple[torch.Tensor | None, torch.Tensor, HyperLatents]:
        """`parse`, the hyper-latents under the temporal prior given the previous P-frame's (`z_prev`, format
        5), also returning this frame's hyper-latents for the next; with `block_motion` (format 7) the
        substream holds only the residual codec's latents (motion latent and hyper-latent None)."""
        reader = coder.PartDecoder(data)
        motion_z_prev, residual_z_prev = z_prev if z_prev is not None else (None, None)
        motion_z, motion_y = (None, None) if block_motion else self.motion.parse_latent(reader, height, width,
                                                                                          motion_z_prev)
        residual_z, residual_y = self.residual.parse_latent(reader, height, width, residual_z_prev)
        return motion_y, residual_y, (motion_z, residual_z)

    @torch.inference_mode()
    def parse_substreams(self, motion_z: bytes, motion_y: bytes, residual_z: bytes, residual_y: bytes,
                         height: int, width: int, framed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """`parse` for formats 2.x and 3.x, which give each latent's z and y their own substreams; `framed`:
        the format-2.x layout of y substreams (MeanScaleHyperprior.decompress_latents)."""
        return (self.motion.decompress_latents(motion_z, motion_y, height, width, framed),
                self.residual.decompress_latents(residual_z, residual_y, height, width, framed))

    @torch.inference_mode()
    def reconstruct(self, global_motion: tuple[int, int], motion_y_hat: torch.Tensor, residual_y_hat: torch.Tensor,
                    ref: torch.Tensor, quality: float, motion_quality: float | None = None) -> torch.Tensor:
        """Global motion + parsed latents + reference -> reconstruction (unclamped), the size of ref;
        `motion_quality` defaults to `quality` (streams before format 6.0)."""
        refp = pad_to(ref, PAD)
        motion_quality = quality if motion_quality is None else motion_quality
        pred = self._prediction(global_motion, motion_y_hat.to(ref.device), refp, motion_quality)
        return self._add_residual(pred, residual_y_hat, quality, *ref.shape[-2:])

    @torch.inference_mode()
    def reconstruct_blocks(self, vectors: torch.Tensor, block: int, residual_y_hat: torch.Tensor, ref: torch.Tensor,
                           quality: float) -> torch.Tensor:
        """`reconstruct` for a P-frame with block motion: its vectors, its residual latent and the reference."""
        refp = pad_to(ref, PAD)
        pred = self.predict_blocks(refp, vectors.to(ref.device), block)
        return self._add_residual(pred, residual_y_hat, quality, *ref.shape[-2:])

    def _add_residual(self, pred: torch.Tensor, residual_y_hat: torch.Tensor, quality: float, height: int,
                      width: int) -> torch.Tensor:
        x_hat = pred + self.residual.synthesize(residual_y_hat.to(pred.device), quality, *pred.shape[-2:],
                                                cond=self._condition(pred))
        return x_hat[:, :, :height, :width]

    def decompress(self, global_motion: tuple[int, int], data: bytes, ref: torch.Tensor,
                   quality: float, motion_quality: float | None = None) -> torch.Tensor:
        """Global motion + the frame's substream + reference -> reconstruction (unclamped), the size of ref."""
        return self.reconstruct(global_motion, *self.parse(data, *ref.shape[-2:]), ref, quality, motion_quality)
