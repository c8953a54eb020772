"""Rate-distortion comparison of vcodec against conventional codecs on one clip.

Everything is measured, nothing estimated: vcodec's bits are the bytes of real
.lvc files, the anchors' bits are their packet sizes, and every codec's decoded
frames are compared with the same source planes. Results go to results.json
(schema in docs/COMPARE.md), results.csv and rd.png.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from vcodec import api
from vcodec.anchors import DEFAULT_CRFS, encode_anchor, encode_anchor_at_bitrate, label
from vcodec.bd import MIN_OVERLAP, bd_psnr, bd_rate, overlap
from vcodec.codec import KEYFRAME_OFFSET, P_OFFSETS, MotionSearch
from vcodec.color import YUVFrame, yuv420_to_rgb
from vcodec.errors import UserError
from vcodec.metrics import frame_psnr, frame_psnr_rgb, mean_metrics, ms_ssim
from vcodec.video import VideoWriter, read_frames, source_kbps

SCHEMA = "vcodec-compare-1"
DEFAULT_QUALITIES = [0, 1, 2, 3, 4, 5, 6, 7]


def measure(source: list[YUVFrame], decoded: list[YUVFrame], bits: int, fps: Fraction,
            per_frame: bool = False) -> dict:
    """One RD point: rate figures plus mean per-frame quality metrics (and the per-frame PSNR-YUV)."""
    if len(decoded) != len(source):
        raise RuntimeError(f"decoded {len(decoded)} frames for {len(source)} source frames")
    rows = [dict(frame_psnr(a, b), psnr_rgb=frame_psnr_rgb(a, b), ms_ssim_y=ms_ssim(a.y, b.y))
            for a, b in zip(source, decoded)]
    pixels = source[0].width * source[0].height * len(source)
    point = {"bits": bits, "bpp": bits / pixels, "kbps": bits * float(fps) / len(source) / 1000,
             **mean_metrics(rows)}
    if per_frame:
        point["frame_psnr_yuv"] = [round(r["psnr_yuv"], 4) for r in rows]
    return point


@dataclass
class Comparison:
    input: str
    width: int
    height: int
    fps: Fraction
    frames: int
    intra_period: int
    codecs: dict[str, dict] = field(default_factory=dict)
    bd: dict[str, dict] = field(default_factory=dict)
    equal_bitrate: dict | None = None

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "input": self.input, "width": self.width, "height": self.height,
                "fps": str(self.fps), "frames": self.frames, "intra_period": self.intra_period,
                "metric_averaging": "mean of per-frame values", "codecs": self.codecs, "bd": self.bd,
                "equal_bitrate": self.equal_bitrate}

    def sentence(self, metric: str = "psnr_yuv") -> str:
        """One actionable sentence about the first anchor."""
        if not self.bd:
            return "No anchor was run."
        name, result = next(iter(self.bd.items()))
        anchor = self.codecs[name]["label"]
        value = result.get(f"bd_rate_{metric}")
        if value is None:
            metric_name = metric.upper().replace("_", "-")
            return (f"vcodec and {anchor} reach no common {metric_name} range on this clip, so there is no "
                    "equal-quality comparison: see the table and rd.png.")
        direction = "fewer" if value < 0 else "more"
        note = "" if result["overlap"] >= MIN_OVERLAP else " (curves overlap little: treat as rough)"
        return f"At equal PSNR-YUV, vcodec needs {abs(value):.0f}% {direction} bits than {anchor}{note}."


def _vcodec_points(source, fps, qualities, intra_period, weights, work: Path, bar, inter_weights=None,
                   effort: int = 0, motion: MotionSearch | None = None,
                   keyframe_offset: float = KEYFRAME_OFFSET, p_offsets: tuple[float, ...] = P_OFFSETS) -> list[dict]:
    clip = work / "source.mkv"
    with VideoWriter(clip, source[0].width, source[0].height, fps) as w:
        for f in source:
            w.write(f)
    points = []
    for q in qualities:
        stream = work / f"vcodec_q{q}.lvc"
        api.encode(clip, stream, quality=q, intra_period=intra_period, weights=weights, progress=False,
                   inter_weights=inter_weights, effort=effort, motion=motion, keyframe_offset=keyframe_offset,
                   p_offsets=p_offsets)
        back = work / f"vcodec_q{q}.y4m"
        api.decode(stream, back, device="cpu", weights=weights, progress=False, inter_weights=inter_weights)
        decoded, _ = read_frames(back)
        point = {"quality": q, **measure(source, decoded, stream.stat().st_size * 8, fps, per_frame=True)}
        packets = api.info(stream).packets
        for kind in ("I", "P"):
            sizes = [p["bytes"] for p in packets if p["type"] == kind]
            point[f"{kind.lower()}_frame_bytes_mean"] = sum(sizes) / len(sizes) if sizes else None
            point[f"{kind.lower()}_frames"] = len(sizes)
        points.append(point)
        if bar is not None:
            bar.update(1)
    return points


def anchor_codec(source: list[YUVFrame], fps: Fraction, name: str, intra_period: int, preset: str | None,
                 bar=None) -> dict:
    """RD points of one anchor over its CRF sweep, as a results.json codec entry."""
    points, used = [], preset
    for crf in DEFAULT_CRFS[name]:
        r = encode_anchor(source, name, crf, intra_period, fps, preset)
        used = r.preset
        points.append({"crf": crf, **measure(source, r.frames, r.bits, fps)})
        if bar is not None:
            bar.update(1)
    config = {"preset": used, "keyint": intra_period, "bframes": 0}
    return {"label": label(name, used), "config": config, "points": points}


def bd_entry(anchor: list[dict], test: list[dict]) -> dict:
    """BD-rate and BD-quality of `test` against `anchor` for the reported metrics."""
    entry: dict = {}
    for metric in ("psnr_yuv", "psnr_y", "ms_ssim_y"):
        args = ([p["kbps"] for p in anchor], [p[metric] for p in anchor],
                [p["kbps"] for p in test], [p[metric] for p in test])
        entry[f"bd_rate_{metric}"] = bd_rate(*args)
        entry[f"bd_{metric}"] = bd_psnr(*args)
    entry["overlap"] = overlap([p["psnr_yuv"] for p in anchor], [p["psnr_yuv"] for p in test])
    return entry


def vcodec_codec(source: list[YUVFrame], fps: Fraction, qualities: list[float], intra_period: int,
                 weights: str | os.PathLike | None = None, bar=None,
                 inter_weights: str | os.PathLike | None = None, effort: int = 0,
                 motion: MotionSearch | None = None, keyframe_offset: float = KEYFRAME_OFFSET,
                 p_offsets: tuple[float, ...] = P_OFFSETS) -> dict:
    """RD points of vcodec over `qualities`, as a results.json codec entry."""
    with tempfile.TemporaryDirectory() as tmp:
        points = _vcodec_points(source, fps, qualities, intra_period, weights, Path(tmp), bar, inter_weights,
                                effort, motion, keyframe_offset, p_offsets)
    config = {"intra_period": intra_period, "effort": effort, "keyframe_offset": keyframe_offset}
    if p_offsets:
        config["p_offsets"] = list(p_offsets)
    if motion is not None:
        config["motion"] = {"flow_steps": motion.flow_steps, "motion_offsets": list(motion.motion_offsets)}
    return {"label": "vcodec", "config": config, "points": points}


def equal_bitrate_view(source: list[YUVFrame], fps: Fraction, kbps: float, out: Path, intra_period: int,
                       preset: str | None = None, weights: str | os.PathLike | None = None,
                       inter_weights: str | os.PathLike | None = None, effort: int = 0) -> dict:
    """vcodec (rate control) and H.264 (CRF bisected to the rate) at one bitrate, plus a side-by-side PNG."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip, stream, back = work / "source.mkv", work / "rc.lvc", work / "rc.y4m"
        with VideoWriter(clip, source[0].width, source[0].height, fps) as w:
            for f in source:
                w.write(f)
        api.encode(clip, stream, intra_period=intra_period, weights=weights, progress=False, bitrate=kbps,
                   inter_weights=inter_weights, effort=effort)
        api.decode(stream, back, device="cpu", weights=weights, progress=False, inter_weights=inter_weights)
        ours, _ = read_frames(back)
        ours_point = measure(source, ours, stream.stat().st_size * 8, fps)
    h264 = encode_anchor_at_bitrate(source, "x264", kbps, intra_period, fps, preset)
    theirs_point = measure(source, h264.frames, h264.bits, fps)
    index = len(source) // 2
    view = {"target_kbps": kbps, "frame": index, "vcodec": ours_point, "x264": theirs_point,
            "image": "side_by_side.png"}
    side_by_side(source[index], h264.frames[index], ours[index], theirs_point, ours_point,
                 label("x264", h264.preset), out / "side_by_side.png")
    return view


