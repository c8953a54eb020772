"""Bad input, every path: each ends in a clear one-line error or a correct result, and nothing is lost."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest

import vcodec
from tests.conftest import REPO, SAMPLE, crop, write_clip
from vcodec.cli import main
from vcodec.video import read_frames


def _mux(path, codec: str, frames: list, pix_fmt: str = "yuv420p", rotation: int = 0):
    """Write PyAV frames with `codec` into `path` (pts = frame number, 25 fps)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = frames[0].width, frames[0].height, pix_fmt
        if rotation:
            s.set_display_rotation(rotation)
        for i, f in enumerate(frames):
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _err(capsys, args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def test_audio_only_file(capsys, tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    code, err = _err(capsys, ["encode", path, "-o", tmp_path / "o.lvc"])
    assert code == 1 and err == f"vcodec: error: {path} has no video stream"


def test_video_without_frames(capsys, tmp_path):
    path = tmp_path / "empty.y4m"
    path.write_bytes(b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n")
    code, err = _err(capsys, ["encode", path, "-o", tmp_path / "o.lvc"])
    assert code == 1 and "no video frames" in err and err.count("\n") == 0
    assert not (tmp_path / "o.lvc").exists()


def test_one_frame(tmp_path, sample_frames):
    clip = write_clip(tmp_path / "one.mkv", [crop(sample_frames[0], 64, 64)])
    vcodec.encode(clip, tmp_path / "one.lvc", progress=False)
    r = vcodec.decode(tmp_path / "one.lvc", tmp_path / "one.y4m", device="cpu", verify=True, progress=False)
    assert r.frames == 1


def test_ten_bit_source_is_converted_with_a_warning(capsys, tmp_path):
    img = np.full((48, 64, 3), 100, np.uint8)
    frames = [av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p10le") for _ in range(2)]
    path = _mux(tmp_path / "ten.mkv", "ffv1", frames, "yuv420p10le")
    code, err = _err(capsys, ["encode", path, "-o", tmp_path / "o.lvc", "--quiet"])
    assert code == 0 and "warning: ten.mkv: converting yuv420p10le to 8-bit yuv420p" in err


def test_variable_frame_rate_keeps_every_frame(tmp_path, sample_frames):
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = Fraction(1, 1000)
        for i, pts in enumerate([0, 40, 50, 120, 130]):
            from vcodec.video import frame_to_av

            f = frame_to_av(crop(sample_frames[i % len(sample_frames)], 64, 48))
            f.pts, f.time_base = pts, Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    r = vcodec.encode(path, tmp_path / "vfr.lvc", progress=False)
    assert r.frames == 5 and r.fps > 0
    vcodec.decode(tmp_path / "vfr.lvc", tmp_path / "vfr.y4m", device="cpu", progress=False)
    assert len(read_frames(tmp_path / "vfr.y4m")[0]) == 5


def test_disk_full_during_write_leaves_nothing(capsys, tmp_path, small_stream, monkeypatch):
    from vcodec import video

    def full(self, frame):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(video.VideoWriter, "write", full)
    code, err = _err(capsys, ["decode", small_stream, "-o", tmp_path / "out.y4m", "--quiet"])
    assert code == 1 and "No space left on device" in err and err.count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_interrupted_encode_leaves_no_output(tmp_path):
    out = tmp_path / "big.lvc"
    # A shell runs background jobs with SIGINT ignored, and children inherit that: give the encoder the
    # disposition of a foreground command, whose Ctrl-C this test stands for.
    proc = subprocess.Popen([sys.executable, "-m", "vcodec", "encode", str(SAMPLE), "-o", str(out)],
                            stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300  # a loaded CI machine can take minutes to import torch and load weights
    while not list(tmp_path.glob(".big.*partial*")):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the encoder never started writing its output: {proc.communicate()[1][-500:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_4k_frame(tmp_path, sample_frames):
    big = sample_frames[0]
    frame = type(big)(np.tile(big.y, (8, 12))[:2160, :4096], np.tile(big.u, (8, 12))[:1080, :2048],
                      np.tile(big.v, (8, 12))[:1080, :2048])
    clip = write_clip(tmp_path / "4k.mkv", [frame])
    r = vcodec.encode(clip, tmp_path / "4k.lvc", quality=2, progress=False)
    assert (r.width, r.height) == (4096, 2160)
    d = vcodec.decode(tmp_path / "4k.lvc", tmp_path / "4k.mkv", device="cpu", verify=True, progress=False)
    assert d.frames == 1


def test_rotation_metadata_is_carried(tmp_path, sample_frames):
    from vcodec.video import frame_to_av

    frames = [frame_to_av(crop(sample_frames[i], 64, 48)) for i in range(2)]
    path = _mux(tmp_path / "phone.mp4", "libx264", frames, rotation=90)
    vcodec.encode(path, tmp_path / "phone.lvc", progress=False)
    assert vcodec.info(tmp_path / "phone.lvc").header.rotation == 90
    for ext in ("mp4", "mkv"):
        vcodec.decode(tmp_path / "phone.lvc", tmp_path / f"out.{ext}", device="cpu", progress=False)
        with av.open(str(tmp_path / f"out.{ext}")) as c:
            assert next(c.decode(video=0)).rotation == 90
    with pytest.warns(UserWarning, match="cannot carry"):
        vcodec.decode(tmp_path / "phone.lvc", tmp_path / "out.y4m", device="cpu", progress=False)


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_input(capsys, tmp_path, small_clip):
    import shutil

    locked = tmp_path / "locked.mkv"
    shutil.copy(small_clip, locked)
    locked.chmod(0)
    code, err = _err(capsys, ["encode", locked, "-o", tmp_path / "o.lvc"])
    assert code == 1 and "cannot read" in err
