"""A/B two sets of weights on the eval clips: BD-rate of B against A, real bytes.

    python tools/ab_weights.py --inter-b runs/new_inter.pt [--frames 16] [--intra-period 32] [--jobs 2]
    python tools/ab_weights.py --keyframe-b runs/new_keyframe.pt --intra-period 1

A is the shipped weights unless --keyframe-a / --inter-a name others. Both sides
encode and decode the same frames through the public API, so the numbers are
those `tools/eval_rd.py` would report, without the anchors: the quick check
that decides whether new weights ship.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcodec.compare import bd_entry, vcodec_codec  # noqa: E402
from vcodec.video import read_frames  # noqa: E402

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "eval"


def ab_clip(src: Path, frames: int, qualities: list[float], intra_period: int,
            sides: dict[str, tuple[str | None, str | None]]) -> dict:
    """Points of both sides on one clip and B's BD-rate (PSNR-YUV) against A."""
    source, info = read_frames(src, max_frames=frames)
    points = {name: vcodec_codec(source, info.fps, qualities, intra_period, keyframe, None, inter)["points"]
              for name, (keyframe, inter) in sides.items()}
    bd = bd_entry(points["A"], points["B"])["bd_rate_psnr_yuv"]
    return {"clip": src.stem, "bd_rate": bd, "points": points}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="*", type=Path, default=sorted(EVAL_DIR.glob("*.mp4")))
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--qualities", type=float, nargs="*", default=[0, 2, 4, 6, 7])
    ap.add_argument("--intra-period", type=int, default=32)
    ap.add_argument("--keyframe-a")
    ap.add_argument("--inter-a")
    ap.add_argument("--keyframe-b")
    ap.add_argument("--inter-b")
    ap.add_argument("--jobs", type=int, default=1, help="clips in parallel (one thread each)")
    args = ap.parse_args(argv)
    if not args.clips:
        print(f"no eval clips found (looked in {EVAL_DIR})", file=sys.stderr)
        return 1
    sides = {"A": (args.keyframe_a, args.inter_a), "B": (args.keyframe_b, args.inter_b)}
    job = partial(ab_clip, frames=args.frames, qualities=args.qualities, intra_period=args.intra_period,
                  sides=sides)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            results = list(pool.map(job, args.clips))
    else:
        results = [job(src) for src in args.clips]
    for r in results:
        bd = "n/a (curves do not overlap)" if r["bd_rate"] is None else f"{r['bd_rate']:+.1f}%"
        print(f"{r['clip']}: BD-rate of B against A {bd}")
        for name in ("A", "B"):
            pts = ", ".join(f"q{p['quality']:g} {p['kbps']:.0f} kbps {p['psnr_yuv']:.2f} dB" for p in r["points"][name])
            print(f"  {name}: {pts}")
    values = [r["bd_rate"] for r in results if r["bd_rate"] is not None]
    if values:
        print(f"mean BD-rate of B against A: {statistics.mean(values):+.1f}% over {len(values)} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
