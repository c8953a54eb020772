"""Frame-level encoder and decoder: frames <-> packets, closed loop.

The encoder's reconstruction is produced by exactly the decoder's code path on
exactly the decoded latents, and every P-frame is predicted from that
reconstruction (as the decoder will have it: 8-bit, cropped), never from the
source. A decoder on the same machine therefore reproduces every frame bit for
bit, which the per-frame hash in each packet lets it check.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from vcodec.color import YUVFrame, chroma_size, frame_to_tensor, quantize_tensor, tensor_to_frame
from vcodec.entropy.coder import EntropyDecodeError
from vcodec.entropy.exact import ExactnessError
from vcodec.errors import StreamError
from vcodec.metrics import error_weight, yuv_mse
from vcodec.models.blocks import decode_vectors, encode_vectors, grid_shape
from vcodec.models.flow import REFINE_STEPS
from vcodec.models.inter import HyperLatents, InterCodec, InterLatents
from vcodec.models.keyframe import PAD, KeyframeCodec, pad_to
from vcodec.models.refinement import refine_latent
from vcodec.ratecontrol import RateController
from vcodec.stream import (
    FRAME_I,
    FRAME_P,
    INDEX_ENTRY_BYTES,
    VERSION,
    Packet,
    frame_hash,
    quality_code,
    stream_quality,
)

_LEN = struct.Struct("<I")
_GLOBAL_MOTION = struct.Struct("<hh")
# Formats 2.x and 3.x gave each latent's z and y their own substream; from 4.0 a frame has one.
# From 5.0 a P-frame that follows a P-frame codes its hyper-latents under the inter weights' temporal prior,
# when they carry one (vcodec.entropy.temporal).
TEMPORAL_PRIOR_VERSION = (5, 0)
# From 6.0 a P-frame payload also carries the motion codec's quality (u16, thousandths), which the encoder
# may set below the frame's quality (MotionSearch); before, the motion codec coded at the frame's.
MOTION_QUALITY_VERSION = (6, 0)
_MOTION_QUALITY = struct.Struct("<H")
# From format 7.0 a P-frame says how its motion is sent: u8 0 = the motion codec's latents in the substream,
# B > 0 = block motion with BxB cells of the 4:2:0 grid, its vectors (u32 length, then bytes) ahead of the
# substream, which then holds only the residual codec's latents.
BLOCK_MOTION_VERSION = (7, 0)
_BLOCK = struct.Struct("<B")


@dataclass(frozen=True)
class MotionSearch:
    """How hard the encoder works on a P-frame's motion; the decoder is the same for every setting.

    `flow_steps`: gradient steps that sharpen the flow network's field on the frame pair before it is coded
    (vcodec.models.flow.refine_flow). `motion_offsets`: the motion codec's quality offsets from the frame's
    quality that the frame is coded with; with several, the cheapest in rate-distortion terms is kept. A
    coarser motion field often costs the residual less than the motion bytes it saves, by an amount that
    varies from frame to frame. `track`: after a GOP's first P-frame, code only the previous frame's choice
    and one neighbouring offset (alternately the next lower and the next higher): the best offset drifts
    slowly within a shot, so this keeps nearly all of the search's gain for one coding fewer per frame.
    `blocks`: cell sizes (4:2:0 grid) at which block motion (vcodec.models.blocks) is tried too, each one
    more residual coding per frame; with no motion offsets, only block motion is used. `vector_rd`: weight of
    the warping error against block motion's vector bits in the search's rate-distortion pass
    (vcodec.models.blocks.snap_block_motion), as a fraction of the frame's λ (the warping error is not the
    final error: the residual codec removes part of it); 0 sends the search's vectors as they are.
    Measured on the eval clips in docs/TRAINING.md.
    """

    flow_steps: int = REFINE_STEPS
    motion_offsets: tuple[float, ...] = (0.0, -1.0, -2.0)
    track: bool = True
    blocks: tuple[int, ...] = (8, 16)
    vector_rd: float = 1.0

    def __post_init__(self) -> None:
        if self.flow_steps < 0 or not (self.motion_offsets or self.blocks):
            raise ValueError("MotionSearch needs flow_steps >= 0 and at least one motion offset or block size")
        if any(not 1 <= b <= 255 for b in self.blocks):
            raise ValueError("MotionSearch block sizes run from 1 to 255")
        if self.vector_rd < 0:
            raise ValueError("MotionSearch vector_rd must be >= 0")

    def candidates(self, previous: int | None, index: int) -> list[int]:
        """Indices into `motion_offsets` to code frame `index` with, given the previous P-frame's choice
        (None at a GOP's first P-frame)."""
        n = len(self.motion_offsets)
        if previous is None or not self.track or n <= 2:
            return list(range(n))
        neighbours = (previous - 1, previous + 1) if index % 2 else (previous + 1, previous - 1)
        return [previous, next(j for j in neighbours if 0 <= j < n)]


# Quality steps between a GOP's keyframe and its P-frames at a fixed quality (docs/TRAINING.md).
KEYFRAME_OFFSET = 1.0
# Quality offsets of the P-frames at a fixed quality, cycled from each keyframe (docs/TRAINING.md).
P_OFFSETS: tuple[float, ...] = ()
FAST_MOTION = MotionSearch(flow_steps=0, motion_offsets=(-1.0,), blocks=())  # `vcodec encode --fast`
SUBSTREAMS_3X = {FRAME_I: 2, FRAME_P: 4}  # I: z, y; P: motion z, motion y, residual z, residual y
SUBSTREAM_NAMES_3X = {FRAME_I: ("z", "y"), FRAME_P: ("motion_z", "motion_y", "residual_z", "residual_y")}


def pack_substreams(parts: list[bytes]) -> bytes:
    """Format 3.x: every substream but the last is prefixed by its u32 length; the last runs to the end."""
    return b"".join(_LEN.pack(len(p)) + p for p in parts[:-1]) + parts[-1]


def pack_p_payload(global_motion: tuple[int, int], motion_quality: float, substream: bytes,
                   version: tuple[int, int] = VERSION, block: int = 0, vectors: bytes = b"") -> bytes:
    """A P-frame payload: the global motion (two int16, 1/8 px) and, from format 6.0, the motion codec's
    quality (u16, thousandths) ahead of its substream (before 6.0 the motion quality is the frame's); from
    7.0 the block size (0: no block motion) and block motion's vectors after them."""
    head = _GLOBAL_MOTION.pack(*global_motion)
    if version >= MOTION_QUALITY_VERSION:
        head += _MOTION_QUALITY.pack(quality_code(motion_quality))
    if version >= BLOCK_MOTION_VERSION:
        head += _BLOCK.pack(block) + (_LEN.pack(len(vectors)) + vectors if block else b"")
    elif block:
        raise ValueError(f"format {version} has no block motion")
    return head + substream


def unpack_payload(packet: Packet, version: tuple[int, int] = VERSION) -> tuple[SideInfo, list[bytes]]:
    """(side information, substreams) of a packet: one substream from format 4.0 on, 2 (I) or 4 (P) before.
    Keyframes have no global motion, (0, 0); before format 6.0 the motion codec used the frame's quality."""
    payload = packet.payload
    side = SideInfo((0, 0), packet.quality)
    if packet.frame_type == FRAME_P:
        head = _GLOBAL_MOTION.size + (_MOTION_QUALITY.size if version >= MOTION_QUALITY_VERSION else 0)
        if len(payload) < head:
            raise StreamError(f"frame {packet.frame_index}: payload ends inside the global motion field")
        side = SideInfo(_GLOBAL_MOTION.unpack_from(payload), packet.quality)
        if version >= MOTION_QUALITY_VERSION:
            (code,) = _MOTION_QUALITY.unpack_from(payload, _GLOBAL_MOTION.size)
            side.motion_quality = code / 1000
        if version >= BLOCK_MOTION_VERSION:
            if len(payload) < head + _BLOCK.size:
                raise StreamError(f"frame {packet.frame_index}: payload ends inside the motion mode field")
            (side.block,) = _BLOCK.unpack_from(payload, head)
            head += _BLOCK.size
            if side.block:
                if len(payload) < head + _LEN.size:
                    raise StreamError(f"frame {packet.frame_index}: payload ends inside the block motion length")
                (n,) = _LEN.unpack_from(payload, head)
                head += _LEN.size
                if len(payload) < head + n:
                    raise StreamError(f"frame {packet.frame_index}: block motion length {n} exceeds the payload")
                side.vectors = payload[head:head + n]
                head += n
        payload = payload[head:]
    if version >= (4, 0):
        return side, [payload]
    return side, unpack_substreams(payload, SUBSTREAMS_3X[packet.frame_type], packet.frame_index)


def substream_sizes(packet: Packet, version: tuple[int, int] = VERSION) -> dict[str, int]:
    """Bytes of each part of a packet's payload, by name (what `vcodec info` reports): the entropy-coded
    substreams of format 3.x and 2.x; from format 4.0 on all of a frame's latents share one ANS stream, so only
    a P-frame with block motion (format 7) splits, into its vectors and its latents."""
    if version >= (4, 0):
        if packet.frame_type != FRAME_P:
            return {}
        side, (latents,) = unpack_payload(packet, version)
        return {"vectors": len(side.vectors), "latents": len(latents)} if side.block else {}
    _, parts = unpack_payload(packet, version)
    return {name: len(part) for name, part in zip(SUBSTREAM_NAMES_3X[packet.frame_type], parts)}


def unpack_substreams(payload: bytes, count: int, frame_index: int) -> list[bytes]:
    parts, pos = [], 0
    for i in range(count - 1):
        if pos + _LEN.size > len(payload):
            raise StreamError(f"frame {frame_index}: payload ends inside substream {i}'s length field")
        (n,) = _LEN.unpack_from(payload, pos)
        pos += _LEN.size
        if pos + n > len(payload):
            raise StreamError(f"frame {frame_index}: substream {i} length {n} exceeds the payload")
        parts.append(payload[pos : pos + n])
        pos += n
    parts.append(payload[pos:])
    return parts


@dataclass
class SideInfo:
    """A P-frame's exactly coded side information: global motion (1/8 px), the motion codec's quality and,
    with block motion (format 7), the cell size and the coded vectors."""

    global_motion: tuple[int, int]
    motion_quality: float
    block: int = 0
    vectors: bytes = b""


@dataclass
class ParsedFrame:
    """What parsing a packet yields: the exact side information and the entropy-decoded latents."""

    side: SideInfo
    latents: list[torch.Tensor]


@dataclass
class Coded:
    packet: Packet
    recon: YUVFrame
    z: HyperLatents | None = None  # a P-frame's hyper-latents (what tools/fit_temporal_prior.py counts)


class FrameEncoder:
    """Turns frames into packets: keyframes at GOP starts, P-frames in between.

    With a RateController, each frame's quality is chosen to meet the bitrate
    (keyframes by bisection on the entropy model's rate, P-frames by feedback
    from the previous P-frame); otherwise every frame uses the fixed `quality`.

    With `scene_cuts` (fixed quality only), a frame scheduled as a P-frame is
    coded as a keyframe instead when that costs less in rate-distortion terms,
    bits + λ·255²·MSE-YUV·pixels with the quality's λ: after a cut, or wherever
    motion compensation fails. The next keyframe is then due `intra_period` frames
    later. To save time the keyframe is only tried when the P-frame's cost is
    more than half the last keyframe's.

    `motion` sets the encoder's motion search (MotionSearch): the flow network's estimate sharpened by
    gradient steps, then coded with the motion codec at a few qualities at or below the frame's, keeping
    the cheapest in the same rate-distortion terms (one more motion and residual coding per extra candidate;
    with `effort`, the latent refinement runs once, for the chosen offset).

    `keyframe_offset` codes a GOP's keyframes that many quality steps above its P-frames (fixed quality,
    intra period other than 1; clamped to the quality range). `p_offsets` shapes the P-frames' quality in a
    cycle that restarts at each keyframe: the k-th P-frame after it is coded at quality + p_offsets[(k-1) % n]
    (fixed quality; clamped to the quality range). In a low-delay chain each frame is the next one's
    reference, so a periodically better frame lifts the frames after it, as the hierarchical quality of
    low-delay configurations in HEVC's reference encoder does. Measured in docs/TRAINING.md.

    `effort` > 0 refines each keyframe latent and P-frame residual latent with
    that many gradient steps (vcodec.models.refinement): smaller streams, slower
    encoding, the same decoder.

    A P-frame after a P-frame codes its hyper-latents given the previous one's
    when the inter weights carry a temporal prior; a keyframe resets that, so
    every GOP still parses on its own.
    """

    def __init__(self, keyframe: KeyframeCodec, quality: float, device: torch.device,
                 rate: RateController | None = None, inter: InterCodec | None = None, intra_period: int = 1,
                 scene_cuts: bool = True, effort: int = 0,
                 motion: MotionSearch = MotionSearch(), keyframe_offset: float = KEYFRAME_OFFSET,
                 p_offsets: tuple[float, ...] = P_OFFSETS):
        if intra_period != 1 and inter is None:
            raise ValueError("P-frames need an inter model")
        self.keyframe, self.inter, self.device, self.rate = keyframe, inter, device, rate
        self.quality = stream_quality(quality)
        # Every P-frame of a GOP inherits its keyframe's detail, so a GOP's keyframe may be worth more bits than
        # a P-frame; all-intra streams and rate control code keyframes at the frame's quality.
        top = keyframe.levels - 1.0
        self.keyframe_quality = (self.quality if intra_period == 1 or rate is not None
                                 else stream_quality(min(top, max(0.0, self.quality + keyframe_offset))))
        self.p_qualities = [stream_quality(min(top, max(0.0, self.quality + o))) for o in p_offsets or (0.0,)]
        self.intra_period = intra_period
        self.scene_cuts = scene_cuts and rate is None
        self.effort = effort
        self.motion = motion
        self.reference: torch.Tensor | None = None
        self._z_prev: HyperLatents | None = None  # the previous P-frame's hyper-latents
        self._motion_choice: int | None = None  # the previous P-frame's index into motion.motion_offsets
        self._p_quality: float | None = None
        self._last_key, self._last_key_cost = 0, 0.0

    def keyframe_due(self, index: int) -> bool:
        if self.reference is None or self.intra_period == 1:
            return True
        return self.intra_period > 0 and index - self._last_key >= self.intra_period

    def encode(self, frame: YUVFrame, index: int) -> Coded:
        x = frame_to_tensor(frame).to(self.device)
        intra_cost, z = None, None
        if self.keyframe_due(index):
            packet, x_hat = self._encode_intra(x, index)
        else:
            packet, x_hat, z = self._encode_inter(x, index)
            if self.scene_cuts:
                cost = self._rd_cost(packet, x_hat, x)
                if cost > self._last_key_cost / 2:
                    intra, intra_hat = self._encode_intra(x, index)
                    intra_cost = self._rd_cost(intra, intra_hat, x, packet.quality)
                    if intra_cost < cost:
                        packet, x_hat = intra, intra_hat
        self._z_prev = z if packet.frame_type == FRAME_P and self.inter.temporal_prior else None
        if packet.frame_type == FRAME_I:
            self._last_key, self._motion_choice = index, None
            if self.scene_cuts:
                self._last_key_cost = (intra_cost if intra_cost is not None
                                       else self._rd_cost(packet, x_hat, x, self.quality))
        recon = tensor_to_frame(x_hat, frame.width, frame.height)
        packet.recon_hash = frame_hash(recon.tobytes())
        if self.inter is not None:
            self.reference = frame_to_tensor(recon).to(self.device)
        return Coded(packet, recon, z if packet.frame_type == FRAME_P else None)

    def _code_inter(self, x: torch.Tensor, index: int, quality: float, motion_quality: float, flow: torch.Tensor,
                    effort: int) -> tuple[Packet, InterLatents]:
        lat = self.inter.compress(x, self.reference, quality, effort, self._z_prev, motion_quality, flow)
        return Packet(FRAME_P, index, quality, pack_p_payload(lat.global_motion, motion_quality, lat.substream())), lat

    def _code_blocks(self, x: torch.Tensor, index: int, quality: float, block: int, flow: torch.Tensor,
                     effort: int, vectors: torch.Tensor | None = None) -> tuple[Packet, InterLatents]:
        rate_weight = self.motion.vector_rd * self._error_weight(quality)
        lat = self.inter.compress_blocks(x, self.reference, quality, block, flow, effort, self._z_prev, vectors,
                                         rate_weight)
        payload = pack_p_payload((0, 0), quality, lat.substream(), block=block, vectors=encode_vectors(lat.vectors))
        return Packet(FRAME_P, index, quality, payload), lat

    def _error_weight(self, quality: float) -> float:
        """`error_weight` at `quality`'s λ."""
        return error_weight(float(self.keyframe.lmbda(torch.tensor([quality]))))

    def _rd_cost(self, packet: Packet, x_hat: torch.Tensor, x: torch.Tensor, quality: float | None = None) -> float:
        """Bits plus λ-weighted distortion, λ that of `quality` (default the packet's): candidates for one
        frame are compared at the same λ even when coded at different qualities."""
        mse = float(yuv_mse(quantize_tensor(x_hat).double(), x.double()))
        weight = self._error_weight(packet.quality if quality is None else quality)
        return 8 * packet.size + weight * mse * x.shape[-2] * x.shape[-1]

    def _encode_intra(self, x: torch.Tensor, index: int) -> tuple[Packet, torch.Tensor]:
        y0 = self.keyframe.analysis(x)
        quality, estimate = self.keyframe_quality, 0.0
        if self.rate is not None:
            quality = stream_quality(self.rate.choose(lambda q: self.keyframe.estimate_bits(y0, q)))
            estimate = self.keyframe.estimate_bits(y0, quality)
        if self.effort > 0:
            lmbda = float(self.keyframe.lmbda(torch.tensor([quality])))
            y0 = refine_latent(self.keyframe, pad_to(x, PAD), y0, quality, lmbda, self.effort)
        latents = self.keyframe.compress(x, quality, y0)
        x_hat = self.keyframe.synthesize(latents.y_hat, quality, x.shape[-2], x.shape[-1])
        packet = Packet(FRAME_I, index, quality, latents.substream())
        if self.rate is not None:
            self.rate.update(estimate, 8 * (packet.size + INDEX_ENTRY_BYTES))
            self._p_quality = None
        return packet, x_hat

    def _encode_inter(self, x: torch.Tensor, index: int) -> tuple[Packet, torch.Tensor, HyperLatents]:
        assert self.inter is not None and self.reference is not None
        quality = self.p_qualities[(index - self._last_key - 1) % len(self.p_qualities)]
        if self.rate is not None:
            quality = stream_quality(self._p_quality if self._p_quality is not None else self.quality)
        flow = self.inter.estimate_motion(x, self.reference, self.motion.flow_steps)
        motion_qualities: dict[float, int] = {}  # quality -> offset index (offsets may clamp to the same quality)
        for j in self.motion.candidates(self._motion_choice, index):
            motion_qualities.setdefault(stream_quality(max(0.0, quality + self.motion.motion_offsets[j])), j)
        # Each way of sending the motion: (False, motion codec quality) or (True, block size).
        options = [(False, m) for m in motion_qualities] + [(True, b) for b in self.motion.blocks]

        searched: dict[int, torch.Tensor] = {}  # block size -> its vectors: the search runs once per frame

        def code(option: tuple[bool, float], effort: int) -> tuple[Packet, InterLatents]:
            blocks, value = option
            if blocks:
                packet, lat = self._code_blocks(x, index, quality, int(value), flow, effort, searched.get(int(value)))
                searched[int(value)] = lat.vectors
                return packet, lat
            return self._code_inter(x, index, quality, value, flow, effort)

        if len(options) > 1:
            costs = {}
            for option in options:
                packet, lat = code(option, 0)
                costs[option] = (self._rd_cost(packet, lat.x_hat.clamp(0, 1), x), packet, lat)
            option = min(costs, key=lambda o: costs[o][0])
            _, packet, lat = costs[option]
        else:
            option = options[0]
        if not option[0]:
            self._motion_choice = motion_qualities[option[1]]
        if self.effort > 0 or len(options) == 1:
            packet, lat = code(option, self.effort)
        if self.rate is not None:
            real = 8 * (packet.size + INDEX_ENTRY_BYTES)
            target = self.rate.target()
            self.rate.update(0.0, real)
            # About 1.6x rate per quality step: move q by the log-ratio of target to actual.
            step = math.log(max(target, 1.0) / real) / math.log(1.6)
            self._p_quality = min(self.keyframe.levels - 1.0, max(0.0, quality + max(-1.0, min(1.0, step))))
        return packet, lat.x_hat.clamp(0, 1), lat.z


class FrameDecoder:
    """Turns packets back into frames of the stream's size, keeping the P-frame reference."""

    def __init__(self, keyframe: KeyframeCodec, width: int, height: int, device: torch.device,
                 inter: InterCodec | None = None, version: tuple[int, int] = VERSION):
        self.keyframe, self.inter, self.width, self.height, self.device = keyframe, inter, width, height, device
        # Format 2.x coded each context group of a latent as its own length-prefixed ANS stream, 3.x each
        # latent's z and y as a substream, 4.x the whole frame as one.
        self.version = version
        self.framed = version < (3, 0)
        self.temporal = version >= TEMPORAL_PRIOR_VERSION and inter is not None and inter.temporal_prior
        self.half_w, self.half_h = chroma_size(width, height)
        self.reference: torch.Tensor | None = None
        self._z_prev: HyperLatents | None = None  # the previous P-frame's hyper-latents (format 5)

    def parse(self, packet: Packet) -> ParsedFrame:
        """Entropy-decode a packet's latents. Needs no reconstructed frame, so it can run ahead of
        `reconstruct` (in another thread) while the previous frame is being synthesized; packets must be
        parsed in order (a P-frame's hyper-latents may be coded given the previous P-frame's)."""
        side, parts = unpack_payload(packet, self.version)
        size = (self.half_h, self.half_w)
        try:
            if packet.frame_type == FRAME_I:
                self._z_prev = None
                if len(parts) == 1:
                    return ParsedFrame(side, [self.keyframe.decompress(parts[0], *size)])
                return ParsedFrame(side, [self.keyframe.decompress_latents(*parts, *size, self.framed)])
            if self.inter is None:
                raise StreamError(f"frame {packet.frame_index}: P-frame but no inter model is loaded")
            if len(parts) == 1:
                motion_y, residual_y, z = self.inter.parse_frame(parts[0], *size, self._z_prev, bool(side.block))
                self._z_prev = z if self.temporal else None
                if side.block:
                    motion_y = decode_vectors(side.vectors, *grid_shape(*size, side.block))
                return ParsedFrame(side, [motion_y, residual_y])
            return ParsedFrame(side, list(self.inter.parse_substreams(*parts, *size, self.framed)))
        except (EntropyDecodeError, ExactnessError) as exc:  # garbage symbols can overflow the exact arithmetic
            raise StreamError(f"frame {packet.frame_index}: entropy decoding failed: {exc}") from None

    def reconstruct(self, packet: Packet, parsed: ParsedFrame) -> YUVFrame:
        """Synthesize the frame from parsed latents (and, for P-frames, the previous frame)."""
        latents = parsed.latents
        if packet.frame_type == FRAME_I:
            x_hat = self.keyframe.synthesize(latents[0].to(self.device), packet.quality, self.half_h, self.half_w)
        else:
            assert self.inter is not None
            if self.reference is None:
                raise StreamError(f"frame {packet.frame_index}: P-frame without a preceding keyframe")
            if parsed.side.block:  # latents: block motion's vectors, the residual latent
                x_hat = self.inter.reconstruct_blocks(latents[0], parsed.side.block, latents[1], self.reference,
                                                      packet.quality).clamp(0, 1)
            else:
                x_hat = self.inter.reconstruct(parsed.side.global_motion, *latents, self.reference, packet.quality,
                                               parsed.side.motion_quality).clamp(0, 1)
        frame = tensor_to_frame(x_hat, self.width, self.height)
        if self.inter is not None:
            self.reference = frame_to_tensor(frame).to(self.device)
        return frame

    def decode(self, packet: Packet) -> YUVFrame:
        return self.reconstruct(packet, self.parse(packet))

    def pipelined(self) -> bool:
        """Parse ahead only when a core is free for it: on CUDA (synthesis runs on the GPU) or when torch
        uses fewer threads than there are cores. Measured (docs/RESULTS.md): +25-40% decode speed with
        1 thread on 2 cores, a few percent slower with 2 threads on 2 cores."""
        return self.device.type == "cuda" or torch.get_num_threads() < (os.cpu_count() or 1)

    def decode_all(self, packets) -> Iterator[tuple[Packet, YUVFrame]]:
        """Decode packets in order; when `pipelined()`, packet t+1 is parsed in a helper thread while
        frame t is synthesized."""
        if not self.pipelined():
            for packet in packets:
                yield packet, self.decode(packet)
            return
        packets = iter(packets)
        with ThreadPoolExecutor(1) as pool:
            pending: tuple[Packet, Future] | None = None
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except StreamError:  # a damaged next packet must not cost the frame before it
                    if pending is not None:
                        yield pending[0], self.reconstruct(pending[0], pending[1].result())
                    raise
                ahead = (packet, pool.submit(self.parse, packet))
                if pending is not None:
                    yield pending[0], self.reconstruct(pending[0], pending[1].result())
                pending = ahead
            if pending is not None:
                yield pending[0], self.reconstruct(pending[0], pending[1].result())
