"""Train a vcodec model from a config: `python tools/train.py configs/keyframe.toml`.

Resumes from RUN_DIR/checkpoint.pt when it exists. `--init` starts a new run
from exported weights (e.g. the shipped ones). `--export` writes shipped-format
weights from the run's EMA at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcodec.models.keyframe import KeyframeCodec, KeyframeConfig  # noqa: E402
from vcodec.training.data import CropSampler, load_images, load_video_frames  # noqa: E402
from vcodec.training.keyframe import rd_loss, sample_quality  # noqa: E402
from vcodec.training.trainer import Schedule, Trainer  # noqa: E402
from vcodec.zoo import save_weights  # noqa: E402


def build_keyframe(cfg: dict) -> KeyframeCodec:
    model_cfg = cfg.get("model", {})
    kw = {k: model_cfg[k] for k in ("n", "m") if k in model_cfg}
    if "lambdas" in model_cfg:
        kw["lambdas"] = tuple(model_cfg["lambdas"])
    return KeyframeCodec(KeyframeConfig(**kw))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config", type=Path)
    ap.add_argument("--run-dir", type=Path, help="where checkpoints and logs go (default runs/<config name>)")
    ap.add_argument("--steps", type=int, help="train until this total step count (default: config total_steps)")
    ap.add_argument("--minutes", type=float, help="stop after this much wall time")
    ap.add_argument("--init", type=Path, help="initialize a new run from exported weights")
    ap.add_argument("--export", type=Path, help="export the EMA weights here when done")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)

    cfg = tomllib.loads(args.config.read_text())
    if args.threads:
        torch.set_num_threads(args.threads)
    train_cfg = cfg.get("train", {})
    data_cfg = cfg.get("data", {})
    seed = int(train_cfg.get("seed", 0))
    torch.manual_seed(seed)
    run_dir = args.run_dir or Path("runs") / args.config.stem

    model = build_keyframe(cfg)
    schedule = Schedule(
        lr=train_cfg.get("lr", 5e-4), warmup=train_cfg.get("warmup", 300),
        total_steps=train_cfg.get("total_steps", 100_000), final_lr_ratio=train_cfg.get("final_lr_ratio", 0.05),
    )
    trainer = Trainer(model, run_dir, schedule, clip=train_cfg.get("clip", 1.0),
                      ema_decay=train_cfg.get("ema", 0.999),
                      checkpoint_minutes=train_cfg.get("checkpoint_minutes", 10.0))
    if trainer.resume():
        print(f"resumed {run_dir} at step {trainer.step}", file=sys.stderr)
    elif args.init:
        blob = torch.load(args.init, map_location="cpu", weights_only=True)
        trainer.init_from(blob["state_dict"])
        print(f"initialized from {args.init}", file=sys.stderr)

    crop = int(data_cfg.get("crop", 128))
    pool = []
    for root in data_cfg.get("images", []):
        pool += load_images(root, crop)
    for root in data_cfg.get("videos", []):
        pool += load_video_frames(root, crop, stride=int(data_cfg.get("video_stride", 4)))
    print(f"training pool: {len(pool)} frames", file=sys.stderr)
    sampler = CropSampler(pool, crop, seed)
    batch = int(train_cfg.get("batch", 8))
    levels = model.levels

    def step_fn(step: int):
        x = sampler.batch(step, batch)
        return rd_loss(model, x, sample_quality(batch, levels, step, seed))

    steps = args.steps or schedule.total_steps
    t0 = time.time()
    trainer.run(step_fn, steps, args.minutes)
    print(f"stopped at step {trainer.step} after {time.time() - t0:.0f} s", file=sys.stderr)
    if args.export:
        model.load_state_dict(trainer.ema)
        meta = {"config": cfg, "steps": trainer.step, "cpu_hours": round(trainer.elapsed / 3600, 3)}
        digest = save_weights(args.export, model, meta)
        print(json.dumps({"exported": str(args.export), "sha256": digest}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
