"""File-level verbs: encode, decode, info. The CLI is a thin shell over these."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vcodec.codec import (
    KEYFRAME_OFFSET,
    P_OFFSETS,
    FrameDecoder,
    FrameEncoder,
    MotionSearch,
    substream_sizes,
    unpack_payload,
)
from vcodec.color import YUVFrame, chroma_size
from vcodec.entropy.coder import CODER_ID
from vcodec.errors import StreamError, UserError
from vcodec.fileio import atomic_output, check_output
from vcodec.metrics import frame_psnr, mean_metrics
from vcodec.ratecontrol import RateController
from vcodec.stream import (
    FRAME_P,
    FRAME_TYPES,
    MAX_PIXELS,
    ROLE_INTER,
    ROLE_KEYFRAME,
    StreamHeader,
    StreamReader,
    StreamWriter,
    frame_hash,
)
from vcodec.video import ColorInfo, VideoReader, VideoWriter
from vcodec.zoo import LoadedModel, inter_available, load_inter, load_keyframe

DEFAULT_QUALITY = 4.0


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is a user error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("CUDA was requested but no CUDA device is available (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}' (use auto, cpu or cuda)") from None


def _check_quality(model: LoadedModel, quality: float) -> None:
    top = model.model.levels - 1
    if not 0 <= quality <= top:
        raise UserError(f"quality must be between 0 and {top} (got {quality})")


@dataclass
class EncodeResult:
    output: Path
    frames: int
    bytes: int
    width: int
    height: int
    fps: Fraction
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / (self.width * self.height * max(self.frames, 1))

    @property
    def kbps(self) -> float:
        return self.bytes * 8 * float(self.fps) / max(self.frames, 1) / 1000


def default_intra_period(inter_weights: str | os.PathLike | None = None) -> int:
    """32 (low-delay IPPP GOPs) when an inter model is available, else 1 (all-intra)."""
    return 32 if inter_available(inter_weights) else 1


def encode(input: str | os.PathLike, output: str | os.PathLike, quality: float | None = None,
           intra_period: int | None = None, frames: int | None = None, weights: str | os.PathLike | None = None,
           device: str = "cpu", progress: bool = True, bitrate: float | None = None,
           inter_weights: str | os.PathLike | None = None, scene_cuts: bool = True,
           effort: int = 0, motion: MotionSearch | None = None,
           keyframe_offset: float = KEYFRAME_OFFSET, p_offsets: tuple[float, ...] = P_OFFSETS) -> EncodeResult:
    """Encode a video file into a .lvc stream.

    Give either a fixed `quality` (default 4) or a target `bitrate` in kbps, for
    which each frame's quality is chosen by the rate controller. `intra_period`
    N puts a keyframe at most N frames apart (1 = all-intra, 0 = only the first
    frame); with `scene_cuts` (fixed quality only) a P-frame that would cost more
    than a keyframe in rate-distortion terms becomes one. P-frames need inter
    weights (shipped, or `inter_weights`). `effort` > 0 spends that many gradient
    steps per frame refining its latents: fewer bits, slower encoding. `motion`: the P-frames' motion search
    (default `MotionSearch()`; `vcodec.codec.FAST_MOTION` is what `--fast` uses). `keyframe_offset`: how many
    quality steps above `quality` a GOP's keyframes are coded (fixed quality with P-frames only). `p_offsets`:
    the P-frames' quality offsets from `quality`, cycled from each keyframe (fixed quality only).
    """
    out = check_output(output, input)
    if quality is not None and bitrate is not None:
        raise UserError("give either a quality or a bitrate, not both")
    if bitrate is not None and bitrate <= 0:
        raise UserError("--bitrate must be a positive number of kbps")
    quality = DEFAULT_QUALITY if quality is None else quality
    if inter_weights is not None and not inter_available(inter_weights):
        raise UserError(f"inter weights {inter_weights} do not exist")
    if intra_period is None:
        intra_period = default_intra_period(inter_weights)
    if intra_period < 0:
        raise UserError("--intra-period must be >= 0")
    if intra_period != 1 and not inter_available(inter_weights):
        raise UserError("P-frames need inter weights and this install has none: use --intra-period 1 or pass "
                        "--inter-weights")
    if frames is not None and frames < 1:
        raise UserError("--frames must be at least 1")
    if effort < 0:
        raise UserError("--effort must be >= 0")
    if not -7 <= keyframe_offset <= 7:
        raise UserError("--keyframe-offset must be between -7 and 7 quality steps")
    if not all(-7 <= o <= 7 for o in p_offsets):
        raise UserError("--p-offsets must each be between -7 and 7 quality steps")
    dev = resolve_device(device)
    model = load_keyframe(weights, dev)
    inter = load_inter(inter_weights, dev) if intra_period != 1 else None
    _check_quality(model, quality)
    start = time.time()
    with VideoReader(input) as reader:
        info = reader.info
        if info.width * info.height > MAX_PIXELS:
            raise UserError(f"{info.width}x{info.height} is larger than the largest supported frame (8192x4352)")
        total = min(x for x in (info.frame_count, frames) if x) if (info.frame_count or frames) else None
        header = _header(info.width, info.height, info.fps, info.color, intra_period, quality, model, inter)
        rate = None
        if bitrate is not None:
            container_bytes = len(header.pack()) + 16 + 10  # header, trailer, index marker+count+CRC
            rate = RateController(bitrate, info.fps, model.model.levels, 8 * container_bytes)
        encoder = FrameEncoder(model.model, quality, dev, rate, inter.model if inter else None, intra_period,
                               scene_cuts, effort, motion or MotionSearch(), keyframe_offset, tuple(p_offsets))
        rows = []
        with atomic_output(out) as tmp, open(tmp, "wb") as f:
            writer = StreamWriter(f, header)
            with tqdm(total=total, desc="encode", unit="frame", disable=not progress, leave=False) as bar:
                for index, frame in enumerate(reader):
                    if frames is not None and index >= frames:
                        break
                    coded = encoder.encode(frame, index)
                    writer.write(coded.packet)
                    rows.append(frame_psnr(frame, coded.recon))
                    bar.update(1)
            if not rows:
                raise UserError(f"{input} contains no video frames")
            header.frame_count = len(rows)
            header.rotation = info.rotation
            writer.close()
            f.seek(0)
            f.write(header.pack())
    size = out.stat().st_size
    result = EncodeResult(out, len(rows), size, info.width, info.height, info.fps, time.time() - start,
                          mean_metrics(rows))
    if rate is not None and rate.clamped and abs(result.kbps / bitrate - 1) > 0.1:
        warnings.warn(f"{rate.clamped} of {len(rows)} frames hit the model's quality range limit: "
                      f"the stream is {result.kbps:.0f} kbps for a target of {bitrate:g} kbps", stacklevel=2)
    return result


def _header(width: int, height: int, fps: Fraction, color: ColorInfo, intra_period: int, quality: float,
            model: LoadedModel, inter: LoadedModel | None) -> StreamHeader:
    models = [(ROLE_KEYFRAME, bytes.fromhex(model.sha256))]
    if inter is not None:
        models.append((ROLE_INTER, bytes.fromhex(inter.sha256)))
    return StreamHeader(
        width=width, height=height, fps=fps, frame_count=0, intra_period=intra_period, quality=quality,
        coder_id=CODER_ID, models=models,
        color_primaries=color.primaries, color_transfer=color.transfer, color_matrix=color.matrix,
        color_range=color.range,
    )


@dataclass
class DecodeResult:
    output: Path
    frames: int
    seconds: float
    lost_frames: list[int] = field(default_factory=list)  # filled in by --skip-damaged
    damage: list[str] = field(default_factory=list)  # one line per damaged GOP


def _check_weights(header: StreamHeader, model: LoadedModel, inter: LoadedModel | None) -> None:
    for role, digest in header.models:
        loaded, name, option = (model, "keyframe", "--weights") if role == ROLE_KEYFRAME else \
            (inter, "inter", "--inter-weights")
        if loaded is not None and digest.hex() != loaded.sha256:
            raise StreamError(
                f"stream needs {name} weights {digest.hex()[:16]}, loaded weights are {loaded.sha256[:16]} "
                f"(pass the matching file with {option})"
            )
    if header.coder_id != CODER_ID:
        raise StreamError(f"stream uses entropy coder {header.coder_id}, this decoder has {CODER_ID}")


def _gop_spans(reader: StreamReader, start: int, end: int) -> list[tuple[int, int, int | None, int | None]]:
    """(first frame, end frame, offset, next GOP's offset) of the GOPs covering [start, end).

    The offset is None for frames before the first intact keyframe (unrecoverable).
    """
    gops = reader.gops
    spans: list[tuple[int, int, int | None, int | None]] = []
    if not gops or gops[0].first_frame > start:
        spans.append((start, min(end, gops[0].first_frame) if gops else end, None, None))
    for i, g in enumerate(gops):
        nxt = gops[i + 1] if i + 1 < len(gops) else None
        stop = nxt.first_frame if nxt else reader.header.frame_count
        if stop > start and g.first_frame < end:
            spans.append((g.first_frame, stop, g.offset, nxt.offset if nxt else None))
    return spans


def decode(input: str | os.PathLike, output: str | os.PathLike, device: str = "auto", start: int = 0,
           frames: int | None = None, crf: int | None = None, verify: bool = False,
           weights: str | os.PathLike | None = None, progress: bool = True,
           inter_weights: str | os.PathLike | None = None, skip_damaged: bool = False) -> DecodeResult:
    """Decode a .lvc stream to .y4m, .mkv or .mp4 (chosen by the output's extension).

    With `verify`, every frame is compared with the encoder's reconstruction hash
    and a mismatch raises an error naming the first differing frame. With
    `skip_damaged`, a damaged GOP does not stop decoding: its missing frames are
    filled with the last good frame (mid-grey before the first one) and listed in
    the result, and a damaged index is rebuilt by scanning for intact packets.
    """
    out = check_output(output, input)
    if start < 0 or (frames is not None and frames < 1):
        raise UserError("--start must be >= 0 and --frames >= 1")
    dev = resolve_device(device)
    t0 = time.time()
    with StreamReader(input, recover=skip_damaged) as reader:
        h = reader.header
        model = load_keyframe(weights, dev)
        inter = None
        if any(role == ROLE_INTER for role, _ in h.models):
            if not inter_available(inter_weights):
                raise StreamError("stream has P-frames but no inter weights are available (pass --inter-weights)")
            inter = load_inter(inter_weights, dev)
        _check_weights(h, model, inter)
        if start >= h.frame_count:
            raise UserError(f"--start {start} is past the end of the stream ({h.frame_count} frames)")
        end = h.frame_count if frames is None else min(h.frame_count, start + frames)
        decoder = FrameDecoder(model.model, h.width, h.height, dev, inter.model if inter else None, h.version)
        color = ColorInfo(h.color_primaries, h.color_transfer, h.color_matrix, h.color_range)
        result = DecodeResult(out, 0, 0.0)
        if reader.recovered:
            result.damage.append(f"index unusable ({reader.recovered}); GOPs rebuilt by scanning")
        last_good: YUVFrame | None = None
        with atomic_output(out) as tmp:
            with VideoWriter(tmp, h.width, h.height, h.fps, color, crf, container_format=out.suffix,
                             rotation=h.rotation) as writer, \
                    tqdm(total=end - start, desc="decode", unit="frame", disable=not progress, leave=False) as bar:

                def emit(frame: YUVFrame) -> None:
                    writer.write(frame)
                    result.frames += 1
                    bar.update(1)

                for first, stop, offset, next_offset in _gop_spans(reader, start, end):
                    next_frame = max(first, start)
                    try:
                        if offset is None:
                            raise StreamError(f"frames {first}-{stop - 1}: no intact keyframe")
                        decoder.reference = None
                        for packet, frame in decoder.decode_all(reader.packets(offset, min(stop, end), next_offset)):
                            if verify and frame_hash(frame.tobytes()) != packet.recon_hash:
                                raise StreamError(f"frame {packet.frame_index}: decoded frame differs from the "
                                                  "encoder's reconstruction (hash mismatch; expected when the "
                                                  "device or thread count differs from the encoder's)")
                            if packet.frame_index >= start:
                                emit(frame)
                                last_good, next_frame = frame, packet.frame_index + 1
                        if next_frame < min(stop, end):
                            raise StreamError(f"stream truncated: frame {next_frame} is missing")
                    except StreamError as exc:
                        if not skip_damaged:
                            raise
                        lost = list(range(next_frame, min(stop, end)))
                        filled = f"; frames {lost[0]}-{lost[-1]} filled" if lost else ""
                        result.damage.append(f"{exc}{filled}")
                        result.lost_frames += lost
                        filler = last_good or gray_frame(h.width, h.height)
                        for _ in lost:
                            emit(filler)
            if result.frames != end - start:
                raise StreamError(f"stream truncated: {result.frames} of {end - start} frames present")
    result.seconds = time.time() - t0
    return result


def gray_frame(width: int, height: int) -> YUVFrame:
    cw, ch = chroma_size(width, height)
    return YUVFrame(np.full((height, width), 128, np.uint8), np.full((ch, cw), 128, np.uint8),
                    np.full((ch, cw), 128, np.uint8))


@dataclass
class StreamInfo:
    path: Path
    header: StreamHeader
    file_bytes: int
    packets: list[dict] = field(default_factory=list)
    gops: list[dict] = field(default_factory=list)

    @property
    def bpp(self) -> float:
        h = self.header
        return self.file_bytes * 8 / (h.width * h.height * max(h.frame_count, 1))

    @property
    def kbps(self) -> float:
        return self.file_bytes * 8 * float(self.header.fps) / max(self.header.frame_count, 1) / 1000


def info(input: str | os.PathLike) -> StreamInfo:
    """Header, per-frame and per-GOP sizes of a stream (every packet is checked), with each packet's
    entropy-coded substream sizes where the format splits a frame into several (2.x, 3.x) and each P-frame's
    motion quality or block motion cell size."""
    with StreamReader(input) as reader:
        result = StreamInfo(Path(input), reader.header, reader.size)
        for packet in reader.packets():
            entry = {"frame": packet.frame_index, "type": FRAME_TYPES[packet.frame_type], "bytes": packet.size,
                     "quality": packet.quality, "substreams": substream_sizes(packet, reader.header.version)}
            if packet.frame_type == FRAME_P:
                side = unpack_payload(packet, reader.header.version)[0]
                if side.block:
                    entry["motion_block"] = side.block
                else:
                    entry["motion_quality"] = side.motion_quality
            result.packets.append(entry)
        if len(result.packets) != reader.header.frame_count:
            raise StreamError(
                f"stream holds {len(result.packets)} packets but its header says {reader.header.frame_count} frames"
            )
        bounds = [g.first_frame for g in reader.gops] + [reader.header.frame_count]
        for first, nxt in zip(bounds, bounds[1:]):
            size = sum(p["bytes"] for p in result.packets[first:nxt])
            result.gops.append({"first_frame": first, "frames": nxt - first, "bytes": size})
    return result
