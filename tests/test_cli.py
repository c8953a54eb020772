"""Command line: the happy path and every user error (one line, non-zero, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from vcodec.cli import main


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_version_lists_model_and_quality_range(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert "vcodec 0." in out and "quality 0-7" in out


def test_encode_info_decode(capsys, tmp_path, small_clip):
    stream = tmp_path / "c.lvc"
    code, out, _ = run(capsys, "encode", small_clip, "-o", stream, "-q", "5", "--intra-period", "2",
                       "--no-scene-cuts", "--quiet")
    assert code == 0 and stream.exists()
    code, out, _ = run(capsys, "info", stream, "--frames")
    assert code == 0 and "128x96" in out and "I-frames: 2" in out and "P-frames: 2" in out
    assert "frame 2: I" in out and "frame 3: P" in out
    assert "frame 3: P" in out and "bytes quality 5" in out
    code, out, _ = run(capsys, "decode", stream, "-o", tmp_path / "c.y4m", "--verify", "--device", "cpu")
    assert code == 0 and "all decoded frames match" in out


def test_fast_encode_codes_motion_at_one_lower_quality(capsys, tmp_path, small_clip):
    stream = tmp_path / "fast.lvc"
    code, _, _ = run(capsys, "encode", small_clip, "-o", stream, "-q", "5", "--intra-period", "0",
                     "--no-scene-cuts", "--fast", "--frames", "3", "--quiet")
    assert code == 0
    code, out, _ = run(capsys, "info", stream, "--frames")
    assert code == 0 and out.count("bytes quality 5 (motion 4)") == 2
    code, out, _ = run(capsys, "decode", stream, "-o", tmp_path / "fast.y4m", "--verify", "--device", "cpu")
    assert code == 0 and "all decoded frames match" in out


def _assert_user_error(capsys, args, pattern, code=1):
    got, out, err = run(capsys, *args)
    assert got == code, (got, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vcodec: error:"), err
    assert pattern in lines[0], lines[0]


def test_missing_input(capsys, tmp_path):
    _assert_user_error(capsys, ["encode", tmp_path / "nope.mp4", "-o", tmp_path / "o.lvc"], "not found")


def test_non_video_input(capsys, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a video\n" * 50)
    _assert_user_error(capsys, ["encode", text, "-o", tmp_path / "o.lvc"], "cannot read")


def test_output_same_as_input(capsys, small_stream):
    _assert_user_error(capsys, ["decode", small_stream, "-o", small_stream], "same file as the input")


def test_unwritable_output(capsys, tmp_path, small_stream):
    _assert_user_error(capsys, ["decode", small_stream, "-o", tmp_path / "no" / "dir.y4m"], "does not exist")
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        _assert_user_error(capsys, ["decode", small_stream, "-o", locked / "x.y4m"], "not writable")


def test_unsupported_output_format(capsys, tmp_path, small_stream):
    _assert_user_error(capsys, ["decode", small_stream, "-o", tmp_path / "x.avi", "--device", "cpu"],
                       "unsupported output format")
    assert not list(tmp_path.glob("*.avi")) and not list(tmp_path.glob(".*partial*"))


def test_truncated_and_corrupted_streams(capsys, tmp_path, small_stream):
    data = small_stream.read_bytes()
    cut = tmp_path / "cut.lvc"
    cut.write_bytes(data[: len(data) // 2])
    _assert_user_error(capsys, ["decode", cut, "-o", tmp_path / "x.y4m"], "truncated", code=3)
    junk = tmp_path / "junk.lvc"
    junk.write_bytes(b"\0" * 100)
    _assert_user_error(capsys, ["info", junk], "not a .lvc stream", code=3)
    assert not (tmp_path / "x.y4m").exists()


def test_quality_out_of_range(capsys, tmp_path, small_clip):
    _assert_user_error(capsys, ["encode", small_clip, "-o", tmp_path / "o.lvc", "-q", "9"], "quality must be")
    assert not (tmp_path / "o.lvc").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_requested_but_absent(capsys, tmp_path, small_stream):
    _assert_user_error(capsys, ["decode", small_stream, "-o", tmp_path / "x.y4m", "--device", "cuda"], "CUDA")


def test_weights_mismatch_is_named(capsys, tmp_path, small_stream):
    from vcodec.zoo import load_keyframe, save_weights

    other = tmp_path / "other.pt"
    model = load_keyframe().model
    save_weights(other, model, {"note": "same weights, different manifest"})
    _assert_user_error(capsys, ["decode", small_stream, "-o", tmp_path / "x.y4m", "--weights", other],
                       "stream needs keyframe weights", code=3)


def test_process_exit_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vcodec", "decode", str(tmp_path / "missing.lvc"), "-o",
                           str(tmp_path / "x.y4m")], capture_output=True, text=True)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_tampered_weights_are_refused(capsys, tmp_path, small_clip):
    import torch

    from vcodec.zoo import DEFAULT_KEYFRAME, read_weights_file

    blob = read_weights_file(DEFAULT_KEYFRAME)
    key = next(k for k, v in blob["state_dict"].items() if v.dtype == torch.float16)
    blob["state_dict"][key] = blob["state_dict"][key] + 1
    bad = tmp_path / "tampered.pt"
    torch.save(blob, bad)  # uncompressed: that form loads too
    _assert_user_error(capsys, ["encode", small_clip, "-o", tmp_path / "o.lvc", "--weights", bad], "integrity check")
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    _assert_user_error(capsys, ["encode", small_clip, "-o", tmp_path / "o.lvc", "--weights", bad], "cannot load")
    bad.write_bytes(DEFAULT_KEYFRAME.read_bytes()[:1000])  # a truncated gzip stream
    _assert_user_error(capsys, ["encode", small_clip, "-o", tmp_path / "o.lvc", "--weights", bad], "cannot load")


def test_directory_as_input(capsys, tmp_path):
    _assert_user_error(capsys, ["encode", tmp_path, "-o", tmp_path / "o"], "no input videos found")
    _assert_user_error(capsys, ["decode", tmp_path, "-o", tmp_path / "o.y4m"], "cannot open", code=3)


def test_batch_encode_of_a_folder(capsys, tmp_path, small_clip):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(small_clip, folder / "a.mkv")
    shutil.copy(small_clip, folder / "b.mkv")
    (folder / "notes.txt").write_text("not a video, not picked up")
    code, out, err = run(capsys, "encode", folder, "-o", tmp_path / "out", "--quiet", "-j", "2")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.lvc", "b.lvc"]
    (folder / "c.mkv").write_text("broken")
    code, out, err = run(capsys, "encode", folder, "-o", tmp_path / "out2", "--quiet")
    assert code == 1 and "c.mkv" in err and len(list((tmp_path / "out2").iterdir())) == 2
