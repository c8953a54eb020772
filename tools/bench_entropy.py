"""Entropy-coder throughput on real latents: constriction (shipped) against torchac.

    python tools/bench_entropy.py [VIDEO] [--frames 2] [--quality 4] [--repeats 3]

Both coders get the same symbols and the same integer tables. constriction codes
symbols grouped by table (one shared model per group, what vcodec ships);
torchac needs a CDF row per symbol, whose construction time is reported apart.
Requires `pip install -e ".[bench]"` for torchac (compiled on first import).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcodec.color import frame_to_tensor  # noqa: E402
from vcodec.entropy import coder  # noqa: E402
from vcodec.models.keyframe import PAD, pad_to  # noqa: E402
from vcodec.video import read_frames  # noqa: E402
from vcodec.zoo import load_keyframe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def real_symbols(video: Path, frames: int, quality: float):
    model = load_keyframe().model
    clip, _ = read_frames(video, max_frames=frames)
    syms, ids = [], []
    with torch.inference_mode():
        for frame in clip:
            x = pad_to(frame_to_tensor(frame), PAD)
            y = model.g_a(x) * model.gain(torch.tensor([quality]))
            z = torch.round(model.h_a(y))
            means, scales = model.entropy_parameters(z)
            idx = model.scale_index(scales)
            syms.append(torch.round(y.double() - means).long().reshape(-1))
            ids.append(idx.reshape(-1))
    return torch.cat(syms), torch.cat(ids), model.y_tables


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench_constriction(symbols, ids, tables, repeats):
    enc_s, data = timed(lambda: coder.encode(symbols, ids, tables), repeats)
    dec_s, back = timed(lambda: coder.decode(data, ids, tables), repeats)
    assert torch.equal(back, symbols)
    return {"encode_s": enc_s, "decode_s": dec_s, "bytes": len(data)}


def bench_torchac(symbols, ids, tables, repeats):
    import torchac

    idx = symbols - tables.offsets[ids]
    idx = torch.where((idx >= 0) & (idx < tables.lengths[ids]), idx, tables.lengths[ids]).to(torch.int16)
    table_cdf = torch.zeros(len(tables), tables.counts.shape[1] + 1)
    table_cdf[:, 1:] = torch.cumsum(tables.counts.double(), 1).float() / 2**16
    for t in range(len(tables)):  # pad each table's CDF with 1.0 past its last symbol
        table_cdf[t, int(tables.lengths[t]) + 2 :] = 1.0

    def build():
        return table_cdf[ids]

    build_s, cdf = timed(build, repeats)
    enc_s, data = timed(lambda: torchac.encode_float_cdf(cdf, idx, needs_normalization=True), repeats)
    dec_s, back = timed(lambda: torchac.decode_float_cdf(cdf, data, needs_normalization=True), repeats)
    assert torch.equal(back, idx)
    return {"cdf_build_s": build_s, "encode_s": enc_s, "decode_s": dec_s, "bytes": len(data),
            "cdf_bytes": cdf.numel() * cdf.element_size()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", type=Path, default=REPO / "data" / "sample.mp4")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--quality", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the report here (stdout may carry build messages)")
    args = ap.parse_args(argv)
    symbols, ids, tables = real_symbols(args.video, args.frames, args.quality)
    n = symbols.numel()
    report = {"symbols": n, "threads": torch.get_num_threads(), "ideal_bytes": tables.bits(symbols, ids) / 8}
    report["constriction"] = bench_constriction(symbols, ids, tables, args.repeats)
    try:
        report["torchac"] = bench_torchac(symbols, ids, tables, args.repeats)
    except ImportError:
        report["torchac"] = "not installed (pip install -e '.[bench]')"
    for name in ("constriction", "torchac"):
        r = report[name]
        if isinstance(r, dict):
            r["encode_Msym_s"] = n / r["encode_s"] / 1e6
            r["decode_Msym_s"] = n / r["decode_s"] / 1e6
            if "cdf_build_s" in r:
                r["encode_with_cdf_Msym_s"] = n / (r["encode_s"] + r["cdf_build_s"]) / 1e6
                r["decode_with_cdf_Msym_s"] = n / (r["decode_s"] + r["cdf_build_s"]) / 1e6
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
