"""The .lvc container: header | packets | GOP index | trailer (see docs/FORMAT.md).

Every section carries a CRC32, so truncation and corruption are reported
precisely (which section, which frame, which check) instead of surfacing as a
garbage decode. All integers are little endian.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from vcodec.errors import StreamError

MAGIC = b"\x89LVC\r\n\x1a\n"
VERSION = (7, 0)  # (major, minor): a reader accepts the majors in READABLE and any minor
# 2.x, 3.x and 4.x differ only in how a packet's entropy-coded groups are split into substreams; 5.x codes a
# P-frame's hyper-latents under the temporal prior when the inter weights carry one; 6.x P-frames carry the
# motion codec's own quality; 7.x P-frames may carry block motion instead of the motion codec's latents
# (vcodec.codec)
READABLE = (2, 3, 4, 5, 6, 7)
# Minor versions only append fields to the header body; readers ignore what they do not know.
END_MAGIC = b"LVC-END!"
PACKET_SYNC = b"PK"
INDEX_SYNC = b"IX"
FRAME_I, FRAME_P = 0, 1
FRAME_TYPES = {FRAME_I: "I", FRAME_P: "P"}
PIXEL_FORMATS = {0: "yuv420p"}
ROLE_KEYFRAME, ROLE_INTER = 0, 1

_HEADER_FIXED = struct.Struct("<IIIIIBBBBBHHB")  # see StreamHeader field order
_PACKET_HEAD = struct.Struct("<2sBIHI16s")  # sync, type, frame index, quality, payload length, hash
_TRAILER = struct.Struct("<Q8s")
MAX_DIMENSION = 16384
MAX_PIXELS = 8192 * 4352  # 8K: bounds what a header can make a decoder allocate
MAX_PACKET = 1 << 30
INDEX_ENTRY_BYTES = 12


@dataclass
class StreamHeader:
    width: int
    height: int
    fps: Fraction
    frame_count: int
    intra_period: int
    quality: float
    coder_id: int
    models: list[tuple[int, bytes]]  # (role, sha256 digest) of the weights used
    pixel_format: int = 0
    color_primaries: int = 2
    color_transfer: int = 2
    color_matrix: int = 2
    color_range: int = 0
    rotation: int = 0  # display rotation in degrees (counter-clockwise), from the source
    version: tuple[int, int] = VERSION

    def pack(self) -> bytes:
        body = _HEADER_FIXED.pack(
            self.width, self.height, self.fps.numerator, self.fps.denominator, self.frame_count,
            self.pixel_format, self.color_primaries, self.color_transfer, self.color_matrix,
            self.color_range, self.intra_period, quality_code(self.quality), self.coder_id,
        )
        body += struct.pack("<B", len(self.models))
        for role, digest in self.models:
            body += struct.pack("<B32s", role, digest)
        body += struct.pack("<h", self.rotation)
        head = MAGIC + struct.pack("<HHI", *self.version, len(body)) + body
        return head + struct.pack("<I", zlib.crc32(head))

    @classmethod
    def unpack(cls, f: BinaryIO) -> StreamHeader:
        start = f.read(len(MAGIC) + 8)
        if len(start) < len(MAGIC) or start[: len(MAGIC)] != MAGIC:
            raise StreamError("not a .lvc stream (bad magic)")
        if len(start) < len(MAGIC) + 8:
            raise StreamError("stream truncated inside the header")
        major, minor, size = struct.unpack_from("<HHI", start, len(MAGIC))
        if major not in READABLE:
            readable = " and ".join(f"{m}.x" for m in READABLE)
            raise StreamError(f"unsupported .lvc version {major}.{minor} (this decoder reads {readable})")
        if size > 4096:
            raise StreamError(f"header corrupted: header length {size} is implausible")
        body = f.read(size)
        crc = f.read(4)
        if len(body) < size or len(crc) < 4:
            raise StreamError("stream truncated inside the header")
        if zlib.crc32(start + body) != struct.unpack("<I", crc)[0]:
            raise StreamError("header corrupted (CRC32 mismatch)")
        try:
            fields = _HEADER_FIXED.unpack_from(body, 0)
            (n_models,) = struct.unpack_from("<B", body, _HEADER_FIXED.size)
            models = [
                struct.unpack_from("<B32s", body, _HEADER_FIXED.size + 1 + 33 * i) for i in range(n_models)
            ]
            rest = _HEADER_FIXED.size + 1 + 33 * n_models
            (rotation,) = struct.unpack_from("<h", body, rest)
        except struct.error:
            raise StreamError("header corrupted (fields do not fit its length)") from None
        w, h, fn, fd, count, pix, prim, trc, mat, rng, period, qcode, coder_id = fields
        if not (0 < w <= MAX_DIMENSION and 0 < h <= MAX_DIMENSION) or w * h > MAX_PIXELS or fn == 0 or fd == 0:
            raise StreamError(f"header corrupted: implausible size {w}x{h} or frame rate {fn}/{fd}")
        if pix not in PIXEL_FORMATS:
            raise StreamError(f"unsupported pixel format code {pix}")
        if rotation % 90 or not -360 < rotation < 360:
            raise StreamError(f"header corrupted: rotation {rotation} is not a multiple of 90 degrees")
        return cls(w, h, Fraction(fn, fd), count, period, qcode / 1000, coder_id, list(models), pix,
                   prim, trc, mat, rng, rotation, (major, minor))


def quality_code(quality: float) -> int:
    """Quality is stored in thousandths (u16), so fractional quality round-trips."""
    return max(0, min(65535, round(quality * 1000)))


def stream_quality(quality: float) -> float:
    """The quality a decoder will read back: encoders must code with exactly this value."""
    return quality_code(quality) / 1000


@dataclass
class Packet:
    frame_type: int
    frame_index: int
    quality: float
    payload: bytes
    recon_hash: bytes = b"\0" * 16
    offset: int = 0  # byte offset in the file (filled in by reader/writer)

    @property
    def size(self) -> int:
        return _PACKET_HEAD.size + len(self.payload) + 4

    def pack(self) -> bytes:
        head = _PACKET_HEAD.pack(PACKET_SYNC, self.frame_type, self.frame_index,
                                 quality_code(self.quality), len(self.payload), self.recon_hash)
        return head + self.payload + struct.pack("<I", zlib.crc32(head + self.payload))


@dataclass
class GopEntry:
    first_frame: int
    offset: int


def frame_hash(data: bytes) -> bytes:
    """16-byte hash of a reconstructed frame's planes (Y, U, V bytes)."""
    return hashlib.blake2b(data, digest_size=16).digest()


