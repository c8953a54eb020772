"""Shared fixtures: short real clips cut from the repository's sample video."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from vcodec.color import YUVFrame
from vcodec.video import VideoWriter, read_frames

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample.mp4"


def write_clip(path: Path, frames: list[YUVFrame], fps: Fraction = Fraction(25)) -> Path:
    with VideoWriter(path, frames[0].width, frames[0].height, fps) as w:
        for f in frames:
            w.write(f)
    return path


def crop(frame: YUVFrame, width: int, height: int) -> YUVFrame:
    cw, ch = (width + 1) // 2, (height + 1) // 2
    return YUVFrame(frame.y[:height, :width].copy(), frame.u[:ch, :cw].copy(), frame.v[:ch, :cw].copy())


@pytest.fixture(scope="session")
def sample_frames() -> list[YUVFrame]:
    frames, _ = read_frames(SAMPLE, max_frames=6)
    return frames


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory, sample_frames) -> Path:
    """4 frames of 128x96 real video in a lossless MKV."""
    path = tmp_path_factory.mktemp("clips") / "small.mkv"
    return write_clip(path, [crop(f, 128, 96) for f in sample_frames[:4]], Fraction(30000, 1001))


@pytest.fixture(scope="session")
def small_stream(tmp_path_factory, small_clip) -> Path:
    import vcodec

    path = tmp_path_factory.mktemp("streams") / "small.lvc"
    vcodec.encode(small_clip, path, quality=3, intra_period=1, progress=False)  # every frame its own GOP
    return path
