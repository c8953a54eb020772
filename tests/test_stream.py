"""The .lvc container: truncation and corruption in every section are caught precisely."""

from __future__ import annotations

from fractions import Fraction

import pytest

import vcodec
from vcodec.errors import StreamError
from vcodec.stream import MAGIC, StreamHeader, StreamReader


def _sections(stream) -> dict[str, tuple[int, int]]:
    """Byte ranges [start, end) of header, each packet, index and trailer."""
    with StreamReader(stream) as r:
        spans = {"header": (0, r.data_start)}
        for p in r.packets():
            spans[f"packet{p.frame_index}"] = (p.offset, p.offset + p.size)
        spans["index"] = (r.index_offset, r.size - 16)
        spans["trailer"] = (r.size - 16, r.size)
    return spans


def _read_everything(path):
    vcodec.info(path)


def test_header_roundtrip():
    h = StreamHeader(175, 143, Fraction(30000, 1001), 7, 32, 3.25, 1, [(0, bytes(range(32)))],
                     color_primaries=1, color_transfer=1, color_matrix=1, color_range=1)
    import io

    back = StreamHeader.unpack(io.BytesIO(h.pack()))
    assert back == h


def test_format_2_headers_are_read_and_select_the_framed_layout():
    """2.x streams differ only in the layout of context models' y substreams: they are read, and the frame
    decoder parses them with that layout."""
    import io

    import torch

    from vcodec.codec import FrameDecoder

    h = StreamHeader(64, 48, Fraction(25), 2, 1, 3.0, 1, [(0, bytes(32))], version=(2, 0))
    assert StreamHeader.unpack(io.BytesIO(h.pack())).version == (2, 0)
    assert FrameDecoder(None, 64, 48, torch.device("cpu"), version=(2, 0)).framed
    assert not FrameDecoder(None, 64, 48, torch.device("cpu")).framed


def test_truncation_at_every_section_boundary_is_detected(tmp_path, small_stream):
    data = small_stream.read_bytes()
    cuts = {0, 4, len(MAGIC) + 3}
    for start, end in _sections(small_stream).values():
        cuts |= {start, start + 1, (start + end) // 2, end - 1}
    cuts.discard(len(data))
    for cut in sorted(cuts):
        bad = tmp_path / f"cut{cut}.lvc"
        bad.write_bytes(data[:cut])
        with pytest.raises(StreamError):
            _read_everything(bad)


def test_single_bit_flips_in_each_section_are_detected(tmp_path, small_stream):
    data = small_stream.read_bytes()
    for _name, (start, end) in _sections(small_stream).items():
        for pos in sorted({start, (start + end) // 2, end - 1}):
            for bit in (0, 7):
                flipped = bytearray(data)
                flipped[pos] ^= 1 << bit
                bad = tmp_path / "flip.lvc"
                bad.write_bytes(bytes(flipped))
                with pytest.raises(StreamError):
                    _read_everything(bad)
                    vcodec.decode(bad, tmp_path / "flip.y4m", device="cpu", progress=False)


def test_error_names_the_damaged_frame(tmp_path, small_stream):
    spans = _sections(small_stream)
    start, end = spans["packet2"]
    data = bytearray(small_stream.read_bytes())
    data[(start + end) // 2] ^= 0x10
    bad = tmp_path / "bad.lvc"
    bad.write_bytes(bytes(data))
    with pytest.raises(StreamError, match="frame 2.*CRC32"):
        vcodec.decode(bad, tmp_path / "x.y4m", device="cpu", progress=False)
    assert not (tmp_path / "x.y4m").exists()


def test_unknown_major_version_is_refused(tmp_path, small_stream):
    data = bytearray(small_stream.read_bytes())
    data[len(MAGIC)] = 9
    bad = tmp_path / "v9.lvc"
    bad.write_bytes(bytes(data))
    with pytest.raises(StreamError, match="unsupported .lvc version 9"):
        vcodec.info(bad)
