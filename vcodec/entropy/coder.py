"""Entropy coding of integer symbols under SymbolTables.

One small interface (`encode` / `decode`) with one implementation on
constriction's ANS coder. Symbols are coded grouped by table: the decoder knows
every symbol's table id before parsing (they come from already-decoded side
information), so it can regroup identically. Coding a whole group with one
shared model is what makes this fast: one call per table instead of one
probability row per symbol (see docs/ENTROPY.md for the measurement).

Substream layout: u32 word count | ANS words (u32, little endian) | escapes as
zig-zag LEB128 varints in symbol order.
"""

from __future__ import annotations

import struct

import constriction
import numpy as np
import torch

from vcodec.entropy.tables import SymbolTables

CODER_ID = 1  # recorded in the stream header: 1 = constriction ANS, 16-bit tables


class EntropyDecodeError(ValueError):
    """The substream does not parse under the given tables."""


def _model(tables: SymbolTables, t: int):
    model = tables._models.get(t)
    if model is None:
        model = constriction.stream.model.Categorical(tables.probabilities(t), perfect=False)
        tables._models[t] = model
    return model


def _groups(table_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable order that sorts symbols by table, the distinct tables and group sizes."""
    order = np.argsort(table_ids, kind="stable")
    uniq, counts = np.unique(table_ids[order], return_counts=True)
    return order, uniq, counts


def encode(symbols: torch.Tensor, table_ids: torch.Tensor, tables: SymbolTables) -> bytes:
    """Code `symbols` (any shape, int) where symbol i uses table `table_ids[i]`."""
    sym = symbols.reshape(-1).to(torch.int64).numpy()
    ids = table_ids.reshape(-1).to(torch.int64).numpy()
    if sym.size == 0:
        return struct.pack("<I", 0)
    idx = sym - tables.offsets.numpy()[ids]
    lengths = tables.lengths.numpy()[ids]
    escaped = (idx < 0) | (idx >= lengths)
    idx = np.where(escaped, lengths, idx).astype(np.int32)
    order, uniq, counts = _groups(ids)
    idx = idx[order]
    ends = np.cumsum(counts)
    coder = constriction.stream.stack.AnsCoder()
    for t, end, n in zip(uniq[::-1], ends[::-1], counts[::-1]):
        coder.encode_reverse(idx[end - n : end], _model(tables, int(t)))
    words = coder.get_compressed().astype("<u4")
    return struct.pack("<I", words.size) + words.tobytes() + _write_varints(sym[escaped])


def decode(data: bytes, table_ids: torch.Tensor, tables: SymbolTables) -> torch.Tensor:
    """Inverse of `encode`; returns int64 symbols shaped like `table_ids`."""
    ids = table_ids.reshape(-1).to(torch.int64).numpy()
    if len(data) < 4:
        raise EntropyDecodeError("substream shorter than its length field")
    (nwords,) = struct.unpack_from("<I", data, 0)
    if 4 + 4 * nwords > len(data):
        raise EntropyDecodeError("substream length field exceeds the packet")
    if ids.size == 0:
        return torch.zeros(table_ids.shape, dtype=torch.int64)
    words = np.frombuffer(data, dtype="<u4", count=nwords, offset=4).astype(np.uint32)
    order, uniq, counts = _groups(ids)
    out = np.empty(ids.size, dtype=np.int64)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        start = 0
        for t, n in zip(uniq, counts):
            out[start : start + n] = coder.decode(_model(tables, int(t)), int(n))
            start += n
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - includes pyo3's PanicException (a BaseException) on garbage
        raise EntropyDecodeError(f"ANS data does not decode ({type(exc).__name__})") from None
    idx = np.empty_like(out)
    idx[order] = out
    lengths = tables.lengths.numpy()[ids]
    sym = idx + tables.offsets.numpy()[ids]
    escaped = idx == lengths
    n_esc = int(escaped.sum())
    if n_esc:
        sym[escaped] = _read_varints(data, 4 + 4 * nwords, n_esc)
    return torch.from_numpy(sym).reshape(table_ids.shape)


def _write_varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        z = (v << 1) if v >= 0 else ((-v << 1) - 1)
        while True:
            byte = z & 0x7F
            z >>= 7
            out.append(byte | (0x80 if z else 0))
            if not z:
                break
    return bytes(out)


def _read_varints(data: bytes, pos: int, count: int) -> np.ndarray:
    values = np.empty(count, dtype=np.int64)
    for i in range(count):
        z, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 56:
                raise EntropyDecodeError("escape values run past the substream")
            byte = data[pos]
            pos += 1
            z |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values[i] = (z >> 1) if not z & 1 else -((z + 1) >> 1)
    return values
