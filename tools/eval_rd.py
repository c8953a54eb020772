"""Rate-distortion evaluation on the shared eval clips; writes docs/RESULTS.md.

    python tools/eval_rd.py [--frames 32] [--speed] [--out docs/RESULTS.md]

For every clip: vcodec at each quality index (real .lvc bytes, decoded frames)
and each anchor configuration (x264 medium / veryslow, x265 medium; no B-frames;
keyint = each intra period) over a CRF sweep, all measured against the same
source planes. BD-rates use PSNR-YUV with piecewise cubic interpolation. With
--speed, encode/decode frames/s at 352x288 and 1280x720 are measured too.

With --reuse docs/results/rd.json, points of an earlier run that cannot have
changed are read back instead of measured again: the anchors' points when the
clip, frame count, preset and CRF sweep match, and vcodec's points when the
frame count, qualities, weights and coding source (`codec_source_digest`) also
match. A run that changes only the inter weights then re-measures only the
P-frame curves.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vcodec  # noqa: E402
from vcodec.anchors import DEFAULT_CRFS  # noqa: E402
from vcodec.compare import Comparison, anchor_codec, bd_entry, plot_rd, vcodec_codec  # noqa: E402
from vcodec.video import VideoWriter, frame_from_av, frame_to_av, read_frames  # noqa: E402
from vcodec.zoo import (  # noqa: E402
    DEFAULT_INTER,
    DEFAULT_KEYFRAME,
    codec_source_digest,
    inter_available,
    load_inter,
    load_keyframe,
    sha256_file,
)

REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = REPO.parent / "shared" / "data" / "video" / "eval"
SAMPLE = REPO / "data" / "sample.mp4"


def speed(src: Path, frames: int, size: tuple[int, int] | None, repeats: int = 3) -> dict:
    """Median encode/decode frames/s of `frames` frames (rescaled to `size`), whole-file API path."""
    clip_frames, info = read_frames(src, max_frames=frames)
    if size is not None:
        clip_frames = [frame_from_av(frame_to_av(f).reformat(width=size[0], height=size[1],
                                                            interpolation="LANCZOS")) for f in clip_frames]
    enc, dec = [], []
    with tempfile.TemporaryDirectory() as tmp:
        clip, stream, out = Path(tmp) / "c.mkv", Path(tmp) / "c.lvc", Path(tmp) / "c.y4m"
        with VideoWriter(clip, clip_frames[0].width, clip_frames[0].height, info.fps) as w:
            for f in clip_frames:
                w.write(f)
        for _ in range(repeats):
            t = time.perf_counter()
            vcodec.encode(clip, stream, quality=4, progress=False)
            enc.append(time.perf_counter() - t)
            t = time.perf_counter()
            vcodec.decode(stream, out, device="cpu", progress=False)
            dec.append(time.perf_counter() - t)
    return {"size": f"{clip_frames[0].width}x{clip_frames[0].height}", "frames": len(clip_frames),
            "encode_fps": len(clip_frames) / statistics.median(enc),
            "decode_fps": len(clip_frames) / statistics.median(dec),
            "encode_spread_s": [round(min(enc), 3), round(max(enc), 3)],
            "decode_spread_s": [round(min(dec), 3), round(max(dec), 3)]}


def rate_control_check(src: Path, source, fps, points: list[dict]) -> dict:
    """Encode with --bitrate at a mid-range target (geometric mean of the q3 and q4 rates)."""
    by_q = {p["quality"]: p["kbps"] for p in points}
    target = round((by_q.get(3, points[len(points) // 2]["kbps"]) * by_q.get(4, points[-1]["kbps"])) ** 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "c.mkv"
        with VideoWriter(clip, source[0].width, source[0].height, fps) as w:
            for f in source:
                w.write(f)
        r = vcodec.encode(clip, Path(tmp) / "c.lvc", bitrate=target, intra_period=1, progress=False)
    return {"target_kbps": target, "kbps": r.kbps, "error_pct": 100 * (r.kbps / target - 1)}


def fmt(v: float | None, spec: str = "+.1f", suffix: str = "%") -> str:
    return "n/a" if v is None else f"{v:{spec}}{suffix}"


def effort_section(files: list[Path]) -> list[str]:
    """Markdown for the `tools/ab_weights.py --effort-b N --json docs/results/effort_*.json` measurements."""
    if not files:
        return []
    lines = ["## Encoder effort (`vcodec encode --effort N`)", "",
             "BD-rate (PSNR-YUV, real bytes) of encoding with N refinement steps per frame against the default "
             "encoder, same weights and decoder. The times are wall seconds to encode, decode and measure all "
             "qualities of a clip, taken while other jobs shared the CPU: compare the two columns with each other, "
             "not with the speed tables.", "",
             "| intra period | frames | qualities | effort | clip | BD-rate | seconds, effort 0 | "
             "seconds, effort N |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    shipped = {"keyframe": sha256_file(DEFAULT_KEYFRAME), "inter": sha256_file(DEFAULT_INTER)}
    for f in files:
        d = json.loads(f.read_text())
        s = d["settings"]
        common = (f"| {s['intra_period']} | {s['frames']} | {'/'.join(f'{q:g}' for q in s['qualities'])} | "
                  f"{s['effort_b']} |")
        weights = s.get("weights_sha256")
        if weights:
            current = weights["keyframe_b"] == shipped["keyframe"] and weights["inter_b"] == shipped["inter"]
            notes.append(f"- intra period {s['intra_period']}: keyframe weights `{weights['keyframe_b'][:16]}`, "
                         f"inter weights `{weights['inter_b'][:16]}`"
                         + ("" if current else " (earlier weights, not the shipped ones)"))
        for r in d["results"]:
            bd = "n/a" if r["bd_rate"] is None else f"{r['bd_rate']:+.1f}%"
            lines.append(f"{common} {r['clip']} | {bd} | {r['seconds']['A']:.0f} | {r['seconds']['B']:.0f} |")
        if d.get("mean_bd_rate") is not None:
            lines.append(f"{common} mean | {d['mean_bd_rate']:+.1f}% | | |")
    if notes:
        lines += ["", "Measured with these weights (sha256 prefix):", "", *notes]
    lines += ["", "Reproduce with `python tools/ab_weights.py --intra-period P --frames F --qualities ... "
              "--effort-b N --json docs/results/effort_NAME.json`, then regenerate this file.", ""]
    return lines


def write_markdown(report: dict, path: Path, plots: Path) -> None:
    lines = ["# Results", "",
             "Measured with `python tools/eval_rd.py` (this file is generated by it). Every rate is real bytes: "
             "`.lvc` file sizes for vcodec (header and index included), packet sizes for the anchors. Every quality "
             "figure compares decoded 8-bit planes with the same source planes; clip figures are means of per-frame "
             "values. PSNR-YUV = (6·Y + U + V) / 8. BD-rates use PSNR-YUV and piecewise cubic interpolation over "
             "the overlapping quality range; negative = vcodec needs fewer bits.", "",
             f"- model: keyframe weights sha256 `{report['weights'][:16]}`, {report['steps']} training steps",
             f"- clips: first {report['frames']} frames of each; machine: {report['machine']}, "
             f"{report['threads']} threads per clip, {report.get('jobs', 1)} clip(s) at a time",
             ("- vcodec codes P-frames with inter weights `" + report["inter_weights"][:16] + "` at intra periods "
              "other than 1" if report.get("inter_weights") else
              "- no inter weights are shipped yet, so vcodec codes every frame as a keyframe (all-intra) and its "
              "curve is the same in every intra-period section"),
             "- the anchors use keyint = the intra period, no B-frames, no scene-cut keyframes, and otherwise the "
             "encoder's defaults for the preset (x264/x265 psychovisual tuning stays on; no `--tune psnr`)."]
    reused = sorted({part for data in report["clips"].values() for part in data.get("reused", [])})
    if reused:
        lines.append("- read back from the previous run's `rd.json` (`--reuse`; same clips, frames, CRF sweep, and for "
                     "vcodec the same weights and coding source), not measured again: " + ", ".join(reused))
    lines.append("")
    lines += ["## vcodec per quality index (all-intra)", "",
              "| clip | " + " | ".join(f"q{q:g}" for q in report["qualities"]) + " |",
              "| --- |" + " --- |" * len(report["qualities"])]
    for clip, data in report["clips"].items():
        cells = [f"{p['bpp']:.3f} bpp / {p['psnr_yuv']:.2f} dB" for p in data["vcodec"]["points"]]
        lines.append(f"| {clip} | " + " | ".join(cells) + " |")
    lines.append("")
    for period in report["intra_periods"]:
        lines += [f"## BD-rate of vcodec against anchors, anchors at intra period {period}", ""]
        names = list(next(iter(report["clips"].values()))["anchors"][str(period)].keys())
        labels = [next(iter(report["clips"].values()))["anchors"][str(period)][n]["label"] for n in names]
        lines += ["| clip | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(names)]
        for clip, data in report["clips"].items():
            cells = []
            for n in names:
                bd = data["bd"][str(period)][n]
                warn = "" if bd["overlap"] >= 0.5 else f" (overlap {bd['overlap']:.0%})"
                cells.append(fmt(bd["bd_rate_psnr_yuv"]) + warn)
            lines.append(f"| {clip} | " + " | ".join(cells) + " |")
        avg = report["average"][str(period)]
        lines.append("| **mean over eval clips** | " + " | ".join(fmt(avg[n]) for n in names) + " |")
        lines.append("")
    inter_periods = [p for p in report["intra_periods"] if p != 1]
    if report.get("inter_weights") and inter_periods:
        lines += ["## Inter coding: intra period against all-intra (vcodec only)", "",
                  "| clip | " + " | ".join(f"BD-rate ip{p} vs ip1" for p in inter_periods) +
                  " | mean P-frame / I-frame bytes (q4) | keyframes per quality index q0..q7 |",
                  "| --- |" + " --- |" * (len(inter_periods) + 2)]
        for clip, data in report["clips"].items():
            cells = [fmt(data["inter_vs_intra"][str(p)]["bd_rate_psnr_yuv"]) for p in inter_periods]
            pt = next((q for q in data[f"vcodec_ip{inter_periods[0]}"]["points"] if q["quality"] == 4),
                      data[f"vcodec_ip{inter_periods[0]}"]["points"][-1])
            ratio = (pt["p_frame_bytes_mean"] / pt["i_frame_bytes_mean"]) if pt.get("p_frame_bytes_mean") else None
            cells.append("n/a" if ratio is None else f"{ratio:.2f}")
            cells.append(" ".join(str(q.get("i_frames", "?")) for q in data[f"vcodec_ip{inter_periods[0]}"]["points"]))
            lines.append(f"| {clip} | " + " | ".join(cells) + " |")
        means = []
        for p in inter_periods:
            vals = [d["inter_vs_intra"][str(p)]["bd_rate_psnr_yuv"] for d in report["clips"].values()]
            means.append(None if None in vals else sum(vals) / len(vals))
        lines.append("| **mean over eval clips** | " + " | ".join(fmt(m) for m in means) + " | | |")
        lines += ["", "vcodec's encoder codes a keyframe wherever one costs less than the P-frame in rate-distortion "
                  "terms (scene cuts, `vcodec encode --no-scene-cuts` turns it off); the keyframe counts above "
                  "include those and the one that starts the clip. The anchors place keyframes only at the intra "
                  "period."]
        lines.append("")
        period = inter_periods[0]
        lines += [f"Per-frame PSNR-YUV across the first GOP (intra period {period}, quality 4, mean over clips): "
                  "drift shows as a downward slope.", ""]
        curves = []
        for data in report["clips"].values():
            pt = next((q for q in data[f"vcodec_ip{period}"]["points"] if q["quality"] == 4), None)
            if pt:
                curves.append(pt["frame_psnr_yuv"])
        if curves:
            n = min(len(c) for c in curves)
            mean = [sum(c[i] for c in curves) / len(curves) for i in range(n)]
            lines += ["| frame | " + " | ".join(str(i) for i in range(n)) + " |", "| --- |" + " --- |" * n,
                      "| PSNR-YUV | " + " | ".join(f"{v:.2f}" for v in mean) + " |", ""]
    if all("rate_control" in c for c in report["clips"].values()):
        lines += ["## Rate control (`vcodec encode --bitrate`, all-intra)", "",
                  "| clip | target kbps | achieved kbps | error |", "| --- | --- | --- | --- |"]
        for clip, data in report["clips"].items():
            rc = data["rate_control"]
            lines.append(f"| {clip} | {rc['target_kbps']} | {rc['kbps']:.1f} | {rc['error_pct']:+.1f}% |")
        lines.append("")
    lines += ["## RD curves (per clip, intra period 1)", ""]
    for clip in report["clips"]:
        lines.append(f"![{clip}](results/rd_{clip}_ip1.png)")
    lines.append("")
    if "speed" in report:
        lines += ["## Speed (CPU)", "", "| frame size | frames | encode frames/s | decode frames/s |",
                  "| --- | --- | --- | --- |"]
        for s in report["speed"]:
            lines.append(f"| {s['size']} | {s['frames']} | {s['encode_fps']:.2f} | {s['decode_fps']:.2f} |")
        lines += ["", "Median of 3 runs of the whole-file API (`vcodec.encode` / `vcodec.decode` to .y4m), "
                  "quality 4, including file I/O and the decoder's model load.", ""]
    bench = plots / "bench.json"
    if bench.exists():
        b = json.loads(bench.read_text())
        lines += ["## Speed and memory (`tools/bench.py`)", "", f"Machine: {b['machine']}.", "",
                  "| intra period | frame size | device | threads | frames | encode frames/s | decode frames/s | "
                  "decode, one frame after another | peak RSS MiB |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in b["results"]:
            seq = f"{r['decode_sequential_fps']:.2f}" if "decode_sequential_fps" in r else "n/a"
            lines.append(f"| {r.get('intra_period', 1)} | {r['size']} | {r['device']} | {r['threads']} | {r['frames']} "
                         f"| {r['encode_fps']:.2f} | {r['decode_fps']:.2f} | {seq} | {r['peak_rss_mib']:.0f} |")
        if "entropy" in b:
            e = b["entropy"]
            lines += ["", f"Entropy coding (constriction, {e['symbols']} real latent symbols): "
                      f"{e['encode_Msym_s']:.1f} M symbols/s encode, {e['decode_Msym_s']:.1f} M symbols/s decode."]
        lines += ["", "Frame-level encoder and decoder on frames in memory (no file I/O), quality 4, median of "
                  "repeated runs after a warm-up; each configuration in its own process. Intra period 1: every "
                  "frame a keyframe; intra period 32: a keyframe, then P-frames with the default motion search. "
                  "\"decode frames/s\" is "
                  "how the CLI decodes: when torch uses fewer threads than there are cores (or on CUDA), the next "
                  "frame's entropy decoding runs in a helper thread while the current frame is synthesized; "
                  "otherwise frames decode one after another. Reproduce with "
                  "`python tools/bench.py --json docs/results/bench.json`.", ""]
    lines += effort_section(sorted(plots.glob("effort_*.json")))
    lines += ["## Reproduce", "", "```bash",
              f"python tools/eval_rd.py --frames {report['frames']} --jobs {report.get('jobs', 1)} "
              f"--anchors {report['anchor_spec']}" + (" --speed" if "speed" in report else ""),
              "```", ""]
    path.write_text("\n".join(lines))


@dataclass(frozen=True)
class Reuse:
    """Which parts of an earlier report still hold for this run (see the module docstring)."""

    anchors: bool = False
    intra: bool = False
    inter: bool = False

    @classmethod
    def between(cls, previous: dict, current: dict) -> Reuse:
        same_frames = previous.get("frames") == current["frames"]
        intra = (same_frames and previous.get("qualities") == current["qualities"]
                 and previous.get("weights") == current["weights"]
                 and previous.get("codec_source") == current["codec_source"])
        return cls(anchors=same_frames, intra=intra,
                   inter=intra and previous.get("inter_weights") == current["inter_weights"])


def reused_anchor(previous: dict, period: int, name: str, key: str) -> dict | None:
    """An anchor's earlier entry, if it was measured over the CRF sweep this run would use."""
    codec = previous.get("anchors", {}).get(str(period), {}).get(key)
    if codec is None or [p["crf"] for p in codec["points"]] != list(DEFAULT_CRFS[name]):
        return None
    return codec


