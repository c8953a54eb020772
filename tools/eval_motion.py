"""How well the motion codec carries the encoder's fields: warp quality against motion bytes.

    python tools/eval_motion.py [--inter runs/X.pt] [--pairs 2] [--qualities 3 5 7] [--motion-qualities 1 3 5 7]

For the first frame pairs of each eval clip, the previous frame is coded as a
keyframe at each quality (the reference a decoder would hold, 8-bit), the flow
network's field for the next frame is sharpened as the encoder does it, and the
motion codec codes that field at each motion quality. Reports PSNR-YUV of the
reference warped by the flow network's field, by the sharpened field and by the
decoded field, and the motion latents' real coded bits per luma pixel. The gap
between the sharpened and the decoded field is what the motion codec loses.

With --blocks B ..., the same pairs are also predicted by block motion
(vcodec.models.blocks, as the encoder searches and sends it): one vector per BxB
cell of the 4:2:0 grid (2Bx2B luma pixels), fitted to the warping error from the
sharpened field's cell means, then weighed against their bits at the frame's λ
(`--vector-rd`, the encoder's default), in quarter luma pixels, with the real
bytes of its median-predicted Exp-Golomb codes.

With --code, each field (decoded or block) then predicts the P-frame through the
P-frame codec's refinement and its residual codec codes the rest at the
reference's quality: the frame's real bits (motion + residual) and PSNR-YUV.
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

from vcodec.codec import MotionSearch  # noqa: E402
from vcodec.color import frame_to_tensor, quantize_tensor  # noqa: E402
from vcodec.metrics import error_weight, yuv_mse  # noqa: E402
from vcodec.models.blocks import (  # noqa: E402
    block_field,
    encode_vectors,
    fit_block_motion,
    grid_shape,
    snap_block_motion,
)
from vcodec.models.flow import refine_flow  # noqa: E402
from vcodec.models.hyperprior import PAD, pad_to  # noqa: E402
from vcodec.models.inter import FLOW_SCALE, global_motion, motion_field  # noqa: E402
from vcodec.video import read_frames  # noqa: E402
from vcodec.zoo import load_inter, load_keyframe  # noqa: E402

EVAL_CLIPS = REPO.parent / "shared" / "data" / "video" / "eval"


def psnr(a: torch.Tensor, b: torch.Tensor, height: int, width: int) -> float:
    """PSNR-YUV over the unpadded part of (1, 6, h, w) tensors."""
    mse = float(yuv_mse(a[..., :height, :width].clamp(0, 1), b[..., :height, :width]))
    return 10 * math.log10(1 / max(mse, 1e-12))


def code_with(inter, x1: torch.Tensor, ref: torch.Tensor, field: torch.Tensor, quality: float, motion_bits: float,
              luma_pixels: int, height: int, width: int) -> dict:
    """The P-frame predicted with `field` and its residual coded at `quality`: total bpp and PSNR-YUV."""
    residual, x_hat = inter._code_residual(x1, inter.predict(ref, field), quality, effort=0, z_prev=None)
    bits = motion_bits + 8 * len(residual.substream())
    return {"frame_bpp": bits / luma_pixels, "frame_db": psnr(x_hat, x1, height, width)}


@torch.inference_mode()
def measure_pair(inter, keyframe, prev, cur, quality: float, motion_qualities: list[float],
                 refine_steps: int, blocks: tuple[int, ...] = (), code: bool = False,
                 vector_rd: float = MotionSearch().vector_rd) -> dict:
    x0 = frame_to_tensor(prev)
    h, w = x0.shape[-2:]
    x0, x1 = pad_to(x0, PAD), pad_to(frame_to_tensor(cur), PAD)
    latents = keyframe.compress(x0, quality)
    ref = quantize_tensor(keyframe.synthesize(latents.y_hat, quality, *x0.shape[-2:]))
    network = inter.flow_net(x1, ref)
    sharp = refine_flow(x1, ref, network, inter.warp, steps=refine_steps)  # as InterCodec.estimate_motion
    g = motion_field(global_motion(sharp)).to(sharp.device)
    luma_pixels = prev.width * prev.height
    row = {"network_db": psnr(inter.warp(ref, network), x1, h, w),
           "sharpened_db": psnr(inter.warp(ref, sharp), x1, h, w), "decoded": {}}
    for mq in motion_qualities:
        coded = inter.motion.compress((sharp - g) * (1 / FLOW_SCALE), mq)
        field = inter.motion.synthesize(coded.y_hat, mq, *x1.shape[-2:]) * FLOW_SCALE + g
        row["decoded"][str(mq)] = {"bpp": 8 * len(coded.substream()) / luma_pixels,
                                   "db": psnr(inter.warp(ref, field), x1, h, w)}
        if code:
            row["decoded"][str(mq)].update(code_with(inter, x1, ref, field, quality, 8 * len(coded.substream()),
                                                     luma_pixels, h, w))
    row["blocks"] = {}
    for block in blocks:  # as InterCodec.compress_blocks searches and sends it
        vectors = fit_block_motion(x1, ref, sharp, inter.warp, block, *grid_shape(h, w, block))
        if vector_rd > 0:
            weight = vector_rd * error_weight(float(keyframe.lmbda(torch.tensor([quality]))))
            vectors = snap_block_motion(vectors, x1, ref, inter.warp, block, weight, h, w)
        field = block_field(vectors, block, *x1.shape[-2:])
        bits = 8 * len(encode_vectors(vectors))
        row["blocks"][str(block)] = {"bpp": bits / luma_pixels, "db": psnr(inter.warp(ref, field), x1, h, w)}
        if code:
            row["blocks"][str(block)].update(code_with(inter, x1, ref, field, quality, bits, luma_pixels, h, w))
    return row


def describe(row: dict) -> str:
    """One line's worth of a row's decoded and block fields."""
    def one(d: dict) -> str:
        text = f"{d['bpp']:.4f} bpp {d['db']:.2f} dB"
        return text + (f" [frame {d['frame_bpp']:.4f} bpp {d['frame_db']:.2f} dB]" if "frame_bpp" in d else "")
    return (" | " + "  ".join(f"mq{mq}: {one(d)}" for mq, d in row["decoded"].items())
            + "".join(f" | block {b}: {one(d)}" for b, d in row["blocks"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inter", type=Path, help="inter weights (default: the shipped ones)")
    ap.add_argument("--keyframe", type=Path, help="keyframe weights (default: the shipped ones)")
    ap.add_argument("--clips", nargs="*", type=Path, default=sorted(EVAL_CLIPS.glob("*.mp4")))
    ap.add_argument("--pairs", type=int, default=2, help="frame pairs per clip: 0->1, 2->3, ...")
    ap.add_argument("--qualities", nargs="*", type=float, default=[3.0, 6.0], help="keyframe (reference) qualities")
    ap.add_argument("--motion-qualities", nargs="*", type=float, default=[1.0, 3.0, 5.0, 7.0])
    ap.add_argument("--flow-steps", type=int, default=20, help="flow sharpening steps, as the encoder")
    ap.add_argument("--blocks", nargs="*", type=int, default=[],
                    help="also measure block motion with these cell sizes on the 4:2:0 grid (e.g. 4 8)")
    ap.add_argument("--vector-rd", type=float, default=MotionSearch().vector_rd,
                    help="weight of the warping error against the vectors' bits, as a fraction of λ "
                         "(default: the encoder's; 0: the search's vectors as they are)")
    ap.add_argument("--code", action="store_true",
                    help="also code each P-frame with each field: the frame's real bits and PSNR-YUV")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    inter, keyframe = load_inter(args.inter).model, load_keyframe(args.keyframe).model
    report = {"inter": str(args.inter or "shipped"), "clips": {}}
    for clip in args.clips:
        frames, _ = read_frames(clip, max_frames=2 * args.pairs)
        rows = []
        for quality in args.qualities:
            for i in range(0, 2 * args.pairs - 1, 2):
                row = measure_pair(inter, keyframe, frames[i], frames[i + 1], quality, args.motion_qualities,
                                   args.flow_steps, tuple(args.blocks), args.code, args.vector_rd)
                rows.append({"quality": quality, "pair": i, **row})
                print(f"{clip.stem} q{quality:g} pair {i}->{i + 1}: network {row['network_db']:.2f} dB, "
                      f"sharpened {row['sharpened_db']:.2f} dB{describe(row)}", flush=True)
        report["clips"][clip.stem] = rows
    every = [r for rows in report["clips"].values() for r in rows]

    def mean(entries: list[dict]) -> dict:
        return {key: sum(e[key] for e in entries) / len(entries) for key in entries[0]}

    report["mean"] = {"network_db": sum(r["network_db"] for r in every) / len(every),
                      "sharpened_db": sum(r["sharpened_db"] for r in every) / len(every),
                      **{kind: {k: mean([r[kind][k] for r in every]) for k in every[0][kind]}
                         for kind in ("decoded", "blocks")}}
    print("mean: network {network_db:.2f} dB, sharpened {sharpened_db:.2f} dB".format(**report["mean"])
          + describe(report["mean"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
