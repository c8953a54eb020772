"""`vcodec` command line: encode, decode, info, compare.

User errors print one line on stderr and exit non-zero (1: bad input or option,
3: damaged or incompatible stream, 130: interrupted); no tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from vcodec import __version__
from vcodec.errors import StreamError, UserError

EXIT_USER, EXIT_STREAM, EXIT_DAMAGED, EXIT_INTERRUPTED = 1, 3, 4, 130


def _version_text() -> str:
    from vcodec.zoo import DEFAULT_INTER, DEFAULT_KEYFRAME, inter_available, load_inter, load_keyframe

    lines = [f"vcodec {__version__}"]
    for role, path, load in (("keyframe", DEFAULT_KEYFRAME, load_keyframe), ("inter", DEFAULT_INTER, load_inter)):
        if role == "inter" and not inter_available():
            lines.append("  inter model: not shipped (P-frames need --inter-weights; default intra period 1)")
            continue
        try:
            model = load()
            lines.append(f"  {role} model: {path.name} sha256 {model.sha256[:16]} "
                         f"quality 0-{model.model.levels - 1} ({model.meta.get('steps', '?')} training steps)")
        except UserError as exc:
            lines.append(f"  {role} model: unavailable ({exc})")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vcodec", description="Learned video codec.")
    p.add_argument("--version", action="store_true", help="show version and shipped models")
    sub = p.add_subparsers(dest="command")

    e = sub.add_parser("encode", help="encode video files to .lvc streams")
    e.add_argument("input", nargs="+", help="a video file; several files or folders encode in parallel")
    e.add_argument("-o", "--output", required=True, help="output .lvc file (a directory for several inputs)")
    e.add_argument("-j", "--jobs", type=int, help="parallel encodes for several inputs (default: one per core)")
    e.add_argument("-q", "--quality", type=float, help="quality index (higher = more bits), default 4")
    e.add_argument("-b", "--bitrate", type=float, help="target bitrate in kbps (rate control picks the quality)")
    e.add_argument("--intra-period", type=int, help="longest GOP in frames: 1 = all-intra, 0 = first frame only "
                   "(default 32 with inter weights, else 1)")
    e.add_argument("--no-scene-cuts", dest="scene_cuts", action="store_false",
                   help="keyframes only where the intra period puts them (default: also where a keyframe "
                        "costs less than a P-frame)")
    e.add_argument("--effort", type=int, default=0,
                   help="refine each frame's latents with N gradient steps: fewer bits, much slower encoding "
                        "(default 0; docs/RESULTS.md has the measured trade-off)")
    e.add_argument("--fast", action="store_true",
                   help="skip the P-frames' motion search (flow sharpening, motion quality choice): faster "
                        "encoding, more bits (docs/TRAINING.md)")
    e.add_argument("--keyframe-offset", type=float,
                   help="code each GOP's keyframe this many quality steps above its P-frames (fixed quality "
                        "with P-frames only; default: vcodec.codec.KEYFRAME_OFFSET, docs/TRAINING.md)")
    e.add_argument("--p-offsets", type=float, nargs="+", metavar="OFFSET",
                   help="P-frame quality offsets from the quality, cycled from each keyframe (fixed quality only; "
                        "default: vcodec.codec.P_OFFSETS, docs/TRAINING.md)")
    e.add_argument("--frames", type=int, help="encode only the first N frames")
    e.add_argument("--weights", help="keyframe weights file (default: the shipped model)")
    e.add_argument("--inter-weights", help="inter (P-frame) weights file (default: the shipped model, if any)")
    e.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    e.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    d = sub.add_parser("decode", help="decode a .lvc stream to .y4m, .mkv (FFV1) or .mp4 (H.264)")
    d.add_argument("input")
    d.add_argument("-o", "--output", required=True, help="output video; the extension picks the format")
    d.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    d.add_argument("--start", type=int, default=0, help="first frame to output")
    d.add_argument("--frames", type=int, help="number of frames to output")
    d.add_argument("--crf", type=int, help="MP4 only: lossy H.264 viewing copy at this CRF (default lossless)")
    d.add_argument("--verify", action="store_true", help="check every frame against the encoder's hash")
    d.add_argument("--skip-damaged", action="store_true", help="decode every intact GOP, fill damaged ones with "
                   "the last good frame, report them and exit with status 4")
    d.add_argument("--weights", help="keyframe weights file (default: the shipped model)")
    d.add_argument("--inter-weights", help="inter (P-frame) weights file (default: the shipped model, if any)")
    d.add_argument("--quiet", action="store_true")

    c = sub.add_parser("compare", help="rate-distortion comparison against H.264/H.265 on your clip")
    c.add_argument("input", nargs="+", help="a video; several videos or folders are compared one by one "
                   "(results in OUT/<name>/) and their BD-rates averaged")
    c.add_argument("--qualities", type=float, nargs="+", help="vcodec quality indices (default 0..7)")
    c.add_argument("--anchors", default="x264", help="comma-separated anchors: x264,x265 (default x264)")
    c.add_argument("--intra-period", type=int, help="GOP length for every codec (default 32 with inter "
                   "weights, else 1)")
    c.add_argument("--frames", type=int, default=32, help="compare on the first N frames (default 32)")
    c.add_argument("--preset", help="anchor encoder preset (default medium)")
    c.add_argument("--out", default="compare_out", help="directory for results.json, results.csv, rd.png")
    c.add_argument("--at-bitrate", metavar="KBPS", help="also code vcodec and H.264 at this bitrate ('source' = "
                   "the input's own) and write side_by_side.png")
    c.add_argument("--effort", type=int, default=0, help="vcodec encoder refinement steps per frame (see encode)")
    c.add_argument("--weights", help="keyframe weights file (default: the shipped model)")
    c.add_argument("--inter-weights", help="inter (P-frame) weights file (default: the shipped model, if any)")
    c.add_argument("--quiet", action="store_true")

    sub.add_parser("train", help="train a model from a config (see: vcodec train --help)")

    i = sub.add_parser("info", help="show a stream's header, GOPs and per-frame sizes")
    i.add_argument("input")
    i.add_argument("--frames", action="store_true", help="list every frame")
    return p


def _run(args: argparse.Namespace) -> int:
    from vcodec import api
    from vcodec.codec import FAST_MOTION

    if args.command == "encode":
        options = dict(quality=args.quality, intra_period=args.intra_period, frames=args.frames, weights=args.weights,
                       device=args.device, bitrate=args.bitrate, inter_weights=args.inter_weights,
                       scene_cuts=args.scene_cuts, effort=args.effort,
                       motion=FAST_MOTION if args.fast else None)
        if args.keyframe_offset is not None:
            options["keyframe_offset"] = args.keyframe_offset
        if args.p_offsets is not None:
            options["p_offsets"] = tuple(args.p_offsets)
        if len(args.input) == 1 and not os.path.isdir(args.input[0]):
            results = [(args.input[0], api.encode(args.input[0], args.output, progress=not args.quiet, **options),
                        None)]
        else:
            from vcodec.batch import encode_many

            results = encode_many(args.input, args.output, args.jobs, progress=not args.quiet, **options)
        for _, r, error in results:
            if error is not None:
                print(f"vcodec: error: {error}", file=sys.stderr)
            elif not args.quiet:
                m = r.metrics
                print(f"{r.output}: {r.frames} frames {r.width}x{r.height}, {r.bytes} bytes, "
                      f"{r.bpp:.4f} bpp, {r.kbps:.1f} kbps, PSNR-YUV {m['psnr_yuv']:.2f} dB, "
                      f"{r.frames / r.seconds:.2f} frames/s")
        if any(error for _, _, error in results):
            return EXIT_USER
    elif args.command == "decode":
        r = api.decode(args.input, args.output, args.device, args.start, args.frames, args.crf, args.verify,
                       args.weights, progress=not args.quiet, inter_weights=args.inter_weights,
                       skip_damaged=args.skip_damaged)
        for line in r.damage:
            print(f"vcodec: damaged: {line}", file=sys.stderr)
        if not args.quiet:
            check = ", all decoded frames match the encoder" if args.verify else ""
            lost = f", {len(r.lost_frames)} lost frames filled" if r.lost_frames else ""
            print(f"{r.output}: {r.frames} frames, {r.frames / r.seconds:.2f} frames/s{check}{lost}")
        if r.damage:
            return EXIT_DAMAGED
    elif args.command == "compare":
        from vcodec.compare import format_table, run_compare

        anchors = [a.strip() for a in args.anchors.split(",") if a.strip()]
        at = args.at_bitrate
        if at is not None and at != "source":
            try:
                at = float(at)
            except ValueError:
                raise UserError("--at-bitrate takes a number of kbps or 'source'") from None
        from vcodec.batch import expand_inputs

        paths = expand_inputs(args.input) if len(args.input) > 1 or os.path.isdir(args.input[0]) else \
            [args.input[0]]
        results = []
        for path in paths:
            out = args.out if len(paths) == 1 else os.path.join(args.out, Path(path).stem)
            r = run_compare(path, out, args.qualities, anchors, args.intra_period, args.frames, args.preset,
                            args.weights, progress=not args.quiet, at_bitrate=at, inter_weights=args.inter_weights,
                            effort=args.effort)
            results.append(r)
            print(format_table(r))
            print(r.sentence())
            extra = f", {out}/side_by_side.png" if r.equal_bitrate else ""
            print(f"wrote {out}/results.json, {out}/results.csv, {out}/rd.png{extra}")
        if len(results) > 1:
            for name in anchors:
                values = [r.bd[name]["bd_rate_psnr_yuv"] for r in results if r.bd[name]["bd_rate_psnr_yuv"] is not None]
                label = results[0].codecs[name]["label"]
                mean = f"{sum(values) / len(values):+.1f}%" if values else "n/a"
                print(f"mean BD-rate (PSNR-YUV) vs {label} over {len(values)} of {len(results)} clips: {mean}")
    elif args.command == "info":
        s = api.info(args.input)
        h = s.header
        print(f"{s.path}: .lvc version {h.version[0]}.{h.version[1]}, {s.file_bytes} bytes")
        print(f"  video: {h.width}x{h.height} yuv420p, {h.fps} fps, {h.frame_count} frames")
        print(f"  colour: primaries {h.color_primaries}, transfer {h.color_transfer}, matrix {h.color_matrix},"
              f" range {h.color_range}")
        print(f"  coding: quality {h.quality:g}, intra period {h.intra_period}, entropy coder {h.coder_id}")
        for role, digest in h.models:
            print(f"  model: {'keyframe' if role == 0 else 'inter'} weights sha256 {digest.hex()[:16]}")
        print(f"  rate: {s.bpp:.4f} bpp, {s.kbps:.1f} kbps")
        by_type: dict[str, list[dict]] = {}
        for p in s.packets:
            by_type.setdefault(p["type"], []).append(p)
        for t, packets in by_type.items():
            total = sum(p["bytes"] for p in packets)
            parts: dict[str, int] = {}
            for p in packets:
                for name, n in p["substreams"].items():
                    parts[name] = parts.get(name, 0) + n
            shares = ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in parts.items())
            print(f"  {t}-frames: {len(packets)}, {total} bytes, mean {total / len(packets):.0f} bytes"
                  + (f" ({shares})" if shares else ""))
        print(f"  GOPs: {len(s.gops)}")
        for g in s.gops if args.frames else s.gops[:8]:
            print(f"    GOP at frame {g['first_frame']}: {g['frames']} frames, {g['bytes']} bytes")
        if not args.frames and len(s.gops) > 8:
            print(f"    ... {len(s.gops) - 8} more (--frames lists everything)")
        if args.frames:
            for p in s.packets:
                parts = " ".join(f"{name} {n}" for name, n in p["substreams"].items())
                motion = (f" (motion {p['motion_quality']:g})" if "motion_quality" in p
                          else f" (block motion {p['motion_block']})" if "motion_block" in p else "")
                print(f"    frame {p['frame']}: {p['type']} {p['bytes']} bytes quality {p['quality']:g}{motion}"
                      + (f" ({parts})" if parts else ""))
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"vcodec: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # training has its own options (see vcodec/training/run.py)
        from vcodec.training.run import main as train_main

        return train_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        print(_version_text())
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USER
    warnings.showwarning = _one_line_warning
    try:
        return _run(args)
    except StreamError as exc:
        print(f"vcodec: error: {exc}", file=sys.stderr)
        return EXIT_STREAM
    except UserError as exc:
        print(f"vcodec: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("vcodec: interrupted; no output was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