def evaluate_clip(src: Path, frames: int, qualities: list[float], periods: list[int], anchors: list[tuple[str, str]],
                  inter: bool, rate_control: bool, plots: Path, reuse: Reuse = Reuse(),
                  previous: dict | None = None) -> dict:
    """One clip's report entry: vcodec and every anchor at every intra period, BD-rates, RD plots.

    `previous` is this clip's entry in an earlier report; the parts `reuse` allows are taken from it."""
    source, info = read_frames(src, max_frames=frames)
    t = time.time()
    previous = previous or {}
    reused: list[str] = []

    def ours(period: int, key: str, allowed: bool) -> dict:
        if allowed and key in previous:
            reused.append(key)
            return previous[key]
        return vcodec_codec(source, info.fps, qualities, period)

    ours_by_period = {1: ours(1, "vcodec", reuse.intra)}
    entry = {"vcodec": ours_by_period[1], "anchors": {}, "bd": {}}
    for period in periods:
        if period != 1 and inter:
            ours_by_period[period] = ours(period, f"vcodec_ip{period}", reuse.inter)
            entry[f"vcodec_ip{period}"] = ours_by_period[period]
            entry.setdefault("inter_vs_intra", {})[str(period)] = bd_entry(ours_by_period[1]["points"],
                                                                          ours_by_period[period]["points"])
        comp = Comparison(str(src), info.width, info.height, info.fps, len(source), period)
        comp.codecs["vcodec"] = ours_by_period.get(period, ours_by_period[1])
        entry["anchors"][str(period)], entry["bd"][str(period)] = {}, {}
        for name, preset in anchors:
            key = f"{name}-{preset}"
            codec = reused_anchor(previous, period, name, key) if reuse.anchors else None
            if codec is None:
                codec = anchor_codec(source, info.fps, name, period, preset)
            else:
                reused.append(f"{key} ip{period}")
            entry["anchors"][str(period)][key] = codec
            entry["bd"][str(period)][key] = bd_entry(codec["points"], comp.codecs["vcodec"]["points"])
            comp.codecs[key] = codec
        plot_rd(comp, plots / f"rd_{src.stem}_ip{period}.png")
    if rate_control:
        if reuse.intra and "rate_control" in previous:
            entry["rate_control"] = previous["rate_control"]
            reused.append("rate_control")
        else:
            entry["rate_control"] = rate_control_check(src, source, info.fps, ours_by_period[1]["points"])
    entry["reused"] = reused
    first = entry["bd"][str(periods[0])]
    summary = {k: fmt(v["bd_rate_psnr_yuv"]) for k, v in first.items()}
    print(f"{src.stem}: {time.time() - t:.0f} s ({len(reused)} parts reused); BD-rate at intra period "
          f"{periods[0]}: {summary}", flush=True)
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="*", type=Path, default=sorted(EVAL_DIR.glob("*.mp4")))
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--qualities", type=float, nargs="*", default=[0, 1, 2, 3, 4, 5, 6, 7])
    ap.add_argument("--intra-periods", type=int, nargs="*", default=[1, 32])
    ap.add_argument("--anchors", default="x264:medium,x264:veryslow,x265:medium,svtav1:8")
    ap.add_argument("--no-rate-control", action="store_true", help="skip the rate-control accuracy check")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--jobs", type=int, default=1, help="clips evaluated in parallel (one thread each)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "RESULTS.md")
    ap.add_argument("--reuse", type=Path, metavar="RD_JSON",
                    help="an earlier run's rd.json: read back the points this run would measure the same")
    args = ap.parse_args(argv)
    if not args.clips:
        print(f"no eval clips found (looked in {EVAL_DIR})", file=sys.stderr)
        return 1
    anchors = [tuple(a.split(":")) for a in args.anchors.split(",")]
    model = load_keyframe()
    plots = args.out.parent / "results"
    plots.mkdir(parents=True, exist_ok=True)
    report: dict = {"frames": args.frames, "qualities": args.qualities, "intra_periods": args.intra_periods,
                    "weights": model.sha256, "steps": model.meta.get("steps"),
                    "threads": 1 if args.jobs > 1 else torch.get_num_threads(), "jobs": args.jobs,
                    "anchor_spec": args.anchors, "codec_source": codec_source_digest(),
                    "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "clips": {}}
    inter = inter_available()
    report["inter_weights"] = load_inter().sha256 if inter else None
    previous = json.loads(args.reuse.read_text()) if args.reuse else {}
    reuse = Reuse.between(previous, report) if previous else Reuse()
    earlier = [previous.get("clips", {}).get(src.stem) for src in args.clips]
    job = partial(evaluate_clip, frames=args.frames, qualities=args.qualities, periods=args.intra_periods,
                  anchors=anchors, inter=inter, rate_control=not args.no_rate_control, plots=plots, reuse=reuse)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            entries = [f.result() for f in [pool.submit(job, src, previous=e) for src, e in zip(args.clips, earlier)]]
    else:
        entries = [job(src, previous=e) for src, e in zip(args.clips, earlier)]
    for src, entry in zip(args.clips, entries):
        report["clips"][src.stem] = entry
    report["average"] = {}
    for period in args.intra_periods:
        avg = {}
        for name, preset in anchors:
            key = f"{name}-{preset}"
            vals = [c["bd"][str(period)][key]["bd_rate_psnr_yuv"] for c in report["clips"].values()]
            vals = [v for v in vals if v is not None]
            avg[key] = sum(vals) / len(vals) if vals else None
        report["average"][str(period)] = avg
    if args.speed:
        report["speed"] = [speed(SAMPLE, 10, None), speed(args.clips[0], 4, (1280, 720))]
    (plots / "rd.json").write_text(json.dumps(report, indent=2))
    write_markdown(report, args.out, plots)
    evaluated = {"clips": list(report["clips"]), "frames_per_clip": args.frames,
                 "mean_bd_rate_psnr_yuv": report["average"], "results": "docs/RESULTS.md"}
    for weights, sha in ((DEFAULT_KEYFRAME, model.sha256), (DEFAULT_INTER, report["inter_weights"])):
        manifest = weights.with_suffix(".json")  # record the figures beside the weights they were measured on
        if sha and manifest.exists():
            data = json.loads(manifest.read_text())
            if data.get("sha256") == sha:
                manifest.write_text(json.dumps({**data, "eval": {**evaluated, "sha256": sha}}, indent=2) + "\n")
    print(json.dumps(report["average"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