def side_by_side(src: YUVFrame, h264: YUVFrame, ours: YUVFrame, h264_point: dict, ours_point: dict,
                 h264_label: str, path: Path, crop: int = 320) -> None:
    """Same crop (centre, up to crop x crop pixels) of source, H.264 and vcodec, in RGB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = src.height, src.width
    ch, cw = min(crop, h), min(crop, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    panels = [("source", src, None), (h264_label, h264, h264_point), ("vcodec", ours, ours_point)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6), dpi=110)
    for ax, (name, frame, point) in zip(axes, panels):
        ax.imshow(yuv420_to_rgb(frame)[top : top + ch, left : left + cw], interpolation="nearest")
        ax.set_axis_off()
        if point is None:
            ax.set_title(name)
        else:
            psnr_here = frame_psnr(src, frame)["psnr_yuv"]
            ax.set_title(f"{name}\n{point['kbps']:.0f} kbps, PSNR-YUV {psnr_here:.2f} dB (this frame)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_compare(input: str | os.PathLike, out_dir: str | os.PathLike, qualities: list[float] | None = None,
                anchors: list[str] | None = None, intra_period: int | None = None, frames: int | None = 32,
                preset: str | None = None, weights: str | os.PathLike | None = None,
                progress: bool = True, at_bitrate: float | str | None = None,
                inter_weights: str | os.PathLike | None = None, effort: int = 0) -> Comparison:
    """Compare vcodec with `anchors` on the first `frames` frames of `input`; write the outputs.

    `at_bitrate` (kbps, or "source" for the input's own video bitrate) adds the
    equal-bitrate view: both codecs at that rate and a side-by-side crop. `effort`
    is vcodec's encoder-side refinement (see `api.encode`).
    """
    qualities = qualities if qualities is not None else DEFAULT_QUALITIES
    anchors = anchors if anchors is not None else ["x264"]
    if intra_period is None:
        intra_period = api.default_intra_period(inter_weights)
    for name in anchors:
        if name not in DEFAULT_CRFS:
            raise UserError(f"unknown anchor '{name}' (available: {', '.join(DEFAULT_CRFS)})")
    if frames is not None and frames < 1:
        raise UserError("--frames must be at least 1")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    source, info = read_frames(input, max_frames=frames)
    if not source:
        raise UserError(f"{input} contains no video frames")
    out.mkdir(parents=True, exist_ok=True)
    result = Comparison(str(input), info.width, info.height, info.fps, len(source), intra_period)
    total = len(qualities) + sum(len(DEFAULT_CRFS[a]) for a in anchors)
    with tqdm(total=total, desc="compare", disable=not progress, leave=False) as bar:
        result.codecs["vcodec"] = vcodec_codec(source, info.fps, qualities, intra_period, weights, bar,
                                               inter_weights, effort)
        for name in anchors:
            result.codecs[name] = anchor_codec(source, info.fps, name, intra_period, preset, bar)
    for name in anchors:
        result.bd[name] = bd_entry(result.codecs[name]["points"], result.codecs["vcodec"]["points"])
    if at_bitrate is not None:
        kbps = source_kbps(input, len(source)) if at_bitrate == "source" else float(at_bitrate)
        result.equal_bitrate = equal_bitrate_view(source, info.fps, kbps, out, intra_period, preset, weights,
                                                  inter_weights, effort)
    write_outputs(result, out)
    return result


def write_outputs(result: Comparison, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(result.to_json(), indent=2))
    fields = ["codec", "setting", "bits", "bpp", "kbps", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_rgb",
              "ms_ssim_y"]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for name, codec in result.codecs.items():
            for p in codec["points"]:
                setting = f"q{p['quality']}" if "quality" in p else f"crf{p['crf']}"
                w.writerow({"codec": name, "setting": setting, **{k: round(v, 5) for k, v in p.items()
                                                                   if isinstance(v, float | int)}})
    plot_rd(result, out / "rd.png")


def plot_rd(result: Comparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for codec in result.codecs.values():
        pts = sorted(codec["points"], key=lambda p: p["kbps"])
        ax.plot([p["kbps"] for p in pts], [p["psnr_yuv"] for p in pts], marker="o", label=codec["label"])
    ax.set_xlabel("kbps")
    ax.set_ylabel("PSNR-YUV (dB)")
    ax.set_title(f"{Path(result.input).name}: {result.width}x{result.height}, {result.frames} frames, "
                 f"intra period {result.intra_period}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_table(result: Comparison) -> str:
    lines = [f"{'codec':26s} {'setting':>8s} {'kbps':>10s} {'bpp':>8s} {'PSNR-YUV':>9s} {'PSNR-Y':>7s} "
             f"{'MS-SSIM':>8s}"]
    for codec in result.codecs.values():
        for p in codec["points"]:
            setting = f"q{p['quality']:g}" if "quality" in p else f"crf{p['crf']}"
            lines.append(f"{codec['label']:26s} {setting:>8s} {p['kbps']:10.1f} {p['bpp']:8.4f} "
                         f"{p['psnr_yuv']:9.2f} {p['psnr_y']:7.2f} {p['ms_ssim_y']:8.4f}")
    for name, bd in result.bd.items():
        rate = bd["bd_rate_psnr_yuv"]
        rate_text = "n/a (no overlap)" if rate is None else f"{rate:+.1f}%"
        warn = "" if bd["overlap"] >= MIN_OVERLAP else f"  [warning: curves overlap {bd['overlap']:.0%}]"
        lines.append(f"BD-rate (PSNR-YUV) vs {result.codecs[name]['label']}: {rate_text}{warn}")
    if result.equal_bitrate:
        eq = result.equal_bitrate
        for name in ("x264", "vcodec"):
            p = eq[name]
            lines.append(f"at {eq['target_kbps']:.0f} kbps target: {name:7s} {p['kbps']:8.1f} kbps, "
                         f"PSNR-YUV {p['psnr_yuv']:.2f} dB, MS-SSIM {p['ms_ssim_y']:.4f}")
    return "\n".join(lines)
