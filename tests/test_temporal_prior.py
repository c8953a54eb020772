"""The temporal prior for P-frame hyper-latents: fitting, coding, closed loop, seeking, older formats."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import vcodec
from tests.conftest import crop, write_clip
from tests.test_inter import TINY
from tools.fit_temporal_prior import count_clip
from vcodec.codec import FrameDecoder
from vcodec.entropy.tables import SymbolTables
from vcodec.entropy.temporal import CLASSES, RANGE, TemporalCounts, temporal_table_ids
from vcodec.models.inter import InterCodec
from vcodec.video import read_frames
from vcodec.zoo import load_inter, load_keyframe, save_weights


@pytest.fixture(scope="module")
def clip(tmp_path_factory, sample_frames):
    path = tmp_path_factory.mktemp("temporal") / "clip.mkv"
    return write_clip(path, [crop(f, 96, 64) for f in sample_frames[:6]])


def _fitted(model: InterCodec, clip, smoothing: float = 2.0) -> InterCodec:
    """A copy of the model with temporal tables fitted on the clip's consecutive P-frames, by the fitting
    tool's own counting (the model itself, possibly `load_inter`'s cached instance, is left unchanged)."""
    fitted = copy.deepcopy(model)
    counts = (TemporalCounts(fitted.motion.z_tables), TemporalCounts(fitted.residual.z_tables))
    count_clip(load_keyframe().model, fitted, clip, frames=6, quality=3.0, counts=counts)
    fitted.motion.z_temporal = counts[0].tables(smoothing)
    fitted.residual.z_temporal = counts[1].tables(smoothing)
    return fitted


@pytest.fixture(scope="module")
def weights(tmp_path_factory, clip):
    """Tiny inter weights without and with fitted temporal tables (the same network)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("temporal_weights")
    plain, fitted = folder / "plain.pt", folder / "fitted.pt"
    save_weights(plain, InterCodec(TINY).eval(), {"note": "test"})
    save_weights(fitted, _fitted(load_inter(plain).model, clip), {"note": "test"})
    return plain, fitted


def test_table_ids_follow_channel_and_clipped_previous_value():
    z_prev = torch.tensor([[[[-9, -1]], [[0, 5]]]])  # (1, 2, 1, 2)
    ids = temporal_table_ids(z_prev)
    assert ids.tolist() == [[[[0, RANGE - 1]], [[CLASSES + RANGE, CLASSES + 2 * RANGE]]]]


def test_unfitted_tables_are_the_factorized_prior():
    factorized = SymbolTables.from_pmfs([np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.4])], [-1, 0], [1e-3, 1e-3])
    tables = TemporalCounts(factorized).tables(smoothing=8.0)
    assert len(tables) == 2 * CLASSES
    for c in range(2):
        for k in range(CLASSES):
            assert np.allclose(tables.probabilities(c * CLASSES + k), factorized.probabilities(c), atol=1e-4)


def test_counts_make_the_previous_value_cheap():
    factorized = SymbolTables.from_pmfs([np.full(7, 1 / 7)], [-3], [1e-3])
    counts = TemporalCounts(factorized)
    z = torch.randint(-3, 4, (1, 1, 8, 8))
    counts.add(z, z)
    tables = counts.tables(smoothing=1.0)
    repeat = tables.bits(z, temporal_table_ids(z))
    assert repeat < 0.5 * factorized.bits(z, torch.zeros_like(z))


def test_tables_survive_export_and_load(tmp_path, weights):
    plain, fitted = weights
    assert not load_inter(plain).model.temporal_prior
    model = load_inter(fitted).model
    assert model.temporal_prior
    assert len(model.residual.z_temporal) == CLASSES * len(model.residual.z_tables)
    again = tmp_path / "again.pt"
    save_weights(again, model, {"note": "test"})
    reloaded = load_inter(again).model
    for a, b in ((model.motion, reloaded.motion), (model.residual, reloaded.residual)):
        assert torch.equal(a.z_temporal.counts, b.z_temporal.counts)
        assert torch.equal(a.z_temporal.offsets, b.z_temporal.offsets)


def test_p_frames_with_the_temporal_prior_roundtrip_bit_exact_and_seek(tmp_path, clip, weights):
    plain, fitted = weights
    streams = {}
    for name, w in (("plain", plain), ("fitted", fitted)):
        streams[name] = tmp_path / f"{name}.lvc"
        vcodec.encode(clip, streams[name], quality=3, intra_period=0, inter_weights=w, progress=False,
                      scene_cuts=False)
        vcodec.decode(streams[name], tmp_path / f"{name}.y4m", device="cpu", verify=True, inter_weights=w,
                      progress=False)
    sizes = {name: [p["bytes"] for p in vcodec.info(s).packets] for name, s in streams.items()}
    # The keyframe and the first P-frame have no previous P-frame; the ones after it use the fitted tables.
    assert sizes["plain"][:2] == sizes["fitted"][:2]
    assert sizes["plain"][2:] != sizes["fitted"][2:]
    full, part = tmp_path / "full.y4m", tmp_path / "part.y4m"
    vcodec.decode(streams["fitted"], full, device="cpu", inter_weights=fitted, progress=False)
    vcodec.decode(streams["fitted"], part, device="cpu", start=3, frames=2, inter_weights=fitted, progress=False)
    a, b = read_frames(full)[0][3:5], read_frames(part)[0]
    assert len(b) == 2 and all(np.array_equal(x.y, y.y) for x, y in zip(a, b))


def test_older_formats_parse_without_the_temporal_prior(weights):
    model = load_inter(weights[1]).model
    key = load_keyframe().model
    assert FrameDecoder(key, 96, 64, torch.device("cpu"), model, version=(5, 0)).temporal
    assert not FrameDecoder(key, 96, 64, torch.device("cpu"), model, version=(4, 0)).temporal
