"""`vcodec train CONFIG` / `python tools/train.py CONFIG`: one entry point for training.

Resumes from RUN_DIR/checkpoint.pt when it exists; `--init` starts a new run from
exported weights; `--export` writes shipped-format weights from the EMA at the
end. Under `torchrun` it trains data-parallel (DistributedDataParallel; gloo on
CPU, NCCL on CUDA): every rank draws its own batches, rank 0 logs and saves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import tomllib
from pathlib import Path

import torch
import torch.distributed as dist

from vcodec.models.inter import InterCodec, InterConfig
from vcodec.models.keyframe import KeyframeCodec, KeyframeConfig
from vcodec.training.data import CropSampler, load_clips, load_images, load_video_frames
from vcodec.training.inter import ChainLoss, flow_loss, motion_loss, motion_warp_loss, sample_blocks
from vcodec.training.keyframe import rd_loss, sample_quality
from vcodec.training.trainer import Schedule, Trainer
from vcodec.training.validate import KeyframeValidator
from vcodec.zoo import load_keyframe, read_weights_file, save_weights

STAGES = ("keyframe", "flow", "motion", "motion_warp", "inter", "inter_multi")


def build_model(cfg: dict) -> KeyframeCodec | InterCodec:
    """The model a config trains: the keyframe codec, or the inter codec for the inter stages."""
    model_cfg = dict(cfg.get("model", {}))
    if "lambdas" in model_cfg:
        model_cfg["lambdas"] = tuple(model_cfg["lambdas"])
    stage = cfg.get("stage", "keyframe")
    if stage not in STAGES:
        raise ValueError(f"unknown stage '{stage}' (one of {', '.join(STAGES)})")
    if stage == "keyframe":
        return KeyframeCodec(KeyframeConfig(**model_cfg))
    return InterCodec(InterConfig(**model_cfg))



def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX); without them bf16 is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def freeze(model: torch.nn.Module, prefixes: list[str]) -> int:
    """Stop training the parameters whose names start with one of `prefixes` (e.g. "flow_net." late in P-frame
    training): no gradients flow into them, which also skips their backward pass. Returns how many."""
    count = 0
    for name, parameter in model.named_parameters():
        if any(name.startswith(prefix) for prefix in prefixes):
            parameter.requires_grad_(False)
            count += 1
    if prefixes and not count:
        raise ValueError(f"freeze: no parameter name starts with {', '.join(prefixes)}")
    return count


def load_init(spec: str) -> dict[str, torch.Tensor]:
    """Weights named by `--init PATH[:PREFIX]`: exported weights or a training checkpoint (its EMA),
    keeping only the tensors whose names start with PREFIX when one is given."""
    path, _, prefix = spec.partition(":")
    blob = read_weights_file(path)
    weights = blob["state_dict"] if "state_dict" in blob else blob["ema"]
    return {k: v for k, v in weights.items() if k.startswith(prefix)}


def initial_weights(cfg: dict, inits: list[str]) -> dict[str, torch.Tensor]:
    """Weights a new run starts from: for the inter stage with `residual_from_keyframe = true`, the
    keyframe codec's weights in the residual codec; then each `--init`, later ones taking precedence.

    A residual is an image-like signal, and the residual codec shares the keyframe
    codec's architecture, so it starts from a working transform and entropy model
    instead of random weights.
    """
    start: dict[str, torch.Tensor] = {}
    if cfg.get("stage") == "inter" and cfg.get("residual_from_keyframe", False):
        keyframe = load_keyframe(cfg.get("keyframe_weights"), "cpu").model
        start.update({f"residual.{k}": v for k, v in keyframe.state_dict().items()})
    for spec in inits:
        start.update(load_init(spec))
    return start


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vcodec train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("--run-dir", type=Path, help="checkpoints and logs (default runs/<config name>)")
    ap.add_argument("--steps", type=int, help="train until this total step count (default: config total_steps)")
    ap.add_argument("--minutes", type=float, help="stop after this much wall time")
    ap.add_argument("--init", action="append", default=[], metavar="PATH[:PREFIX]",
                    help="initialize a new run from exported weights or a checkpoint's EMA, optionally only the "
                         "tensors whose names start with PREFIX (e.g. runs/motion/checkpoint.pt:motion.); "
                         "repeatable, later ones win")
    ap.add_argument("--export", type=Path, help="export the EMA weights here when done")
    ap.add_argument("--threads", type=int, help="torch CPU threads per process")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="bf16 autocast (parameters, optimizer and likelihoods stay float32) or plain fp32; "
                         "auto: bf16 on CUDA, fp32 on CPU (docs/TRAINING.md has CPU timings)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _distributed(device: str) -> tuple[int, int, str]:
    """(rank, world size, device) — initializes the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return rank, world, device


