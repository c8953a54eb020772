"""Conditional residual coding: a zero start equal to plain residual coding, exact P-frame round trip."""

from __future__ import annotations

import pytest
import torch

from vcodec.models.inter import InterCodec, InterConfig

TINY = dict(motion_n=16, motion_m=16, residual_n=16, residual_m=16, refine_width=8, flow_width=8, flow_levels=2)


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ref = torch.nn.functional.avg_pool2d(torch.rand(1, 6, 64, 96, generator=g), 5, 1, 2)
    return torch.roll(ref, shifts=(1, -2), dims=(-2, -1)), ref


def _models() -> tuple[InterCodec, InterCodec]:
    torch.manual_seed(0)
    plain = InterCodec(InterConfig(**TINY)).eval()
    cond = InterCodec(InterConfig(**TINY, conditional=True)).eval()
    missing = cond.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("residual.") for k in missing)  # only the conditioning is new
    for m in (plain, cond):
        m.update_tables()
    return plain, cond


def test_conditional_codec_starts_as_the_plain_residual_codec():
    plain, cond = _models()
    x, ref = _pair()
    a, b = plain.compress(x, ref, 3.0), cond.compress(x, ref, 3.0)
    assert a.substream() == b.substream() and torch.equal(a.x_hat, b.x_hat)


def test_conditional_p_frame_decodes_bit_exactly_once_trained():
    _, cond = _models()
    with torch.no_grad():  # as if trained: the prediction now shapes both transforms
        for p in cond.residual.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    cond.update_tables()
    x, ref = _pair()
    lat = cond.compress(x, ref, 3.0)
    assert torch.equal(cond.decompress(lat.global_motion, lat.substream(), ref, 3.0), lat.x_hat)


def test_conditional_codec_refuses_a_missing_condition():
    _, cond = _models()
    with pytest.raises(TypeError, match="needs its condition"):
        cond.residual(torch.zeros(1, 6, 32, 32), torch.tensor([1.0]))


def test_training_pass_reaches_the_conditioning():
    _, cond = _models()
    x, ref = _pair()
    out = cond.train()(x, ref, torch.tensor([2.0]))
    (out["x_hat"] - x).square().mean().backward()
    assert cond.residual.output_inject.weight.grad.abs().sum() > 0
    assert cond.residual.synthesis_inject[0].weight.grad.abs().sum() > 0
