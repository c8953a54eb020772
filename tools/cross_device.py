"""Cross-device determinism check: encode on one device, parse and decode on another.

    python tools/cross_device.py [VIDEO] [--frames 32] [--intra-period 32] [--encode-device cpu]
                                 [--decode-device cuda]

For every packet the entropy-decoded latents (symbols plus their exact means)
are computed on both devices and must be identical: that is what keeps the
arithmetic decoder in sync. Pixels may drift (float synthesis differs across
devices); the drift is reported per frame as max |difference| and PSNR between
the two decodes, over the whole GOP so accumulation through P-frames shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vcodec  # noqa: E402
from vcodec.codec import FrameDecoder  # noqa: E402
from vcodec.metrics import psnr  # noqa: E402
from vcodec.stream import StreamReader  # noqa: E402
from vcodec.video import read_frames  # noqa: E402
from vcodec.zoo import inter_available, load_inter, load_keyframe  # noqa: E402


def parsed_latents(stream: Path, device: str) -> list[list[torch.Tensor]]:
    """Entropy-decoded latents of every packet, with the entropy parameters computed on `device`."""
    key = load_keyframe(None, device).model
    inter = load_inter(None, device).model if inter_available() else None
    with StreamReader(stream) as r:
        h = r.header
        decoder = FrameDecoder(key, h.width, h.height, torch.device(device), inter, h.version)
        return [[y.cpu() for y in decoder.parse(p).latents] for p in r.packets()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", type=Path, default=REPO / "data" / "sample.mp4")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--intra-period", type=int, help="default: 32 with inter weights, else 1")
    ap.add_argument("--quality", type=float, default=4.0)
    ap.add_argument("--encode-device", default="cpu")
    ap.add_argument("--decode-device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    report: dict = {"encode_device": args.encode_device, "decode_device": args.decode_device}
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "s.lvc"
        vcodec.encode(args.video, stream, quality=args.quality, intra_period=args.intra_period, frames=args.frames,
                      device=args.encode_device, progress=False)
        a = parsed_latents(stream, args.encode_device)
        b = parsed_latents(stream, args.decode_device)
        report["packets"] = len(a)
        report["identical_latents"] = all(torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))
        outs = {}
        for dev in (args.encode_device, args.decode_device):
            path = Path(tmp) / f"{dev.replace(':', '_')}.y4m"
            vcodec.decode(stream, path, device=dev, progress=False)
            outs[dev] = read_frames(path)[0]
        drift = []
        for fa, fb in zip(outs[args.encode_device], outs[args.decode_device]):
            diff = max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(fa.planes(), fb.planes()))
            drift.append({"max_abs_diff": diff, "psnr_y_between_decodes": psnr(fa.y, fb.y)})
        report["per_frame_drift"] = drift
        report["identical_pixels"] = all(d["max_abs_diff"] == 0 for d in drift)
    print(json.dumps(report, indent=2))
    return 0 if report["identical_latents"] else 1


if __name__ == "__main__":
    sys.exit(main())
