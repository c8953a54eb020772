"""Plot a training run: loss / bpp / PSNR against steps, and the validation RD points.

    python tools/plot_training.py runs/keyframe [--out runs/keyframe/training.png]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    log = list(csv.DictReader(open(args.run_dir / "log.csv")))
    val_path = args.run_dir / "val.csv"
    val = list(csv.DictReader(open(val_path))) if val_path.exists() else []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    steps = [int(r["step"]) for r in log]
    for ax, key in zip(axes[:2], ("psnr_yuv", "bpp")):
        ax.plot(steps, [float(r[key]) for r in log], lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel(f"training {key} (mean over sampled qualities)")
        ax.grid(alpha=0.3)
    ax = axes[2]
    if val:
        by_step: dict[int, list[tuple[float, float]]] = {}
        for r in val:
            by_step.setdefault(int(r["step"]), []).append((float(r["bpp"]), float(r["psnr_yuv"])))
        for step, pts in sorted(by_step.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"step {step}")
        ax.legend(fontsize=7)
    ax.set_xlabel("validation bpp (real bytes)")
    ax.set_ylabel("validation PSNR-YUV (dB)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = args.out or args.run_dir / "training.png"
    fig.savefig(out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
