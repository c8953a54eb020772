"""End-to-end: video file -> .lvc -> video file, closed loop and metadata preserved."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

import vcodec
from tests.conftest import SAMPLE, crop, write_clip
from vcodec.codec import FrameDecoder, FrameEncoder
from vcodec.stream import StreamReader
from vcodec.video import read_frames
from vcodec.zoo import load_keyframe


def test_decoded_frames_equal_encoder_reconstruction(sample_frames):
    model = load_keyframe().model
    frames = [crop(f, 160, 112) for f in sample_frames[:2]]
    enc = FrameEncoder(model, 4.5, torch.device("cpu"))
    dec = FrameDecoder(model, 160, 112, torch.device("cpu"))
    for i, frame in enumerate(frames):
        coded = enc.encode(frame, i)
        decoded = dec.decode(coded.packet)
        for a, b in zip(coded.recon.planes(), decoded.planes()):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("ext", [".y4m", ".mkv", ".mp4"])
def test_roundtrip_preserves_size_count_and_rate(tmp_path, small_clip, small_stream, ext):
    out = tmp_path / f"back{ext}"
    result = vcodec.decode(small_stream, out, device="cpu", verify=True, progress=False)
    frames, info = read_frames(out)
    assert result.frames == len(frames) == 4
    assert (info.width, info.height) == (128, 96)
    assert info.fps == Fraction(30000, 1001)


def test_lossless_outputs_carry_identical_pixels(tmp_path, small_stream):
    outs = {ext: tmp_path / f"o{ext}" for ext in (".y4m", ".mkv", ".mp4")}
    for path in outs.values():
        vcodec.decode(small_stream, path, device="cpu", progress=False)
    ref, _ = read_frames(outs[".y4m"])
    for ext in (".mkv", ".mp4"):
        other, _ = read_frames(outs[ext])
        for a, b in zip(ref, other):
            assert all(np.array_equal(p, q) for p, q in zip(a.planes(), b.planes())), ext


@pytest.mark.parametrize("size", [(175, 143), (66, 34), (2, 2)])
def test_odd_and_tiny_sizes_roundtrip(tmp_path, sample_frames, size):
    clip = write_clip(tmp_path / "odd.mkv", [crop(f, *size) for f in sample_frames[:2]])
    stream = tmp_path / "odd.lvc"
    vcodec.encode(clip, stream, quality=5, progress=False)
    out = tmp_path / "odd.y4m"
    vcodec.decode(stream, out, device="cpu", verify=True, progress=False)
    frames, info = read_frames(out)
    assert (info.width, info.height) == size and len(frames) == 2
    assert frames[0].u.shape == ((size[1] + 1) // 2, (size[0] + 1) // 2)


def test_seek_decodes_only_requested_frames(tmp_path, small_stream):
    full, _ = read_frames(_decode(small_stream, tmp_path / "full.y4m"))
    part, _ = read_frames(_decode(small_stream, tmp_path / "part.y4m", start=1, frames=2))
    assert len(part) == 2
    for a, b in zip(full[1:3], part):
        assert np.array_equal(a.y, b.y)


def _decode(stream, out, **kw):
    vcodec.decode(stream, out, device="cpu", progress=False, **kw)
    return out


def test_frames_option_limits_encode(tmp_path):
    stream = tmp_path / "two.lvc"
    result = vcodec.encode(SAMPLE, stream, quality=2, frames=2, intra_period=1, progress=False)
    assert result.frames == 2
    with StreamReader(stream) as r:
        assert r.header.frame_count == 2 and len(r.gops) == 2


def test_info_reports_sizes(small_stream):
    s = vcodec.info(small_stream)
    assert s.header.frame_count == len(s.packets) == 4
    assert sum(p["bytes"] for p in s.packets) < s.file_bytes
    assert all(p["type"] == "I" for p in s.packets)
    assert s.bpp > 0 and s.kbps > 0


def test_quality_is_monotonic_in_bytes_and_psnr(tmp_path, sample_frames):
    clip = write_clip(tmp_path / "q.mkv", [crop(f, 256, 192) for f in sample_frames[:1]])
    results = [vcodec.encode(clip, tmp_path / f"q{q}.lvc", quality=q, intra_period=1,
                             progress=False) for q in range(8)]
    sizes = [r.bytes for r in results]
    psnrs = [r.metrics["psnr_yuv"] for r in results]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), sizes
    assert psnrs == sorted(psnrs), psnrs