def parameter_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cfg = tomllib.loads(args.config.read_text())
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("vcodec: error: CUDA was requested but is not available", file=sys.stderr)
        return 1
    rank, world, device = _distributed(args.device)
    train_cfg, data_cfg = cfg.get("train", {}), cfg.get("data", {})
    seed = int(train_cfg.get("seed", 0))
    torch.manual_seed(seed + rank)
    run_dir = args.run_dir or Path("runs") / args.config.stem

    stage = cfg.get("stage", "keyframe")
    model = build_model(cfg).to(device)
    frozen = freeze(model, train_cfg.get("freeze", []))
    if frozen and rank == 0:
        print(f"frozen: {frozen} tensors under {', '.join(train_cfg['freeze'])}", file=sys.stderr)
    schedule = Schedule(lr=train_cfg.get("lr", 5e-4), warmup=train_cfg.get("warmup", 300),
                        total_steps=train_cfg.get("total_steps", 100_000),
                        final_lr_ratio=train_cfg.get("final_lr_ratio", 0.05))
    block_choices = [int(b) for b in train_cfg.get("block_motion", [])]  # per P-frame: 0 motion codec, B blocks
    trainer = Trainer(model, run_dir, schedule, clip=train_cfg.get("clip", 1.0), ema_decay=train_cfg.get("ema", 0.999),
                      checkpoint_minutes=train_cfg.get("checkpoint_minutes", 10.0), rank=rank, world=world,
                      lr_scale=train_cfg.get("lr_scale"), find_unused=any(block_choices),
                      module=ChainLoss(model) if stage in ("inter", "inter_multi") else None)
    if trainer.resume():
        if rank == 0:
            print(f"resumed {run_dir} at step {trainer.step}", file=sys.stderr)
    else:
        start = initial_weights(cfg, args.init)
        if start:
            trainer.init_from(start)
            if rank == 0:
                print(f"initialized {len(start)} tensors from {', '.join(args.init) or cfg.get('keyframe_weights')}",
                      file=sys.stderr)

    crop = int(data_cfg.get("crop", 128))
    pool: list[torch.Tensor] = []
    if stage == "keyframe":
        for root in data_cfg.get("images", []):
            pool += load_images(root, crop)
        for root in data_cfg.get("videos", []):
            pool += load_video_frames(root, crop, stride=int(data_cfg.get("video_stride", 4)),
                                      exclude=data_cfg.get("exclude", ()))
    elif stage != "motion":  # the motion stage trains on synthetic flow fields
        for root in data_cfg.get("videos", []):
            pool += load_clips(root, crop, exclude=data_cfg.get("exclude", ()))
    if rank == 0:
        print(f"{stage} training pool: {len(pool)} items; {world} process(es) on {device}", file=sys.stderr)
    sampler = CropSampler(pool, crop, seed, rank) if stage != "motion" else None
    batch = int(train_cfg.get("batch", 8))
    frames = {"keyframe": 0, "flow": 2, "motion_warp": 2, "inter": 2}.get(stage, 1 + int(train_cfg.get("p_frames", 4)))
    forward = trainer.forward_module
    keyframe = None
    if stage in ("motion_warp", "inter", "inter_multi"):
        keyframe = load_keyframe(cfg.get("keyframe_weights"), device).model
        keyframe.requires_grad_(False)
    mc_weight, mc_steps = float(train_cfg.get("mc_weight", 0.0)), int(train_cfg.get("mc_steps", 1))

    def losses(step: int):
        q = sample_quality(batch, model.levels, step * world + rank, seed).to(device)
        if sampler is None:
            return motion_loss(model, q, step * world + rank, seed, crop // 2,
                               float(train_cfg.get("flow_weight", 0.0025)))
        x = sampler.batch(step, batch, frames).to(device)
        if stage == "keyframe":
            return rd_loss(model, x, q, forward)
        if stage == "flow":
            return flow_loss(model, x, step, seed, float(train_cfg.get("photometric_weight", 10.0)))
        if stage == "motion_warp":
            return motion_warp_loss(model, keyframe, x, q, int(train_cfg.get("flow_refine_steps", 20)))
        blocks = sample_blocks(frames - 1, block_choices, step * world + rank, seed) if block_choices else None
        return forward(keyframe, x, q, mc_weight=mc_weight * max(0.0, 1 - step / mc_steps),
                       refine_steps=int(train_cfg.get("flow_refine_steps", 0)),
                       propagate=bool(train_cfg.get("propagate", False)), blocks=blocks,
                       vector_rd=float(train_cfg.get("block_vector_rd", 0.0)))

    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.startswith("cuda"))
    if bf16 and device == "cpu" and not cpu_has_bf16():
        print("warning: this CPU has no native bf16 arithmetic; bf16 autocast will be far slower than fp32 "
              "(a 5x5 convolution measured 100x slower): use --precision fp32", file=sys.stderr)

    def step_fn(step: int):
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            return losses(step)

    validate, val_cfg = None, cfg.get("validation", {})
    if stage == "keyframe" and val_cfg.get("videos") and rank == 0:
        validator = KeyframeValidator(val_cfg["videos"], int(val_cfg.get("frames", 2)), int(val_cfg.get("crop", 256)),
                                      tuple(val_cfg.get("qualities", (1, 4, 7))))

        def validate(step: int) -> None:
            validator(model, trainer.ema, step, run_dir)

    steps = args.steps or schedule.total_steps
    t0 = time.time()
    trainer.run(step_fn, steps, args.minutes, progress=not args.quiet, validate=validate,
                validate_every=int(val_cfg.get("every_steps", 0)))
    if world > 1:
        (run_dir / f"replica_{rank}.sha256").write_text(parameter_digest(model))
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        print(f"stopped at step {trainer.step} after {time.time() - t0:.0f} s", file=sys.stderr)
    if args.export and rank == 0:
        model.load_state_dict(trainer.ema)
        meta = {"config": cfg, "steps": trainer.step, "cpu_hours": round(trainer.elapsed / 3600, 3)}
        digest = save_weights(args.export, model.cpu().eval(), meta)
        print(json.dumps({"exported": str(args.export), "sha256": digest}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
