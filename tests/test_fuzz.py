"""CI-sized run of the decoder fuzzer (tools/fuzz_decode.py runs 10,000+)."""

from __future__ import annotations

import torch

from tests.test_inter import TINY
from tools.fuzz_decode import run_fuzz
from vcodec.models.inter import InterCodec
from vcodec.zoo import save_weights


def test_fuzzed_intra_streams_decode_or_fail_cleanly():
    report = run_fuzz(300, seed=123, timeout=60, memory_mb=4096, inter_weights=None, progress=False)
    assert report["failures"] == [], report["failures"][:3]
    assert report["outcomes"].get("error", 0) > 200


def test_fuzzed_p_frame_streams_decode_or_fail_cleanly(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "inter.pt"
    save_weights(weights, InterCodec(TINY).eval(), {"note": "test model"})
    report = run_fuzz(120, seed=321, timeout=60, memory_mb=4096, inter_weights=str(weights), progress=False)
    assert report["failures"] == [], report["failures"][:3]
