"""Conventional codecs as anchors: encode frames through PyAV, count bits, decode.

Configuration follows the usual low-delay comparison setup: no B-frames, a fixed
GOP length equal to vcodec's intra period (keyint 1 = all-intra), no scene-cut
keyframes, yuv420p, a CRF sweep. Bits are the sum of the encoder's packet sizes
(no container overhead); decoded frames come from the matching decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from vcodec.color import YUVFrame
from vcodec.video import frame_from_av, frame_to_av

ANCHORS = {
    "x264": ("libx264", "h264", "medium"),
    "x265": ("libx265", "hevc", "medium"),
}
DEFAULT_CRFS = {"x264": [18, 22, 26, 30, 34, 38], "x265": [20, 24, 28, 32, 36, 40]}


@dataclass
class AnchorResult:
    codec: str
    preset: str
    crf: int
    bits: int
    frames: list[YUVFrame]


def _pad_even(frame: YUVFrame) -> YUVFrame:
    """H.264/H.265 in 4:2:0 need even sizes: replicate the last row/column (cropped after decoding)."""
    h, w = frame.height, frame.width
    if h % 2 == 0 and w % 2 == 0:
        return frame
    y = np.pad(frame.y, ((0, h % 2), (0, w % 2)), mode="edge")
    return YUVFrame(y, frame.u, frame.v)


def _crop(frame: YUVFrame, width: int, height: int) -> YUVFrame:
    return YUVFrame(frame.y[:height, :width].copy(), frame.u, frame.v)


def _options(name: str, crf: int, preset: str, keyint: int) -> dict[str, str]:
    gop = f"keyint={keyint}:min-keyint={keyint}:scenecut=0"
    if name == "x264":
        return {"crf": str(crf), "preset": preset, "x264-params": f"{gop}:bframes=0"}
    return {"crf": str(crf), "preset": preset, "x265-params": f"{gop}:bframes=0:log-level=error"}


def encode_anchor(frames: list[YUVFrame], name: str, crf: int, keyint: int, fps: Fraction,
                  preset: str | None = None) -> AnchorResult:
    """Encode and decode `frames` with anchor `name` ('x264' or 'x265')."""
    encoder_name, decoder_name, default_preset = ANCHORS[name]
    preset = preset or default_preset
    width, height = frames[0].width, frames[0].height
    enc = av.CodecContext.create(encoder_name, "w")
    enc.width, enc.height = width + width % 2, height + height % 2
    enc.pix_fmt = "yuv420p"
    enc.time_base = Fraction(1) / Fraction(fps)
    enc.framerate = Fraction(fps)
    enc.options = _options(name, crf, preset, keyint)
    packets = []
    for i, frame in enumerate(frames):
        av_frame = frame_to_av(_pad_even(frame))
        av_frame.pts = i
        packets += enc.encode(av_frame)
    packets += enc.encode(None)
    bits = sum(p.size for p in packets) * 8
    dec = av.CodecContext.create(decoder_name, "r")
    decoded = []
    for p in packets:
        decoded += dec.decode(p)
    decoded += dec.decode(None)
    out = [_crop(frame_from_av(f), width, height) for f in decoded]
    if len(out) != len(frames):
        raise RuntimeError(f"{name} returned {len(out)} frames for {len(frames)}")
    return AnchorResult(name, preset, crf, bits, out)
