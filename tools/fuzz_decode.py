"""Fuzz the decoder with mutated real .lvc streams.

    python tools/fuzz_decode.py --cases 10000 [--seed 0] [--timeout 60] [--memory-mb 4096] [--json report.json]

Each case mutates a real stream (bit flips, byte runs, truncation in every
section, swapped and duplicated packets, length fields and dimensions set to
extremes with the CRCs recomputed so deeper checks are reached, wrong versions)
and decodes it with --verify in a worker process that runs under a memory limit
and a per-case timeout. A case passes when it ends in a correct decode or in one
clear vcodec error line; a traceback, crash, hang or memory blow-up fails it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vcodec.stream import MAGIC, StreamReader  # noqa: E402

HEADER_FIELDS = struct.Struct("<IIIIIBBBBBHHB")


# ------------------------------------------------------------------ seed streams
def make_seeds(work: Path, inter_weights: str | None) -> list[Path]:
    """Small real streams: all-intra, and (with inter weights) an IPPP one."""
    import vcodec
    from vcodec.color import YUVFrame
    from vcodec.video import VideoWriter, read_frames

    frames, _ = read_frames(REPO / "data" / "sample.mp4", max_frames=4)
    clip = work / "seed.mkv"
    with VideoWriter(clip, 64, 48, Fraction(25)) as w:
        for f in frames:
            w.write(YUVFrame(f.y[:48, :64].copy(), f.u[:24, :32].copy(), f.v[:24, :32].copy()))
    seeds = [work / "seed_intra.lvc"]
    vcodec.encode(clip, seeds[0], quality=3, intra_period=1, progress=False)
    if inter_weights:
        seeds.append(work / "seed_inter.lvc")
        vcodec.encode(clip, seeds[1], quality=3, intra_period=0, inter_weights=inter_weights, progress=False,
                      scene_cuts=False)  # keep the P-frames: the fuzz target is their parser
    return seeds


def sections(path: Path) -> dict:
    with StreamReader(path) as r:
        packets = [(p.offset, p.size) for p in r.packets()]
        return {"header": (0, r.data_start), "packets": packets, "index": (r.index_offset, r.size - 16),
                "trailer": (r.size - 16, r.size), "size": r.size}


# --------------------------------------------------------------------- mutators
def _fix_header_crc(data: bytearray) -> None:
    (size,) = struct.unpack_from("<I", data, len(MAGIC) + 4)
    end = len(MAGIC) + 8 + size
    if end + 4 <= len(data):
        struct.pack_into("<I", data, end, zlib.crc32(bytes(data[:end])))


def _fix_packet_crc(data: bytearray, offset: int) -> None:
    (length,) = struct.unpack_from("<I", data, offset + 9)
    end = offset + 29 + length
    if end + 4 <= len(data):
        struct.pack_into("<I", data, end, zlib.crc32(bytes(data[offset:end])))


def mutate(data: bytes, sec: dict, rng: random.Random) -> tuple[str, bytes]:
    d = bytearray(data)
    packets = sec["packets"]
    kind = rng.choice(["bitflip", "byterun", "truncate", "swap", "duplicate", "packet_length", "header_field",
                       "version", "substream_length", "payload_garbage_valid_crc", "index_field"])
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(d))
            d[pos] ^= 1 << rng.randrange(8)
    elif kind == "byterun":
        pos, n = rng.randrange(len(d)), rng.randint(1, 64)
        fill = rng.choice([0x00, 0xFF, None])
        for i in range(pos, min(len(d), pos + n)):
            d[i] = rng.randrange(256) if fill is None else fill
    elif kind == "truncate":
        spans = [sec["header"], *[(o, o + s) for o, s in packets], sec["index"], sec["trailer"]]
        start, end = rng.choice(spans)
        d = d[: rng.randint(start, max(start, end - 1))]
    elif kind in ("swap", "duplicate") and len(packets) >= 2:
        i, j = rng.sample(range(len(packets)), 2)
        (oi, si), (oj, sj) = packets[min(i, j)], packets[max(i, j)]
        a, b = bytes(d[oi : oi + si]), bytes(d[oj : oj + sj])
        if kind == "swap":
            d = d[:oi] + b + d[oi + si : oj] + a + d[oj + sj :]
        else:
            d = d[: oj + sj] + a + d[oj + sj :]
    elif kind == "packet_length" and packets:
        offset, size = rng.choice(packets)
        value = rng.choice([0, 1, size - 33 + 1, size - 33 - 1, 0x7FFFFFFF, 0xFFFFFFFF])
        struct.pack_into("<I", d, offset + 9, max(0, value) & 0xFFFFFFFF)
        if rng.random() < 0.5:
            _fix_packet_crc(d, offset)
    elif kind == "header_field":
        base = len(MAGIC) + 8
        fields = list(HEADER_FIELDS.unpack_from(d, base))
        idx = rng.randrange(len(fields))
        limits = [0xFFFFFFFF] * 5 + [255] * 5 + [0xFFFF, 0xFFFF, 255]
        fields[idx] = rng.choice([0, 1, 2, 16384, 16385, limits[idx]]) & limits[idx]
        HEADER_FIELDS.pack_into(d, base, *fields)
        _fix_header_crc(d)
    elif kind == "version":
        struct.pack_into("<H", d, len(MAGIC), rng.choice([0, 1, 2, 3, 255, 0xFFFF]))
        _fix_header_crc(d)
    elif kind == "substream_length" and packets:
        offset, size = rng.choice(packets)
        pos = offset + 29 + 4 * rng.randrange(2) if size > 41 else offset + 29
        struct.pack_into("<I", d, pos, rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)]))
        _fix_packet_crc(d, offset)
    elif kind == "payload_garbage_valid_crc" and packets:
        offset, size = rng.choice(packets)
        for _ in range(rng.randint(1, 16)):
            pos = rng.randrange(offset + 29, offset + size - 4)
            d[pos] = rng.randrange(256)
        _fix_packet_crc(d, offset)
    elif kind == "index_field":
        start, end = sec["index"]
        pos = rng.randrange(start, end)
        d[pos] = rng.randrange(256)
        body_end = end - 4
        struct.pack_into("<I", d, body_end, zlib.crc32(bytes(d[start:body_end])))
    else:
        kind = "bitflip"
        d[rng.randrange(len(d))] ^= 1
    return kind, bytes(d)


# ----------------------------------------------------------------------- worker
def worker(inter_weights: str | None) -> None:
    """Decode one case per stdin line; print one JSON result per case."""
    import contextlib
    import io

    import vcodec

    for line in sys.stdin:
        path = Path(line.strip())
        out = path.with_suffix(".y4m")
        result: dict
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                r = vcodec.decode(path, out, device="cpu", verify=True, progress=False, inter_weights=inter_weights)
            result = {"outcome": "decoded", "frames": r.frames}
        except vcodec.UserError as exc:
            msg = str(exc)
            result = {"outcome": "error" if msg and "\n" not in msg else "bad_message", "message": msg[:200]}
        except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
            import traceback

            result = {"outcome": "exception", "message": f"{type(exc).__name__}: {exc}"[:300],
                      "traceback": traceback.format_exc()[-1500:]}
        out.unlink(missing_ok=True)
        print(json.dumps(result), flush=True)


class Worker:
    def __init__(self, timeout: float, memory_mb: int, inter_weights: str | None):
        self.timeout, self.memory_mb, self.inter_weights = timeout, memory_mb, inter_weights
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        limit = self.memory_mb * 1024 * 1024

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        cmd = [sys.executable, __file__, "--worker"] + (["--inter-weights", self.inter_weights]
                                                         if self.inter_weights else [])
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, preexec_fn=limits, env=env)

    def run(self, path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(self.timeout):
            self.proc.kill()
            self.proc = None
            return {"outcome": "timeout"}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return {"outcome": "crash", "message": f"worker exited with {code}"}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()


def run_fuzz(cases: int, seed: int, timeout: float, memory_mb: int, inter_weights: str | None,
             progress: bool = True) -> dict:
    rng = random.Random(seed)
    counts: Counter = Counter()
    kinds: Counter = Counter()
    failures = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seeds = make_seeds(work, inter_weights)
        seed_data = [(p.read_bytes(), sections(p)) for p in seeds]
        w = Worker(timeout, memory_mb, inter_weights)
        try:
            for i in range(cases):
                data, sec = seed_data[i % len(seed_data)]
                kind, mutated = mutate(data, sec, rng)
                case = work / f"case{i % 8}.lvc"
                case.write_bytes(mutated)
                result = w.run(case)
                counts[result["outcome"]] += 1
                kinds[kind] += 1
                if result["outcome"] not in ("decoded", "error"):
                    keep = work.parent / f"vcodec_fuzz_fail_{seed}_{i}.lvc"
                    keep.write_bytes(mutated)
                    failures.append({"case": i, "kind": kind, "file": str(keep), **result})
                if progress and (i + 1) % 100 == 0:
                    print(f"{i + 1}/{cases} cases, {dict(counts)}", file=sys.stderr, flush=True)
        finally:
            w.close()
    return {"cases": cases, "seed": seed, "seconds": round(time.time() - t0, 1), "outcomes": dict(counts),
            "mutations": dict(kinds), "failures": failures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    ap.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of the decoding process")
    ap.add_argument("--inter-weights", help="also fuzz a P-frame stream made with these inter weights")
    ap.add_argument("--json", type=Path, help="write the report here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.inter_weights)
        return 0
    report = run_fuzz(args.cases, args.seed, args.timeout, args.memory_mb, args.inter_weights)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}, indent=2))
    for f in report["failures"][:10]:
        print(json.dumps(f)[:2000], file=sys.stderr)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
