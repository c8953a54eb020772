"""Evaluate (and optionally export) a flow pre-training checkpoint.

    python tools/eval_flow.py runs/flow/checkpoint.pt [--frames 16] [--export vcodec/weights/pretrain/flow.pt]

For consecutive frame pairs of the eval clips, reports how much warping the
previous frame with the estimated flow improves its PSNR-YUV as a prediction of
the current frame (0 dB = no better than copying the previous frame). `--export`
writes the flow network alone (fp16), the starting point for
`vcodec train configs/inter.toml --init PATH`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vcodec.color import frame_to_tensor  # noqa: E402
from vcodec.metrics import yuv_mse  # noqa: E402
from vcodec.models.flow import warp  # noqa: E402
from vcodec.models.hyperprior import PAD, pad_to  # noqa: E402
from vcodec.models.inter import InterCodec  # noqa: E402
from vcodec.video import read_frames  # noqa: E402


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / max(float(yuv_mse(a, b)), 1e-12))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--clips", nargs="*", type=Path,
                    default=sorted((REPO.parent / "shared" / "data" / "video" / "eval").glob("*.mp4")))
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--export", type=Path)
    args = ap.parse_args(argv)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = InterCodec()
    model.load_state_dict(state["ema"])
    net = model.flow_net.eval()
    report = {"steps": int(state["step"]), "clips": {}}
    with torch.no_grad():
        for clip in args.clips:
            frames, _ = read_frames(clip, max_frames=args.frames)
            gains = []
            for prev, cur in zip(frames, frames[1:]):
                x0, x1 = pad_to(frame_to_tensor(prev), PAD), pad_to(frame_to_tensor(cur), PAD)
                gains.append(psnr(warp(x0, net(x1, x0)), x1) - psnr(x0, x1))
            report["clips"][clip.stem] = sum(gains) / len(gains)
    report["mean_warp_gain_db"] = sum(report["clips"].values()) / len(report["clips"])
    print(json.dumps(report, indent=2))
    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        blob = {"format": "vcodec-pretrain-1", "role": "flow",
                "state_dict": {f"flow_net.{k}": v.half() for k, v in net.state_dict().items()},
                "meta": json.dumps({"steps": report["steps"], "cpu_hours": round(float(state["elapsed"]) / 3600, 3),
                                    "eval": report})}
        torch.save(blob, args.export)
    return 0


if __name__ == "__main__":
    sys.exit(main())
