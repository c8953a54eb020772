"""--skip-damaged: intact GOPs decode, damaged ones are filled and reported."""

from __future__ import annotations

import numpy as np

import vcodec
from tests.test_stream import _sections
from vcodec.cli import main
from vcodec.video import read_frames


def _damage(src, dst, pos: int) -> None:
    data = bytearray(src.read_bytes())
    data[pos] ^= 0x40
    dst.write_bytes(bytes(data))


def test_damaged_gop_is_filled_and_reported(tmp_path, small_stream):
    start, end = _sections(small_stream)["packet2"]
    bad = tmp_path / "bad.lvc"
    _damage(small_stream, bad, (start + end) // 2)
    good = vcodec.decode(small_stream, tmp_path / "good.y4m", device="cpu", progress=False)
    r = vcodec.decode(bad, tmp_path / "out.y4m", device="cpu", progress=False, skip_damaged=True)
    assert r.frames == 4 and r.lost_frames == [2] and "frame 2" in r.damage[0]
    ref, _ = read_frames(tmp_path / "good.y4m")
    out, _ = read_frames(tmp_path / "out.y4m")
    assert good.frames == 4
    for i in (0, 1, 3):
        assert np.array_equal(ref[i].y, out[i].y)
    assert np.array_equal(out[2].y, out[1].y)  # filled with the last good frame


def test_truncated_stream_keeps_its_intact_gops(tmp_path, small_stream):
    start, end = _sections(small_stream)["packet3"]
    cut = tmp_path / "cut.lvc"
    cut.write_bytes(small_stream.read_bytes()[: start + 10])
    r = vcodec.decode(cut, tmp_path / "out.y4m", device="cpu", progress=False, skip_damaged=True)
    assert r.frames == 4 and r.lost_frames == [3]
    assert "index unusable" in r.damage[0]


def test_cli_exit_status_for_damage(capsys, tmp_path, small_stream):
    index_start, _ = _sections(small_stream)["index"]
    bad = tmp_path / "bad.lvc"
    _damage(small_stream, bad, index_start + 3)
    code = main(["decode", str(bad), "-o", str(tmp_path / "o.y4m"), "--skip-damaged", "--quiet"])
    err = capsys.readouterr().err
    assert code == 4 and "damaged: index unusable" in err
    assert len(read_frames(tmp_path / "o.y4m")[0]) == 4


def test_pipelined_decoder_keeps_frames_before_damage(tmp_path, small_stream):
    """With a core free, the decoder parses ahead; damage in frame t+1 must not cost frame t."""
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        start, _ = _sections(small_stream)["packet3"]
        cut = tmp_path / "cut.lvc"
        cut.write_bytes(small_stream.read_bytes()[: start + 10])
        r = vcodec.decode(cut, tmp_path / "out.y4m", device="cpu", progress=False, skip_damaged=True)
        assert r.frames == 4 and r.lost_frames == [3]
        full = vcodec.decode(small_stream, tmp_path / "full.y4m", device="cpu", progress=False, verify=True)
        assert full.frames == 4
    finally:
        torch.set_num_threads(threads)
