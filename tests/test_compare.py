"""BD-rate, metrics and the compare command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vcodec.anchors import encode_anchor
from vcodec.bd import bd_psnr, bd_rate, overlap
from vcodec.color import YUVFrame
from vcodec.compare import SCHEMA, run_compare
from vcodec.metrics import frame_psnr, ms_ssim, psnr

RATES = [100.0, 180.0, 350.0, 700.0]
PSNRS = [30.0, 33.0, 36.5, 39.0]


def test_bd_rate_of_identical_curves_is_zero():
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_of_half_the_bits_is_minus_fifty_percent():
    assert bd_rate(RATES, PSNRS, [r / 2 for r in RATES], PSNRS) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(RATES, PSNRS, [r * 2 for r in RATES], PSNRS) == pytest.approx(100.0, abs=1e-6)


def test_bd_psnr_of_a_shifted_curve():
    assert bd_psnr(RATES, PSNRS, RATES, [p + 1.5 for p in PSNRS]) == pytest.approx(1.5, abs=1e-6)


def test_disjoint_curves_have_no_bd_rate():
    assert overlap(PSNRS, [p + 20 for p in PSNRS]) == 0
    assert bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS]) is None


def test_dominated_points_are_ignored():
    messy_r, messy_d = RATES + [800.0], PSNRS + [38.0]  # more bits, worse quality: not on the curve
    assert bd_rate(RATES, PSNRS, messy_r, messy_d) == pytest.approx(0.0, abs=1e-9)


def test_psnr_by_hand():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 16  # MSE = 256 / 16 = 16
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 16))
    f = YUVFrame(a, np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    g = YUVFrame(b, np.full((2, 2), 4, np.uint8), np.zeros((2, 2), np.uint8))
    m = frame_psnr(f, g)
    assert m["psnr_u"] == pytest.approx(10 * math.log10(255**2 / 16))
    assert m["psnr_yuv"] == pytest.approx((6 * m["psnr_y"] + m["psnr_u"] + 100.0) / 8)


def test_ms_ssim_bounds():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (96, 128)).astype(np.uint8)
    assert ms_ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0 < ms_ssim(a, noisy) < 0.99


def test_anchor_bits_are_packet_sizes(sample_frames):
    import av

    frames = sample_frames[:3]
    r = encode_anchor(frames, "x264", 30, 1, 25)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    enc.time_base, enc.framerate = 1 / __import__("fractions").Fraction(25), 25
    enc.options = {"crf": "30", "preset": "medium", "x264-params": "keyint=1:min-keyint=1:scenecut=0:bframes=0"}
    from vcodec.video import frame_to_av

    packets = []
    for i, f in enumerate(frames):
        av_frame = frame_to_av(f)
        av_frame.pts = i
        packets += enc.encode(av_frame)
    packets += enc.encode(None)
    assert r.bits == 8 * sum(p.size for p in packets)
    assert len(r.frames) == 3 and r.frames[0].y.shape == frames[0].y.shape


def test_compare_writes_documented_outputs(tmp_path, small_clip):
    result = run_compare(small_clip, tmp_path, qualities=[2, 6], anchors=["x264"], frames=2, progress=False)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema"] == SCHEMA and data["frames"] == 2
    assert set(data["codecs"]) == {"vcodec", "x264"}
    for point in data["codecs"]["vcodec"]["points"] + data["codecs"]["x264"]["points"]:
        for key in ("bits", "bpp", "kbps", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_rgb", "ms_ssim_y"):
            assert isinstance(point[key], float | int)
    assert "bd_rate_psnr_yuv" in data["bd"]["x264"] and "overlap" in data["bd"]["x264"]
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("codec,setting,bits") and len(csv_lines) == 1 + 2 + 6
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"
    assert "vcodec" in result.sentence()


@pytest.mark.parametrize("between", [(1, 2), (5, 6)])
def test_rate_control_lands_within_ten_percent(tmp_path, between):
    import vcodec
    from tests.conftest import SAMPLE

    # A target inside the model's range: the geometric mean of two fixed-quality rates.
    lo, hi = (vcodec.encode(SAMPLE, tmp_path / f"q{q}.lvc", quality=q, frames=8, progress=False).kbps
              for q in between)
    kbps = (lo * hi) ** 0.5
    r = vcodec.encode(SAMPLE, tmp_path / "rc.lvc", bitrate=kbps, frames=8, progress=False)
    assert abs(r.kbps / kbps - 1) < 0.10, r.kbps
    qualities = {p["quality"] for p in vcodec.info(tmp_path / "rc.lvc").packets}
    assert len(qualities) > 1  # per-frame choices, not one fixed index


def test_equal_bitrate_view(tmp_path, small_clip):
    result = run_compare(small_clip, tmp_path, qualities=[3], anchors=[], frames=2, progress=False,
                         at_bitrate=600.0)
    eq = json.loads((tmp_path / "results.json").read_text())["equal_bitrate"]
    assert eq["target_kbps"] == 600.0 and abs(eq["x264"]["kbps"] / 600 - 1) < 0.25
    assert (tmp_path / "side_by_side.png").read_bytes()[:4] == b"\x89PNG"
    assert result.equal_bitrate is not None


def test_av1_anchor_decodes_every_frame(sample_frames):
    pytest.importorskip("imageio_ffmpeg")
    frames = [f for f in sample_frames[:3]]
    r = encode_anchor(frames, "svtav1", 40, 32, 25)
    assert len(r.frames) == 3 and r.bits > 0
    assert frame_psnr(frames[0], r.frames[0])["psnr_yuv"] > 30
