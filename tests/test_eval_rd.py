"""tools/eval_rd.py --reuse: earlier points come back only where nothing they depend on changed."""

from __future__ import annotations

from pathlib import Path

from tools.eval_rd import Reuse, evaluate_clip

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.mp4"
REPORT = {"frames": 2, "qualities": [3.0], "weights": "k", "inter_weights": "i", "codec_source": "c"}


def test_reuse_follows_what_the_points_depend_on():
    assert Reuse.between(REPORT, REPORT) == Reuse(anchors=True, intra=True, inter=True)
    assert Reuse.between({**REPORT, "inter_weights": "other"}, REPORT) == Reuse(anchors=True, intra=True)
    assert Reuse.between({**REPORT, "codec_source": "other"}, REPORT) == Reuse(anchors=True)
    assert Reuse.between({**REPORT, "qualities": [4.0]}, REPORT) == Reuse(anchors=True)
    assert Reuse.between({**REPORT, "frames": 3}, REPORT) == Reuse()


def test_evaluate_clip_reads_back_reusable_points(tmp_path):
    settings = dict(frames=2, qualities=[3.0], periods=[1], anchors=[("x264", "medium")], inter=False,
                    rate_control=False, plots=tmp_path)
    first = evaluate_clip(SAMPLE, **settings)
    assert first["reused"] == []
    again = evaluate_clip(SAMPLE, **settings, reuse=Reuse(anchors=True, intra=True), previous=first)
    assert sorted(again["reused"]) == ["vcodec", "x264-medium ip1"]
    assert again["vcodec"] == first["vcodec"] and again["bd"] == first["bd"]
    # A tampered CRF sweep is not the sweep this run would measure: the anchor is encoded again.
    stale = {**first, "anchors": {"1": {"x264-medium": {**first["anchors"]["1"]["x264-medium"],
                                                        "points": first["anchors"]["1"]["x264-medium"]["points"][1:]}}}}
    partial = evaluate_clip(SAMPLE, **settings, reuse=Reuse(anchors=True), previous=stale)
    assert partial["reused"] == []
    assert partial["anchors"] == first["anchors"] and partial["vcodec"] == first["vcodec"]