class StreamWriter:
    """Writes a stream sequentially; the index and trailer are written by `close`."""

    def __init__(self, f: BinaryIO, header: StreamHeader):
        self.f = f
        self.header = header
        self.gops: list[GopEntry] = []
        self.frames = 0
        f.write(header.pack())

    def write(self, packet: Packet) -> int:
        packet.offset = self.f.tell()
        if packet.frame_type == FRAME_I:
            self.gops.append(GopEntry(packet.frame_index, packet.offset))
        data = packet.pack()
        self.f.write(data)
        self.frames += 1
        return len(data)

    def close(self) -> None:
        index_offset = self.f.tell()
        body = INDEX_SYNC + struct.pack("<I", len(self.gops))
        body += b"".join(struct.pack("<IQ", g.first_frame, g.offset) for g in self.gops)
        self.f.write(body + struct.pack("<I", zlib.crc32(body)))
        self.f.write(_TRAILER.pack(index_offset, END_MAGIC))


@dataclass
class StreamReader:
    """Random-access reader: header, GOP index and packets, every section checked.

    With `recover`, a missing or damaged trailer/index is not fatal: the packet
    area is scanned for packets whose marker and CRC32 check out, and the GOPs
    are rebuilt from the keyframes found (`recovered` then says why).
    """

    path: Path
    recover: bool = False
    header: StreamHeader = field(init=False)
    gops: list[GopEntry] = field(init=False)
    recovered: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        try:
            self._f = open(self.path, "rb")
        except OSError as exc:
            raise StreamError(f"cannot open {self.path}: {exc.strerror}") from None
        self.size = os.fstat(self._f.fileno()).st_size
        self.header = StreamHeader.unpack(self._f)
        self.data_start = self._f.tell()
        try:
            self.index_offset = self._read_trailer()
            self.gops = self._read_index()
        except StreamError as exc:
            if not self.recover:
                raise
            self.recovered = str(exc)
            self.index_offset = self.size
            self.gops = self._scan_for_keyframes()

    def _scan_for_keyframes(self) -> list[GopEntry]:
        """GOPs from every intact keyframe packet found in the file (marker + CRC32)."""
        self._f.seek(self.data_start)
        data = self._f.read()
        gops: list[GopEntry] = []
        pos = data.find(PACKET_SYNC)
        while pos >= 0:
            try:
                packet = self.read_packet(self.data_start + pos)
            except StreamError:
                pos = data.find(PACKET_SYNC, pos + 1)
                continue
            if packet.frame_type == FRAME_I and (not gops or packet.frame_index > gops[-1].first_frame):
                gops.append(GopEntry(packet.frame_index, packet.offset))
            pos = data.find(PACKET_SYNC, pos + packet.size)
        return gops

    def _read_trailer(self) -> int:
        if self.size < self.data_start + _TRAILER.size:
            raise StreamError(f"stream truncated: {self.size} bytes, no trailer after the header")
        self._f.seek(self.size - _TRAILER.size)
        index_offset, magic = _TRAILER.unpack(self._f.read(_TRAILER.size))
        if magic != END_MAGIC:
            raise StreamError(f"stream truncated or trailer corrupted: no end marker at byte {self.size}")
        if not self.data_start <= index_offset <= self.size - _TRAILER.size - 10:
            raise StreamError("trailer corrupted: index offset outside the file")
        return index_offset

    def _read_index(self) -> list[GopEntry]:
        self._f.seek(self.index_offset)
        raw = self._f.read(self.size - _TRAILER.size - self.index_offset)
        if raw[:2] != INDEX_SYNC or len(raw) < 10:
            raise StreamError("GOP index corrupted (bad marker)")
        (count,) = struct.unpack_from("<I", raw, 2)
        if len(raw) != 6 + 12 * count + 4:
            raise StreamError("GOP index corrupted (length does not match its entry count)")
        if zlib.crc32(raw[:-4]) != struct.unpack_from("<I", raw, len(raw) - 4)[0]:
            raise StreamError("GOP index corrupted (CRC32 mismatch)")
        gops = [GopEntry(*struct.unpack_from("<IQ", raw, 6 + 12 * i)) for i in range(count)]
        last = (-1, self.data_start - 1)
        for g in gops:
            if not (g.first_frame > last[0] and last[1] < g.offset < self.index_offset):
                raise StreamError("GOP index corrupted (entries out of order or outside the packet area)")
            last = (g.first_frame, g.offset)
        if gops and gops[0].offset != self.data_start:
            raise StreamError("GOP index corrupted (first GOP does not start after the header)")
        return gops

    def read_packet(self, offset: int) -> Packet:
        """The packet at `offset`, after checking its marker, bounds and CRC32."""
        where = f"packet at byte {offset}"
        if offset + _PACKET_HEAD.size + 4 > self.index_offset:
            raise StreamError(f"{where}: runs into the index (stream truncated or corrupted)")
        self._f.seek(offset)
        head = self._f.read(_PACKET_HEAD.size)
        sync, ftype, index, qcode, length, digest = _PACKET_HEAD.unpack(head)
        where = f"frame {index} ({where})"
        if sync != PACKET_SYNC:
            raise StreamError(f"packet at byte {offset}: bad packet marker (corrupted)")
        if length > MAX_PACKET or offset + _PACKET_HEAD.size + length + 4 > self.index_offset:
            raise StreamError(f"{where}: payload length {length} runs past the packet area")
        payload = self._f.read(length)
        (crc,) = struct.unpack("<I", self._f.read(4))
        if zlib.crc32(head + payload) != crc:
            raise StreamError(f"{where}: CRC32 mismatch (corrupted)")
        if ftype not in FRAME_TYPES:
            raise StreamError(f"{where}: unknown frame type {ftype}")
        return Packet(ftype, index, qcode / 1000, payload, digest, offset)

    def packets(self, start_offset: int | None = None, end_frame: int | None = None, end_offset: int | None = None):
        """Packets in file order from `start_offset` (default: the first) up to `end_frame`, `end_offset`
        or the index, whichever comes first."""
        offset = self.data_start if start_offset is None else start_offset
        limit = self.index_offset if end_offset is None else min(end_offset, self.index_offset)
        expected = None
        while offset < limit:
            packet = self.read_packet(offset)
            if expected is not None and packet.frame_index != expected:
                raise StreamError(f"packet at byte {offset}: frame {packet.frame_index} where {expected} was expected")
            if end_frame is not None and packet.frame_index >= end_frame:
                return
            expected = packet.frame_index + 1
            yield packet
            offset += packet.size

    def gop_for_frame(self, frame: int) -> GopEntry:
        """The GOP whose keyframe is the last one at or before `frame`."""
        candidates = [g for g in self.gops if g.first_frame <= frame]
        if not candidates:
            raise StreamError(f"no keyframe at or before frame {frame}")
        return candidates[-1]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
