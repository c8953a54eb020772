"""All-intra evaluation: bpp and PSNR per quality index, and coding speed.

    python tools/eval_intra.py [--clips data/sample.mp4 ../shared/data/video/eval/*.mp4] [--frames 8]
                               [--speed] [--json out.json]

Every number comes from real streams written to disk and decoded back: bits are
the .lvc file's bytes, quality is measured on the decoded 8-bit planes against
the source planes. Speed is measured on 352x288 and 1280x720 frames.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vcodec  # noqa: E402
from vcodec.color import YUVFrame  # noqa: E402
from vcodec.metrics import frame_psnr, frame_psnr_rgb, mean_metrics  # noqa: E402
from vcodec.video import VideoWriter, frame_from_av, frame_to_av, read_frames  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = REPO.parent / "shared" / "data" / "video" / "eval"


def cut_clip(src: Path, dst: Path, frames: int, size: tuple[int, int] | None = None) -> list[YUVFrame]:
    """First `frames` frames of src (optionally rescaled) as a lossless clip; returns the frames."""
    clip, info = read_frames(src, max_frames=frames)
    if size is not None:
        clip = [frame_from_av(frame_to_av(f).reformat(width=size[0], height=size[1], interpolation="LANCZOS"))
                for f in clip]
    with VideoWriter(dst, clip[0].width, clip[0].height, info.fps) as w:
        for f in clip:
            w.write(f)
    return clip


def rd_points(clip: Path, source: list[YUVFrame], qualities: list[float], work: Path) -> list[dict]:
    points = []
    for q in qualities:
        stream = work / f"q{q}.lvc"
        r = vcodec.encode(clip, stream, quality=q, progress=False)
        decoded_path = work / f"q{q}.y4m"
        vcodec.decode(stream, decoded_path, device="cpu", progress=False)
        decoded, _ = read_frames(decoded_path)
        rows = [dict(frame_psnr(a, b), psnr_rgb=frame_psnr_rgb(a, b)) for a, b in zip(source, decoded)]
        points.append({"quality": q, "bytes": r.bytes, "bpp": r.bpp, "kbps": r.kbps, **mean_metrics(rows)})
    return points


def speed(clip: Path, repeats: int, work: Path) -> dict:
    enc, dec = [], []
    frames = 0
    for _ in range(repeats):
        t = time.perf_counter()
        r = vcodec.encode(clip, work / "s.lvc", quality=4, progress=False)
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        vcodec.decode(work / "s.lvc", work / "s.y4m", device="cpu", progress=False)
        dec.append(time.perf_counter() - t)
        frames = r.frames
    return {"frames": frames, "encode_fps": frames / statistics.median(enc),
            "decode_fps": frames / statistics.median(dec), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="*", type=Path,
                    default=[REPO / "data" / "sample.mp4", *sorted(EVAL_DIR.glob("*.mp4"))])
    ap.add_argument("--frames", type=int, default=8, help="frames per clip")
    ap.add_argument("--qualities", type=float, nargs="*", default=list(range(8)))
    ap.add_argument("--speed", action="store_true", help="also measure encode/decode frames/s")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    report: dict = {"clips": {}, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for src in args.clips:
            clip = work / f"{src.stem}.mkv"
            source = cut_clip(src, clip, args.frames)
            report["clips"][src.stem] = rd_points(clip, source, args.qualities, work)
            for p in report["clips"][src.stem]:
                print(f"{src.stem:28s} q{p['quality']:<4g} {p['bpp']:.4f} bpp  PSNR-YUV {p['psnr_yuv']:.2f}  "
                      f"Y {p['psnr_y']:.2f}  RGB {p['psnr_rgb']:.2f}", flush=True)
        if args.speed:
            report["speed"] = {}
            for name, size in (("352x288", None), ("1280x720", (1280, 720))):
                src = REPO / "data" / "sample.mp4" if size is None else sorted(EVAL_DIR.glob("*.mp4"))[0]
                clip = work / f"speed_{name}.mkv"
                cut_clip(src, clip, 10 if size is None else 4, size)
                report["speed"][name] = speed(clip, 3, work)
                print(f"speed {name}: {report['speed'][name]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
