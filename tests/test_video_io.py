"""Video I/O: pixel-format conversion, colour transforms, output formats."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.conftest import crop
from vcodec.color import rgb_to_yuv420, yuv420_to_rgb
from vcodec.errors import UserError
from vcodec.video import VideoWriter, read_frames


def test_other_pixel_formats_convert_with_a_warning(tmp_path):
    path = tmp_path / "rgb.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv444p"
        for i in range(2):
            img = np.full((48, 64, 3), 40 * (i + 1), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv444p")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.warns(UserWarning, match="converting yuv444p"):
        frames, info = read_frames(path)
    assert len(frames) == 2 and frames[0].u.shape == (24, 32) and info.source_format == "yuv444p"


def test_rgb_yuv_roundtrip_is_close():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    smooth = np.repeat(np.repeat(rgb[::2, ::2], 2, 0), 2, 1)[:33, :47]
    back = yuv420_to_rgb(rgb_to_yuv420(smooth))
    assert back.shape == smooth.shape
    assert np.abs(back.astype(int) - smooth.astype(int)).mean() < 3


def test_mp4_needs_even_size(tmp_path):
    with pytest.raises(UserError, match="even dimensions"):
        VideoWriter(tmp_path / "odd.mp4", 175, 143, Fraction(25))


def test_y4m_writer_roundtrip(tmp_path, sample_frames):
    frames = [crop(f, 175, 143) for f in sample_frames[:2]]
    with VideoWriter(tmp_path / "a.y4m", 175, 143, Fraction(24000, 1001)) as w:
        for f in frames:
            w.write(f)
    back, info = read_frames(tmp_path / "a.y4m")
    assert info.fps == Fraction(24000, 1001)
    assert all(np.array_equal(a.v, b.v) for a, b in zip(frames, back))
