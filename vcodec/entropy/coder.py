"""Entropy coding of integer symbols under SymbolTables.

One small interface (`encode` / `decode`) with one implementation on
constriction's ANS coder. Symbols are coded grouped by table: the decoder knows
every symbol's table id before parsing (they come from already-decoded side
information), so it can regroup identically. Coding a whole group with one
shared model is what makes this fast: one call per table instead of one
probability row per symbol (see docs/ENTROPY.md for the measurement).

Substream layout: u32 word count | ANS words (u32, little endian) | escapes as
zig-zag LEB128 varints in symbol order. Several groups of symbols can share one
substream (`encode_groups` / `PartDecoder`), each under its own tables: their
escapes follow group after group.
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
    return encode_parts([(symbols, table_ids)], tables)


def encode_parts(parts: list[tuple[torch.Tensor, torch.Tensor]], tables: SymbolTables) -> bytes:
    """Code several groups of (symbols, table ids) under the same tables into one substream (`encode_groups`)."""
    return encode_groups([(symbols, table_ids, tables) for symbols, table_ids in parts])


def encode_groups(groups: list[tuple[torch.Tensor, torch.Tensor, SymbolTables]]) -> bytes:
    """Code several groups of (symbols, table ids, tables) into one substream, which a `PartDecoder` parses
    group by group, in order. The decoder may derive a group's table ids from the groups before it (context
    models, a hyperprior's z before its y): one ANS stream for all of them costs one flush, not one per group."""
    coder = constriction.stream.stack.AnsCoder()
    escapes = []
    prepared = []
    for symbols, table_ids, tables in groups:
        sym = symbols.reshape(-1).to(torch.int64).numpy()
        ids = table_ids.reshape(-1).to(torch.int64).numpy()
        idx = sym - tables.offsets.numpy()[ids]
        lengths = tables.lengths.numpy()[ids]
        escaped = (idx < 0) | (idx >= lengths)
        idx = np.where(escaped, lengths, idx).astype(np.int32)
        prepared.append((idx, ids, tables))
        escapes.append(sym[escaped])
    # ANS is a stack: the last group goes in first so that the decoder pops the first group first.
    for idx, ids, tables in reversed(prepared):
        if ids.size == 0:
            continue
        order, uniq, counts = _groups(ids)
        idx = idx[order]
        ends = np.cumsum(counts)
        for t, end, n in zip(uniq[::-1], ends[::-1], counts[::-1]):
            coder.encode_reverse(idx[end - n : end], _model(tables, int(t)))
    nonempty = any(ids.size for _, ids, _ in prepared)
    words = coder.get_compressed().astype("<u4") if nonempty else np.empty(0, "<u4")
    return struct.pack("<I", words.size) + words.tobytes() + b"".join(_write_varints(e) for e in escapes)


class PartDecoder:
    """Parses a substream written by `encode_parts`, one group per `decode` call, in the encoder's order."""

    def __init__(self, data: bytes):
        if len(data) < 4:
            raise EntropyDecodeError("substream shorter than its length field")
        (nwords,) = struct.unpack_from("<I", data, 0)
        if 4 + 4 * nwords > len(data):
            raise EntropyDecodeError("substream length field exceeds the packet")
        self.data = data
        self.escape_pos = 4 + 4 * nwords  # escapes of all groups follow the ANS words, group after group
        words = np.frombuffer(data, dtype="<u4", count=nwords, offset=4).astype(np.uint32)
        self.coder = constriction.stream.stack.AnsCoder(words) if nwords else None

    def decode(self, table_ids: torch.Tensor, tables: SymbolTables) -> torch.Tensor:
        """The next group's int64 symbols, shaped like `table_ids`."""
        ids = table_ids.reshape(-1).to(torch.int64).numpy()
        if ids.size == 0:
            return torch.zeros(table_ids.shape, dtype=torch.int64)
        if self.coder is None:
            raise EntropyDecodeError("substream holds no ANS data for a non-empty group")
        order, uniq, counts = _groups(ids)
        out = np.empty(ids.size, dtype=np.int64)
        try:
            start = 0
            for t, n in zip(uniq, counts):
                out[start : start + n] = self.coder.decode(_model(tables, int(t)), int(n))
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
            sym[escaped], self.escape_pos = _read_varints(self.data, self.escape_pos, n_esc)
        return torch.from_numpy(sym).reshape(table_ids.shape)


def decode(data: bytes, table_ids: torch.Tensor, tables: SymbolTables) -> torch.Tensor:
    """Inverse of `encode`; returns int64 symbols shaped like `table_ids`."""
    return PartDecoder(data).decode(table_ids, tables)


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


def _read_varints(data: bytes, pos: int, count: int) -> tuple[np.ndarray, int]:
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
    return values, pos
