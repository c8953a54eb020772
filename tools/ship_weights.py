"""Install trained weights as the package's shipped weights and write their manifest.

    python tools/ship_weights.py runs/inter_18_prior.pt --stage-manifest runs/inter_18.json \
        --history "run runs/inter_18: ..." --measured "tools/ab_weights.py against the previous weights: ..."

A shipped manifest (vcodec/weights/ROLE.json) describes the whole training path, not only the last stage:
the stage's config, steps and CPU hours come from its export manifest (tools/export.py), its CPU hours are
added to the previous manifest's cumulative total and its description is appended to the history. A
temporal-prior fit recorded in the weights file (tools/fit_temporal_prior.py) is copied in. The previous eval
block is dropped because it measured other weights; tools/eval_rd.py writes the new one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcodec.fileio import atomic_output  # noqa: E402
from vcodec.zoo import DEFAULT_INTER, DEFAULT_KEYFRAME, read_weights_file, sha256_file  # noqa: E402


def shipped_manifest(weights: Path, name: str, stage: dict, previous: dict, history: str, measured: str) -> dict:
    """The manifest for `weights`, shipped as `name`, as the successor of `previous` after the stage `stage`."""
    blob = read_weights_file(weights)
    embedded = json.loads(blob["meta"]) if isinstance(blob, dict) and "meta" in blob else {}
    stage_hours = float(stage["cpu_hours"])
    manifest = {
        "weights": name,
        "sha256": sha256_file(weights),
        "bytes": weights.stat().st_size,
        "role": stage.get("role", previous.get("role")),
        "config": stage["config"],
        "steps": int(stage["steps"]),
        "cpu_hours": round(float(previous.get("cpu_hours", 0.0)) + stage_hours, 3),
        "history": "; ".join(part for part in (previous.get("history", ""), history) if part),
        "stage_steps": int(stage["steps"]),
        "stage_cpu_hours": round(stage_hours, 3),
        "stored": previous.get("stored", "gzip-compressed torch.save file (vcodec.zoo.save_weights)"),
    }
    if "temporal_prior" in embedded:
        manifest["temporal_prior"] = embedded["temporal_prior"]
    if measured:
        manifest["measured_vs_previous"] = measured
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", type=Path, help="the new weights (exported, prior fitted where it applies)")
    ap.add_argument("--stage-manifest", type=Path, required=True, help="tools/export.py's manifest of the stage")
    ap.add_argument("--history", required=True, help="how this stage was run, appended to the history")
    ap.add_argument("--measured", default="", help="its measured effect against the weights it replaces")
    ap.add_argument("--dest", type=Path, help="weights to replace (default: the shipped ones of the stage's role)")
    args = ap.parse_args(argv)
    for path in (args.weights, args.stage_manifest):
        if not path.is_file():
            ap.error(f"not found: {path}")
    stage = json.loads(args.stage_manifest.read_text())
    if args.dest is None:
        args.dest = DEFAULT_KEYFRAME if stage.get("role") == "keyframe" else DEFAULT_INTER
    if args.weights.resolve() == args.dest.resolve():
        ap.error("the new weights are already the shipped file")
    previous_path = args.dest.with_suffix(".json")
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    manifest = shipped_manifest(args.weights, args.dest.name, stage, previous, args.history, args.measured)
    with atomic_output(args.dest) as tmp:
        shutil.copyfile(args.weights, tmp)
    with atomic_output(previous_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"shipped": str(args.dest), "sha256": manifest["sha256"], "cpu_hours": manifest["cpu_hours"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
