"""Video file I/O through PyAV: 8-bit 4:2:0 frames in, Y4M / FFV1 MKV / H.264 MP4 out.

Reading accepts anything FFmpeg decodes; frames in another pixel format are
converted to yuv420p (with one warning). Writing picks the format from the
output's extension. Colour metadata travels as FFmpeg's enum values so it can be
carried from the source, through the stream header, to the decoded file.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vcodec.color import YUVFrame, chroma_size
from vcodec.errors import UserError

# FFmpeg renders text files as "ANSI art" video; nobody means that as input.
TEXT_DEMUXERS = {"tty", "bin", "xbin", "adf", "idf"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".m4v", ".ts"}  # for picking files in folders
OUTPUT_FORMATS = {".y4m": "Y4M (raw)", ".mkv": "Matroska FFV1 (lossless)", ".mp4": "MP4 H.264"}


@dataclass
class ColorInfo:
    """FFmpeg enum values (AVColorPrimaries, ...); 2 means unspecified, range 0 unspecified."""

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frame_count: int | None  # container's claim; None when unknown
    color: ColorInfo = field(default_factory=ColorInfo)
    source_format: str = "yuv420p"
    rotation: int = 0  # display rotation (degrees, counter-clockwise); known once the first frame is read


def _plane_array(plane, width: int, height: int) -> np.ndarray:
    buf = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
    return np.array(buf[:height, :width])


def frame_from_av(frame: av.VideoFrame) -> YUVFrame:
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    cw, ch = chroma_size(frame.width, frame.height)
    return YUVFrame(
        _plane_array(frame.planes[0], frame.width, frame.height),
        _plane_array(frame.planes[1], cw, ch),
        _plane_array(frame.planes[2], cw, ch),
    )


def frame_to_av(frame: YUVFrame) -> av.VideoFrame:
    out = av.VideoFrame(frame.width, frame.height, "yuv420p")
    for plane, data in zip(out.planes, frame.planes()):
        h, w = data.shape
        dst = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        if dst.flags.writeable:
            dst[:h, :w] = data
        else:
            padded = np.zeros((dst.shape[0], plane.line_size), dtype=np.uint8)
            padded[:h, :w] = data
            plane.update(padded)
    return out


class VideoReader:
    """Iterate a video file as YUVFrame objects; `info` describes the stream."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"input not found: {self.path}")
        if self.path.is_dir():
            raise UserError(f"input is a directory, not a video: {self.path}")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise UserError(f"cannot read {self.path} as video: {_ff_message(exc)}") from None
        if self._container.format.name in TEXT_DEMUXERS:
            self._container.close()
            raise UserError(f"cannot read {self.path} as video: it is a text file")
        if not self._container.streams.video:
            self._container.close()
            raise UserError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        ctx = self._stream.codec_context
        rate = self._stream.average_rate or self._stream.guessed_rate or Fraction(25)
        self.info = VideoInfo(
            width=ctx.width,
            height=ctx.height,
            fps=Fraction(rate),
            frame_count=self._stream.frames or None,
            color=ColorInfo(
                int(ctx.color_primaries or 2), int(ctx.color_trc or 2),
                int(ctx.colorspace or 2), int(ctx.color_range or 0),
            ),
            source_format=ctx.pix_fmt or "unknown",
        )
        if self.info.width <= 0 or self.info.height <= 0:
            raise UserError(f"{self.path}: video stream has no picture size")

    def __iter__(self) -> Iterator[YUVFrame]:
        warned = False
        try:
            for index, frame in enumerate(self._container.decode(self._stream)):
                if index == 0:
                    self.info.rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
                if frame.format.name != "yuv420p" and not warned:
                    warnings.warn(
                        f"{self.path.name}: converting {frame.format.name} to 8-bit yuv420p", stacklevel=2
                    )
                    warned = True
                yield frame_from_av(frame)
        except av.FFmpegError as exc:
            raise UserError(f"cannot decode {self.path}: {_ff_message(exc)}") from None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def source_kbps(path: str | os.PathLike, max_frames: int | None = None) -> float:
    """The video stream's own bitrate over its first `max_frames` packets (from packet sizes)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        sizes = []
        for packet in container.demux(stream):
            if packet.size:
                sizes.append(packet.size)
            if max_frames is not None and len(sizes) >= max_frames:
                break
    if not sizes:
        raise UserError(f"{path} has no video packets")
    return sum(sizes) * 8 * float(rate) / len(sizes) / 1000


def read_frames(path: str | os.PathLike, max_frames: int | None = None) -> tuple[list[YUVFrame], VideoInfo]:
    """Read (up to max_frames) frames into memory: convenient for short clips and tests."""
    with VideoReader(path) as reader:
        frames = []
        for frame in reader:
            frames.append(frame)
            if max_frames is not None and len(frames) >= max_frames:
                break
        return frames, reader.info


class VideoWriter:
    """Write frames to .y4m, .mkv (FFV1) or .mp4 (H.264), chosen by extension.

    `crf=None` keeps the MP4 lossless (qp 0); a CRF gives a small viewing copy.
    The caller is responsible for atomic placement (see vcodec.fileio).
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction,
                 color: ColorInfo | None = None, crf: int | None = None, container_format: str | None = None,
                 rotation: int = 0):
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, Fraction(fps)
        self.color = color or ColorInfo()
        ext = (container_format or self.path.suffix).lower()
        if not ext.startswith("."):
            ext = "." + ext
        if ext not in OUTPUT_FORMATS:
            raise UserError(f"unsupported output format '{self.path.suffix}': use .y4m, .mkv or .mp4")
        self.kind = ext
        self._y4m = None
        self._container = None
        if ext == ".y4m":
            if rotation:
                warnings.warn(f"Y4M cannot carry the {rotation} degree display rotation: write .mkv or .mp4 "
                              "to keep it", stacklevel=2)
            self._y4m = open(self.path, "wb")
            self._y4m.write(
                f"YUV4MPEG2 W{width} H{height} F{self.fps.numerator}:{self.fps.denominator} "
                f"Ip A1:1 C420jpeg\n".encode()
            )
            return
        if ext == ".mp4" and (width % 2 or height % 2):
            raise UserError(f"H.264 MP4 needs even dimensions ({width}x{height}): write .mkv or .y4m instead")
        self._container = av.open(str(self.path), mode="w", format="matroska" if ext == ".mkv" else "mp4")
        codec = "ffv1" if ext == ".mkv" else "libx264"
        self._stream = self._container.add_stream(codec, rate=self.fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        ctx = self._stream.codec_context
        ctx.color_primaries, ctx.color_trc = self.color.primaries, self.color.transfer
        ctx.colorspace, ctx.color_range = self.color.matrix, self.color.range
        if rotation:
            self._stream.set_display_rotation(rotation)
        if ext == ".mp4":
            self._stream.options = {"qp": "0"} if crf is None else {"crf": str(crf)}
            self._stream.options["preset"] = "medium" if crf is not None else "veryfast"

    def write(self, frame: YUVFrame) -> None:
        if (frame.width, frame.height) != (self.width, self.height):
            raise ValueError("frame size differs from the writer's size")
        if self._y4m is not None:
            self._y4m.write(b"FRAME\n")
            self._y4m.write(frame.tobytes())
            return
        av_frame = frame_to_av(frame)
        av_frame.color_range = self.color.range
        for packet in self._stream.encode(av_frame):
            self._container.mux(packet)

    def close(self) -> None:
        if self._y4m is not None:
            self._y4m.close()
            self._y4m = None
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close()


def _ff_message(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return msg.splitlines()[0] if msg else type(exc).__name__


def warn_line(message: str) -> None:
    print(f"vcodec: warning: {message}", file=sys.stderr)
