"""Shipped weights and their manifests: the manifest names the file it describes, and shipping keeps the path."""

from __future__ import annotations

import json

import pytest

from tools.ship_weights import main as ship_main
from vcodec.zoo import DEFAULT_INTER, DEFAULT_KEYFRAME, sha256_file, write_weights_file


@pytest.mark.parametrize("weights", [DEFAULT_KEYFRAME, DEFAULT_INTER], ids=["keyframe", "inter"])
def test_shipped_manifest_describes_the_shipped_file(weights):
    manifest = json.loads(weights.with_suffix(".json").read_text())
    assert manifest["weights"] == weights.name
    assert manifest["sha256"] == sha256_file(weights)
    assert manifest["bytes"] == weights.stat().st_size
    if "eval" in manifest:  # figures measured on other weights must not be carried over
        assert manifest["eval"]["sha256"] == manifest["sha256"]


def test_ship_weights_accumulates_the_training_path(tmp_path):
    dest = tmp_path / "inter.pt"
    write_weights_file(dest, {"meta": "{}"})
    dest.with_suffix(".json").write_text(json.dumps({
        "weights": "inter.pt", "sha256": sha256_file(dest), "role": "inter", "cpu_hours": 2.5,
        "history": "stage A", "eval": {"sha256": sha256_file(dest)}}))
    new = tmp_path / "new.pt"
    prior = {"pairs": 3, "seconds": 1.5}
    write_weights_file(new, {"meta": json.dumps({"temporal_prior": prior})})
    stage = tmp_path / "stage.json"
    stage.write_text(json.dumps({"role": "inter", "config": {"stage": "inter_multi"}, "steps": 7, "cpu_hours": 0.25}))

    assert ship_main([str(new), "--stage-manifest", str(stage), "--history", "stage B",
                      "--measured=-1%", "--dest", str(dest)]) == 0
    manifest = json.loads(dest.with_suffix(".json").read_text())
    assert dest.read_bytes() == new.read_bytes()
    assert manifest["sha256"] == sha256_file(dest) and manifest["bytes"] == dest.stat().st_size
    assert manifest["cpu_hours"] == 2.75 and manifest["stage_cpu_hours"] == 0.25 and manifest["steps"] == 7
    assert manifest["history"] == "stage A; stage B"
    assert manifest["temporal_prior"] == prior and manifest["measured_vs_previous"] == "-1%"
    assert "eval" not in manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inter.json", "inter.pt", "new.pt", "stage.json"]


def test_ship_weights_refuses_to_ship_the_shipped_file_onto_itself(tmp_path):
    dest = tmp_path / "inter.pt"
    write_weights_file(dest, {"meta": "{}"})
    stage = tmp_path / "stage.json"
    stage.write_text("{}")
    with pytest.raises(SystemExit):
        ship_main([str(dest), "--stage-manifest", str(stage), "--history", "x", "--dest", str(dest)])
