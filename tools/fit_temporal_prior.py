"""Fit the inter weights' temporal prior for hyper-latents and write the weights with it.

    python tools/fit_temporal_prior.py runs/inter.pt -o vcodec/weights/inter.pt [--frames 9] [--smoothing 8]

Codes the first frames of every training clip at intra period 32 (no scene cuts) at several qualities with
the given keyframe and inter weights, counts each P-frame's hyper-latents ẑ against the previous P-frame's
(vcodec.entropy.temporal) and stores the smoothed integer tables beside the weights' own. Only the tables
change; encoders that find them code P-frames after the first of a GOP with them (format 5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcodec.codec import FrameEncoder  # noqa: E402
from vcodec.entropy.temporal import TemporalCounts  # noqa: E402
from vcodec.models.inter import InterCodec  # noqa: E402
from vcodec.video import read_frames  # noqa: E402
from vcodec.zoo import load_inter, load_keyframe, save_weights  # noqa: E402

TRAIN_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "train"


def count_clip(keyframe, inter: InterCodec, clip: Path, frames: int, quality: float,
               counts: tuple[TemporalCounts, TemporalCounts]) -> int:
    """Code one clip's first frames at one quality; add its consecutive P-frame pairs. Returns the pairs."""
    source, _ = read_frames(clip, frames)
    encoder = FrameEncoder(keyframe, quality, torch.device("cpu"), inter=inter, intra_period=32, scene_cuts=False)
    previous, pairs = None, 0
    for index, frame in enumerate(source):
        z = encoder.encode(frame, index).z
        if z is not None and previous is not None:
            for part in range(2):  # a block-motion P-frame has no motion hyper-latent
                if z[part] is not None and previous[part] is not None:
                    counts[part].add(z[part], previous[part])
            pairs += 1
        previous = z
    return pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inter", type=Path, help="inter weights to fit the prior for")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--keyframe", type=Path, help="keyframe weights for the references (default: shipped)")
    ap.add_argument("--clips", nargs="*", type=Path, default=sorted(TRAIN_DIR.glob("*.mp4")))
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--qualities", type=float, nargs="*", default=[0.5, 2.5, 4.5, 6.5])
    ap.add_argument("--smoothing", type=float, default=8.0,
                    help="pseudo-counts of the factorized prior per (channel, previous value) table")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    if args.output.resolve() == args.inter.resolve():
        ap.error("the output must not overwrite the input weights")
    torch.set_num_threads(args.threads)
    keyframe = load_keyframe(args.keyframe).model
    loaded = load_inter(args.inter)
    inter = loaded.model
    inter.motion.z_temporal = inter.residual.z_temporal = None  # count what the factorized prior codes
    counts = (TemporalCounts(inter.motion.z_tables), TemporalCounts(inter.residual.z_tables))
    start, pairs = time.perf_counter(), 0
    for clip in tqdm(args.clips, desc="clips"):
        for quality in args.qualities:
            pairs += count_clip(keyframe, inter, clip, args.frames, quality, counts)
    inter.motion.z_temporal = counts[0].tables(args.smoothing)
    inter.residual.z_temporal = counts[1].tables(args.smoothing)
    seconds = round(time.perf_counter() - start, 1)
    meta = dict(loaded.meta)
    meta["temporal_prior"] = {"clips": [c.stem for c in args.clips], "frames": args.frames,
                              "qualities": args.qualities, "smoothing": args.smoothing, "pairs": pairs,
                              "seconds": seconds, "threads": args.threads}
    sha = save_weights(args.output, inter, meta)
    print(json.dumps({"output": str(args.output), "sha256": sha, "pairs": pairs, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
