"""A/B two sets of weights on the eval clips: BD-rate of B against A, real bytes.

    python tools/ab_weights.py --inter-b runs/new_inter.pt [--frames 16] [--intra-period 32] [--jobs 2]
    python tools/ab_weights.py --keyframe-b runs/new_keyframe.pt --intra-period 1

A is the shipped weights unless --keyframe-a / --inter-a name others; --effort-a / -b
compare encoder-side refinement settings. Both sides
encode and decode the same frames through the public API, so the numbers are
those `tools/eval_rd.py` would report, without the anchors: the quick check
that decides whether new weights ship.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcodec.codec import KEYFRAME_OFFSET, P_OFFSETS, MotionSearch  # noqa: E402
from vcodec.compare import bd_entry, vcodec_codec  # noqa: E402
from vcodec.video import read_frames  # noqa: E402
from vcodec.zoo import DEFAULT_INTER, DEFAULT_KEYFRAME, codec_source_digest, sha256_file  # noqa: E402

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "eval"


# A side: keyframe weights, inter weights (None = shipped), effort, motion search, keyframe quality offset.
Side = tuple[str | None, str | None, int, MotionSearch, float]


def _motion(args: argparse.Namespace, side: str) -> MotionSearch:
    default = MotionSearch()
    steps, offsets = getattr(args, f"flow_steps_{side}"), getattr(args, f"motion_offsets_{side}")
    blocks, vector_rd = getattr(args, f"motion_blocks_{side}"), getattr(args, f"vector_rd_{side}")
    return MotionSearch(default.flow_steps if steps is None else steps,
                        tuple(offsets) if offsets is not None else default.motion_offsets,
                        blocks=tuple(blocks) if blocks is not None else default.blocks,
                        vector_rd=default.vector_rd if vector_rd is None else vector_rd)


def cache_key(src: Path, frames: int, qualities: list[float], intra_period: int,
              side: Side) -> str:
    """Everything a side's points depend on: the clip, the settings, the weights and the codec's source
    code (the training package does not code frames)."""
    keyframe, inter, effort, motion, keyframe_offset, p_offsets = side
    parts = [src.name, str(src.stat().st_size), str(frames), repr(list(qualities)), str(intra_period), str(effort),
             repr(motion), f"keyframe_offset={keyframe_offset!r}", *([f"p_offsets={p_offsets!r}"] if p_offsets else []),
             sha256_file(keyframe or DEFAULT_KEYFRAME), sha256_file(inter or DEFAULT_INTER),
             codec_source_digest()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def ab_clip(src: Path, frames: int, qualities: list[float], intra_period: int,
            sides: dict[str, Side], cache: Path | None = None) -> dict:
    """Points of both sides on one clip and B's BD-rate (PSNR-YUV) against A.

    With `cache`, a side whose points were measured before with the same clip,
    settings and weights is read back instead of re-encoded: the A side (the
    shipped weights) is usually the same across a series of A/B runs.
    """
    source, info = read_frames(src, max_frames=frames)
    points, seconds = {}, {}
    for name, side in sides.items():
        entry = cache / f"{cache_key(src, frames, qualities, intra_period, side)}.json" if cache else None
        if entry is not None and entry.exists():
            stored = json.loads(entry.read_text())
            points[name], seconds[name] = stored["points"], stored["seconds"]
            continue
        keyframe, inter, effort, motion, keyframe_offset, p_offsets = side
        start = time.perf_counter()
        points[name] = vcodec_codec(source, info.fps, qualities, intra_period, keyframe, None, inter, effort,
                                    motion, keyframe_offset, p_offsets)["points"]
        seconds[name] = time.perf_counter() - start
        if entry is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            entry.write_text(json.dumps({"points": points[name], "seconds": seconds[name]}))
    bd = bd_entry(points["A"], points["B"])["bd_rate_psnr_yuv"]
    print(f"{src.stem}: done", file=sys.stderr, flush=True)
    return {"clip": src.stem, "bd_rate": bd, "points": points, "seconds": seconds}


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
    ap.add_argument("--effort-a", type=int, default=0, help="encoder refinement steps for A (default 0)")
    ap.add_argument("--effort-b", type=int, default=0, help="encoder refinement steps for B (default 0)")
    ap.add_argument("--motion-offsets-a", type=float, nargs="+",
                    help="motion-codec quality offsets A's P-frames may use (default: the encoder's)")
    ap.add_argument("--motion-offsets-b", type=float, nargs="+", help="the same for B")
    ap.add_argument("--motion-blocks-a", type=int, nargs="*",
                    help="block motion cell sizes A's motion search tries too (default: the encoder's)")
    ap.add_argument("--motion-blocks-b", type=int, nargs="*", help="the same for B")
    ap.add_argument("--vector-rd-a", type=float,
                    help="weight of warping error against block vectors' bits for A (default: the encoder's)")
    ap.add_argument("--vector-rd-b", type=float, help="the same for B")
    ap.add_argument("--flow-steps-a", type=int, help="flow sharpening steps for A's P-frames (default: the encoder's)")
    ap.add_argument("--flow-steps-b", type=int, help="the same for B")
    ap.add_argument("--keyframe-offset-a", type=float, default=KEYFRAME_OFFSET,
                    help=f"quality steps above the P-frames at which A codes keyframes (default {KEYFRAME_OFFSET:g})")
    ap.add_argument("--keyframe-offset-b", type=float, default=KEYFRAME_OFFSET, help="the same for B")
    ap.add_argument("--p-offsets-a", type=float, nargs="*", default=list(P_OFFSETS),
                    help="A's P-frame quality offsets, cycled from each keyframe (default: the encoder's)")
    ap.add_argument("--p-offsets-b", type=float, nargs="*", default=list(P_OFFSETS), help="the same for B")
    ap.add_argument("--jobs", type=int, default=1, help="clips in parallel (one thread each)")
    ap.add_argument("--threads", type=int,
                    help="torch threads with --jobs 1 (e.g. 1 beside a training run, so the two do not contend)")
    ap.add_argument("--json", type=Path, help="also write the settings and results here")
    ap.add_argument("--cache", type=Path, help="folder that keeps each side's points for reuse by later runs")
    args = ap.parse_args(argv)
    if not args.clips:
        print(f"no eval clips found (looked in {EVAL_DIR})", file=sys.stderr)
        return 1
    sides = {side.upper(): (getattr(args, f"keyframe_{side}"), getattr(args, f"inter_{side}"),
                            getattr(args, f"effort_{side}"), _motion(args, side),
                            getattr(args, f"keyframe_offset_{side}"), tuple(getattr(args, f"p_offsets_{side}")))
             for side in ("a", "b")}
    job = partial(ab_clip, frames=args.frames, qualities=args.qualities, intra_period=args.intra_period,
                  sides=sides, cache=args.cache)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            results = list(pool.map(job, args.clips))
    else:
        results = [job(src) for src in args.clips]
    for r in results:
        bd = "n/a (curves do not overlap)" if r["bd_rate"] is None else f"{r['bd_rate']:+.1f}%"
        print(f"{r['clip']}: BD-rate of B against A {bd}; encode+decode+measure {r['seconds']['A']:.0f} s (A), "
              f"{r['seconds']['B']:.0f} s (B)")
        for name in ("A", "B"):
            pts = ", ".join(f"q{p['quality']:g} {p['kbps']:.0f} kbps {p['psnr_yuv']:.2f} dB" for p in r["points"][name])
            print(f"  {name}: {pts}")
    values = [r["bd_rate"] for r in results if r["bd_rate"] is not None]
    mean = statistics.mean(values) if values else None
    if mean is not None:
        print(f"mean BD-rate of B against A: {mean:+.1f}% over {len(values)} clips")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("clips", "json", "cache", "threads")}
        defaults = {"keyframe": DEFAULT_KEYFRAME, "inter": DEFAULT_INTER}
        settings["weights_sha256"] = {f"{role}_{side}": sha256_file(settings[f"{role}_{side}"] or default)
                                      for role, default in defaults.items() for side in ("a", "b")}
        args.json.write_text(json.dumps({"settings": settings, "threads": torch.get_num_threads(),
                                         "results": results, "mean_bd_rate": mean}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
