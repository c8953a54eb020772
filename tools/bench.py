"""Speed and memory benchmark: encode/decode frames/s and peak memory per frame size and thread count,
plus entropy-coding symbols/s each way.

    python tools/bench.py [--sizes 352x288 1280x720 1920x1080] [--threads 1 2] [--intra-periods 1 32]
                          [--frames 4] [--repeats 3] [--device cpu] [--json out.json]

Each configuration runs in a fresh process (so peak RSS is its own): frames are
cut from data/sample.mp4 and rescaled, one warm-up pass, then `repeats` timed
passes of the frame-level encoder and decoder (no file I/O); the median and the
range are reported. At intra period 1 every frame is a keyframe; at a longer one the
first frame is a keyframe and the rest are P-frames coded with the shipped inter weights
and the encoder's default motion search (no scene-cut keyframes). Decoding is timed as
the CLI runs it (the next frame parsed in a helper thread while the current one is
synthesized, when a core is free for it) and strictly one frame after another. Peak
memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def child(size: str, threads: int, frames: int, repeats: int, device: str, intra_period: int = 1) -> dict:
    import torch

    from vcodec.codec import FrameDecoder, FrameEncoder
    from vcodec.video import frame_from_av, frame_to_av, read_frames
    from vcodec.zoo import load_inter, load_keyframe

    torch.set_num_threads(threads)
    width, height = (int(v) for v in size.split("x"))
    src, _ = read_frames(REPO / "data" / "sample.mp4", max_frames=frames)
    clip = [frame_from_av(frame_to_av(f).reformat(width=width, height=height, interpolation="BICUBIC")) for f in src]
    dev = torch.device(device)
    model = load_keyframe(None, dev).model
    inter = load_inter(None, dev).model if intra_period != 1 else None

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def run_encode():
        enc = FrameEncoder(model, 4.0, dev, inter=inter, intra_period=intra_period, scene_cuts=False)
        return [enc.encode(f, i).packet for i, f in enumerate(clip)]

    def run_decode(packets):  # as the CLI decodes (pipelined when a core is free for it)
        dec = FrameDecoder(model, width, height, dev, inter)
        return list(dec.decode_all(packets))

    def run_decode_sequential(packets):
        dec = FrameDecoder(model, width, height, dev, inter)
        return [dec.decode(p) for p in packets]

    packets = run_encode()
    run_decode(packets)
    enc_t, dec_t, seq_t = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        packets = run_encode()
        sync()
        enc_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_decode(packets)
        sync()
        dec_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_decode_sequential(packets)
        sync()
        seq_t.append(time.perf_counter() - t)
    return {"size": size, "threads": threads, "device": device, "frames": len(clip), "intra_period": intra_period,
            "pipelined": FrameDecoder(model, width, height, dev).pipelined(),
            "encode_fps": len(clip) / statistics.median(enc_t),
            "encode_fps_range": [len(clip) / max(enc_t), len(clip) / min(enc_t)],
            "decode_fps": len(clip) / statistics.median(dec_t),
            "decode_fps_range": [len(clip) / max(dec_t), len(clip) / min(dec_t)],
            "decode_sequential_fps": len(clip) / statistics.median(seq_t),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def machine() -> str:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {platform.machine()}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=["352x288", "1280x720", "1920x1080"])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--intra-periods", nargs="*", type=int, default=[1, 32],
                    help="1 = all-intra; longer = one keyframe, then P-frames (default: 1 32)")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-entropy", dest="entropy", action="store_false", help="skip the entropy-coder timing")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        size, threads, frames, repeats, device, intra_period = args.child
        print(json.dumps(child(size, int(threads), int(frames), int(repeats), device, int(intra_period))))
        return 0
    results = []
    configs = [(ip, size, threads) for ip in args.intra_periods for size in args.sizes
               for threads in (args.threads if args.device == "cpu" else [1])]
    for intra_period, size, threads in configs:
        cmd = [sys.executable, __file__, "--child", size, str(threads), str(args.frames), str(args.repeats),
               args.device, str(intra_period)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        r = results[-1]
        print(f"intra period {intra_period} {size:>10s} {args.device} {threads} thr: encode {r['encode_fps']:.2f} "
              f"fps, decode {r['decode_fps']:.2f} fps (sequential {r['decode_sequential_fps']:.2f}), "
              f"peak {r['peak_rss_mib']:.0f} MiB", flush=True)
    report = {"machine": machine(), "results": results}
    if args.entropy:
        from tools.bench_entropy import bench_constriction, real_symbols

        symbols, ids, tables = real_symbols(REPO / "data" / "sample.mp4", 2, 4.0)
        r = bench_constriction(symbols, ids, tables, args.repeats)
        report["entropy"] = {"symbols": symbols.numel(), "encode_Msym_s": symbols.numel() / r["encode_s"] / 1e6,
                             "decode_Msym_s": symbols.numel() / r["decode_s"] / 1e6}
        print(f"entropy coding: {report['entropy']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
