"""Export a training checkpoint's EMA weights in shipped form (fp16 + coding tables) plus a manifest.

The manifest (same name, .json) records the file's sha256, steps, CPU hours and config;
tools/eval_rd.py adds its evaluation figures to it when they were measured on these weights.

    python tools/export.py configs/keyframe.toml runs/keyframe/checkpoint.pt vcodec/weights/keyframe.pt
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
from vcodec.zoo import save_weights  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    ap.add_argument("--meta", default="{}", help="extra JSON merged into the manifest (e.g. eval numbers)")
    args = ap.parse_args(argv)
    cfg = tomllib.loads(args.config.read_text())
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
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
