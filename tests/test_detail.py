"""The synthesis detail stage: a zero start that decodes like the plain codec, a decoder-only stage (the rate is
untouched), weights that survive export, and an exact P-frame round trip with the stage in the residual codec."""

from __future__ import annotations

import torch

from tests.conftest import crop
from vcodec.color import frame_to_tensor
from vcodec.models.inter import InterCodec, InterConfig
from vcodec.models.keyframe import KeyframeCodec, KeyframeConfig
from vcodec.zoo import load_keyframe, save_weights

N, M = 32, 24


def _codec(detail_width: int) -> KeyframeCodec:
    torch.manual_seed(0)
    model = KeyframeCodec(KeyframeConfig(n=N, m=M, detail_width=detail_width, detail_blocks=1)).eval()
    model.update_tables()
    return model


def test_zero_initialized_detail_stage_decodes_like_the_plain_codec(sample_frames):
    x = frame_to_tensor(crop(sample_frames[0], 96, 64))
    plain, detailed = _codec(0), _codec(16)
    detailed.load_state_dict(plain.state_dict(), strict=False)
    detailed.update_tables()
    a, b = plain.compress(x, 3.0), detailed.compress(x, 3.0)
    assert a.substream() == b.substream()
    h, w = x.shape[-2:]
    torch.testing.assert_close(plain.synthesize(a.y_hat, 3.0, h, w), detailed.synthesize(b.y_hat, 3.0, h, w))


def test_trained_detail_stage_changes_only_the_reconstruction(sample_frames, tmp_path):
    x = frame_to_tensor(crop(sample_frames[0], 96, 64))
    plain, detailed = _codec(0), _codec(16)
    detailed.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        detailed.detail.out.weight.normal_(0, 0.01)
    detailed.update_tables()
    a, b = plain.compress(x, 3.0), detailed.compress(x, 3.0)
    assert a.substream() == b.substream()  # the encoder side and entropy model are untouched
    h, w = x.shape[-2:]
    assert not torch.equal(plain.synthesize(a.y_hat, 3.0, h, w), detailed.synthesize(b.y_hat, 3.0, h, w))
    path = tmp_path / "keyframe.pt"
    save_weights(path, detailed)
    loaded = load_keyframe(path).model
    assert loaded.config.detail_width == 16 and loaded.detail is not None
    torch.testing.assert_close(loaded.synthesize(b.y_hat, 3.0, h, w), detailed.synthesize(b.y_hat, 3.0, h, w),
                               atol=2e-3, rtol=0)  # weights ship in fp16


TINY_INTER = dict(motion_n=16, motion_m=16, residual_n=16, residual_m=16, refine_width=8, flow_width=8,
                  flow_levels=2, conditional=True)


def test_p_frame_detail_stage_starts_as_the_plain_codec_and_decodes_exactly_once_trained():
    g = torch.Generator().manual_seed(0)
    ref = torch.nn.functional.avg_pool2d(torch.rand(1, 6, 64, 96, generator=g), 5, 1, 2)
    x = torch.roll(ref, shifts=(1, -2), dims=(-2, -1))
    torch.manual_seed(0)
    plain = InterCodec(InterConfig(**TINY_INTER)).eval()
    detailed = InterCodec(InterConfig(**TINY_INTER, detail_width=8, detail_blocks=1)).eval()
    missing = detailed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("residual.detail.") for k in missing)
    for m in (plain, detailed):
        m.update_tables()
    a, b = plain.compress(x, ref, 3.0), detailed.compress(x, ref, 3.0)
    assert a.substream() == b.substream() and torch.equal(a.x_hat, b.x_hat)
    with torch.no_grad():  # as if trained: the stage now corrects the residual, seeing the prediction
        detailed.residual.detail.out.weight.normal_(0, 0.05, generator=g)
        detailed.residual.detail.merge.weight.add_(0.05)
    lat = detailed.compress(x, ref, 3.0)
    assert lat.substream() == a.substream() and not torch.equal(lat.x_hat, a.x_hat)
    assert torch.equal(detailed.decompress(lat.global_motion, lat.substream(), ref, 3.0), lat.x_hat)
