"""Conventional codecs as anchors: encode frames through PyAV, count bits, decode.

Configuration follows the usual low-delay comparison setup: no B-frames, a fixed
GOP length equal to vcodec's intra period (keyint 1 = all-intra), no scene-cut
keyframes, yuv420p, a CRF sweep. Bits are the sum of the encoder's packet sizes
(no container overhead); decoded frames come from the matching decoder.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vcodec.color import YUVFrame, chroma_size
from vcodec.errors import UserError
from vcodec.video import frame_from_av, frame_to_av

# name: (PyAV encoder, decoder, default preset, label). PyAV's FFmpeg has no AV1 software
# decoder, so AV1 is decoded with dav1d from the ffmpeg binary of `imageio-ffmpeg` (extra "av1").
ANCHORS = {
    "x264": ("libx264", "h264", "medium", "H.264"),
    "x265": ("libx265", "hevc", "medium", "H.265"),
    "svtav1": ("libsvtav1", "dav1d", "8", "AV1"),
}
DEFAULT_CRFS = {
    "x264": [18, 22, 26, 30, 34, 38],
    "x265": [20, 24, 28, 32, 36, 40],
    "svtav1": [24, 30, 36, 42, 48, 54],
}


@dataclass
class AnchorResult:
    codec: str
    preset: str
    crf: float
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


def _options(name: str, crf: float, preset: str, keyint: int) -> dict[str, str]:
    gop = f"keyint={keyint}:min-keyint={keyint}:scenecut=0"
    if name == "x264":
        return {"crf": f"{crf:g}", "preset": preset, "x264-params": f"{gop}:bframes=0"}
    if name == "x265":
        return {"crf": f"{crf:g}", "preset": preset, "x265-params": f"{gop}:bframes=0:log-level=error"}
    # SVT-AV1: pred-struct 1 is its low-delay structure (no frame reordering); its CRF is an integer.
    return {"crf": str(round(crf)), "preset": preset, "svtav1-params": f"keyint={keyint}:scd=0:pred-struct=1"}


def label(name: str, preset: str | None = None) -> str:
    encoder, _, default_preset, codec = ANCHORS[name]
    return f"{codec} ({name} {preset or default_preset})"


def _decode_av1(packets: list, width: int, height: int, fps: Fraction) -> list[YUVFrame]:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError("the svtav1 anchor needs an AV1 decoder: pip install 'vcodec[av1]'") from None
    with tempfile.TemporaryDirectory() as tmp:
        ivf = Path(tmp) / "anchor.ivf"
        with av.open(str(ivf), "w", format="ivf") as container:
            stream = container.add_stream("libsvtav1", rate=fps)
            stream.width, stream.height = width, height
            for p in packets:
                p.stream = stream
                container.mux(p)
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-c:v", "libdav1d", "-i", str(ivf),
               "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"]
        raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    cw, ch = chroma_size(width, height)
    size = width * height + 2 * cw * ch
    frames = []
    for i in range(len(raw) // size):
        buf = np.frombuffer(raw, np.uint8, size, i * size)
        y = buf[: width * height].reshape(height, width)
        u = buf[width * height : width * height + cw * ch].reshape(ch, cw)
        v = buf[width * height + cw * ch :].reshape(ch, cw)
        frames.append(YUVFrame(y.copy(), u.copy(), v.copy()))
    return frames


def encode_anchor(frames: list[YUVFrame], name: str, crf: float, keyint: int, fps: Fraction,
                  preset: str | None = None) -> AnchorResult:
    """Encode and decode `frames` with anchor `name` ('x264', 'x265' or 'svtav1')."""
    encoder_name, decoder_name, default_preset, _ = ANCHORS[name]
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only
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
    if decoder_name == "dav1d":
        out = [_crop(f, width, height) for f in _decode_av1(packets, enc.width, enc.height, Fraction(fps))]
    else:
        dec = av.CodecContext.create(decoder_name, "r")
        decoded = []
        for p in packets:
            decoded += dec.decode(p)
        decoded += dec.decode(None)
        out = [_crop(frame_from_av(f), width, height) for f in decoded]
    if len(out) != len(frames):
        raise RuntimeError(f"{name} returned {len(out)} frames for {len(frames)}")
    return AnchorResult(name, preset, crf, bits, out)


def encode_anchor_at_bitrate(frames: list[YUVFrame], name: str, kbps: float, keyint: int, fps: Fraction,
                             preset: str | None = None, steps: int = 7) -> AnchorResult:
    """The anchor at the CRF (bisected, fractional) whose real bitrate is closest to `kbps`."""
    lo, hi = (0.0, 51.0) if name != "svtav1" else (1.0, 63.0)
    best: AnchorResult | None = None
    for _ in range(steps):
        crf = round(0.5 * (lo + hi), 2)
        r = encode_anchor(frames, name, crf, keyint, fps, preset)
        rate = r.bits * float(fps) / len(frames) / 1000
        if best is None or abs(rate - kbps) < abs(best.bits * float(fps) / len(frames) / 1000 - kbps):
            best = r
        lo, hi = (crf, hi) if rate > kbps else (lo, crf)
    assert best is not None
    return best
