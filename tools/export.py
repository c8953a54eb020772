"""Export a training checkpoint's EMA weights in shipped form (fp16 + coding tables) plus a manifest.

The manifest (same name, .json) records the file's sha256, steps, CPU hours and config;
tools/eval_rd.py adds its evaluation figures to it when they were measured on these weights.

    python tools/export.py configs/keyframe.toml runs/keyframe/checkpoint.pt vcodec/weights/keyframe.pt

With --trainable-only it writes a resume point instead: the EMA of only the tensors the config trains (not
under its `freeze` prefixes), fp16. For a stage that trains a small part of a model (a decoder-side stage)
this is a few MB, small enough to keep in the repository where `runs/` is not, and
`vcodec train CONFIG --init SHIPPED.pt --init RESUME.pt` starts a new run from exactly those weights.

With --base SHIPPED.pt the checkpoint may be such a resume point: its tensors are laid over the shipped
weights and exported as the run's EMA would be, keeping the resume point's steps and CPU time.

    python tools/export.py configs/X.toml checkpoints/X.pt runs/X.pt --base vcodec/weights/inter.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcodec.training.run import build_model  # noqa: E402
from vcodec.zoo import read_weights_file, save_weights, write_weights_file  # noqa: E402


def save_resume_point(path: Path, cfg: dict, state: dict) -> dict:
    """Write the EMA tensors `cfg` trains (fp16) with the checkpoint's step and time; returns its summary.
    `--init` reads the "ema" entry like a training checkpoint's."""
    frozen = tuple(cfg.get("train", {}).get("freeze", []))
    ema = {k: v.half() if v.dtype.is_floating_point else v
           for k, v in state["ema"].items() if not k.startswith(frozen)}
    if not ema:
        raise SystemExit("--trainable-only: the config freezes every tensor")
    write_weights_file(path, {"ema": ema, "step": int(state["step"]), "elapsed": float(state["elapsed"])})
    return {"output": str(path), "tensors": len(ema), "steps": int(state["step"]), "bytes": path.stat().st_size}


def over_base(base: Path, resume: dict) -> dict:
    """A checkpoint-like state whose EMA is the shipped weights at `base` with the resume point's tensors
    laid over them (float32, as a run's EMA is)."""
    blob = read_weights_file(base)
    ema = {k: v.float() if v.dtype.is_floating_point else v for k, v in blob["state_dict"].items()}
    unknown = set(resume["ema"]) - set(ema)
    if unknown:
        raise SystemExit(f"--base: {len(unknown)} resume-point tensors are not in {base} (e.g. {min(unknown)})")
    ema.update({k: v.float() if v.dtype.is_floating_point else v for k, v in resume["ema"].items()})
    return {"ema": ema, "step": resume["step"], "elapsed": resume["elapsed"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    ap.add_argument("--meta", default="{}", help="extra JSON merged into the manifest (e.g. eval numbers)")
    ap.add_argument("--trainable-only", action="store_true",
                    help="write a resume point: only the EMA tensors the config does not freeze")
    ap.add_argument("--base", type=Path, help="shipped weights under a resume point given as the checkpoint")
    args = ap.parse_args(argv)
    cfg = tomllib.loads(args.config.read_text())
    if args.base:
        if args.raw or args.trainable_only:
            raise SystemExit("--base exports a resume point's EMA: not with --raw or --trainable-only")
        state = over_base(args.base, read_weights_file(args.checkpoint))
    else:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if args.trainable_only:
        print(json.dumps(save_resume_point(args.output, cfg, state)))
        return 0
    model = build_model(cfg)
    model.load_state_dict(state["model"] if args.raw else state["ema"])
    meta = {"config": cfg, "steps": int(state["step"]), "cpu_hours": round(float(state["elapsed"]) / 3600, 3)}
    meta.update(json.loads(args.meta))
    digest = save_weights(args.output, model.eval(), meta)
    manifest = {"weights": args.output.name, "sha256": digest, "bytes": args.output.stat().st_size,
                "role": "keyframe" if cfg.get("stage", "keyframe") == "keyframe" else "inter", **meta}
    args.output.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"output": str(args.output), "sha256": digest, "steps": meta["steps"],
                      "bytes": args.output.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
