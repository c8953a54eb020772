"""Checkerboard context model: exact two-pass coding, a zero start that codes like no context, training pass."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import crop
from vcodec.color import frame_to_tensor
from vcodec.entropy.coder import EntropyDecodeError
from vcodec.models.context import CheckerboardConv, anchor_mask
from vcodec.models.keyframe import KeyframeCodec, KeyframeConfig

SMALL = KeyframeConfig(n=32, m=24)


def _codec(context: bool, seed: int = 0) -> KeyframeCodec:
    torch.manual_seed(seed)
    model = KeyframeCodec(KeyframeConfig(n=SMALL.n, m=SMALL.m, context=context)).eval()
    model.update_tables()
    return model


def _with_trained_looking_context(model: KeyframeCodec) -> KeyframeCodec:
    with torch.no_grad():
        model.context.net[-1].weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
    model.update_tables()
    return model


@pytest.fixture(scope="module")
def image(sample_frames) -> torch.Tensor:
    return frame_to_tensor(crop(sample_frames[0], 96, 64))


def test_anchor_mask_and_kernel_mask_are_complementary_checkerboards():
    m = anchor_mask(3, 4)[0, 0]
    assert m.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]
    conv = CheckerboardConv(1, 1, 5)
    # a non-anchor's taps at odd offsets land on anchors; the centre and even offsets are masked out
    assert conv.mask[0, 0, 2, 2] == 0 and conv.mask[0, 0, 2, 3] == 1 and conv.mask[0, 0, 1, 1] == 0


def test_zero_initialized_context_codes_the_same_latents(image):
    plain, ctx = _codec(False), _codec(True)
    ctx.load_state_dict(plain.state_dict(), strict=False)
    ctx.update_tables()
    a, b = plain.compress(image, 3.0), ctx.compress(image, 3.0)
    assert torch.equal(a.y_hat, b.y_hat)


def test_two_pass_roundtrip_is_exact(image):
    model = _with_trained_looking_context(_codec(True))
    for quality in (0.0, 3.5, 7.0):
        lat = model.compress(image, quality)
        assert torch.equal(model.decompress(lat.substream(), 32, 48), lat.y_hat)
        assert torch.equal(model.decompress_latents(*lat.split_substreams(), 32, 48), lat.y_hat)


def test_format_2_layout_still_parses(image):
    """Format 2.x coded each coding group as its own length-prefixed ANS stream; `framed=True` reads that."""
    import struct

    from vcodec.entropy import coder

    model = _with_trained_looking_context(_codec(True))
    lat = model.compress(image, 3.0)
    z_bytes, y_bytes = lat.split_substreams()
    parts = [coder.encode(symbols, idx, tables) for symbols, idx, tables in lat.groups[1:]]
    framed = b"".join(struct.pack("<I", len(p)) + p for p in parts[:-1]) + parts[-1]
    assert framed != y_bytes
    assert torch.equal(model.decompress_latents(z_bytes, framed, 32, 48, framed=True), lat.y_hat)


def test_context_parameters_survive_perturbation_and_threads(image):
    """The non-anchors' entropy parameters come from exact arithmetic on exact decoded anchors."""
    model = _with_trained_looking_context(_codec(True))
    with torch.no_grad():
        y = model.analysis(image) * model.gain(torch.tensor([3.0]))
        z = torch.round(model.h_a(y))
    means, scales = model.entropy_parameters(z)
    anchors = anchor_mask(*means.shape[-2:])
    y_anchor = (torch.round(y.double() - means) + means) * anchors
    reference = model.context_parameters(means, scales, y_anchor)
    wobbled = y_anchor * (1 + 1e-9 * torch.randn(y_anchor.shape, dtype=torch.float64))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for got in (model.context_parameters(means, scales, wobbled),
                    model.context_parameters(means, scales, y_anchor.float().double())):
            assert all(torch.equal(g, r) for g, r in zip(got, reference))
    finally:
        torch.set_num_threads(threads)


def test_truncated_anchor_part_is_a_decode_error(image):
    model = _with_trained_looking_context(_codec(True))
    lat = model.compress(image, 3.0)
    z_bytes, y_bytes = lat.split_substreams()
    for bad in (y_bytes[:3], (10**6).to_bytes(4, "little") + y_bytes[4:]):
        with pytest.raises(EntropyDecodeError):
            model.decompress_latents(z_bytes, bad, 32, 48)
    data = lat.substream()
    for bad in (data[:3], (10**6).to_bytes(4, "little") + data[4:]):
        with pytest.raises(EntropyDecodeError):
            model.decompress(bad, 32, 48)


def test_training_pass_uses_the_context():
    model = _with_trained_looking_context(_codec(True)).train()
    x, q = torch.rand(2, 6, 64, 64), torch.tensor([1.0, 5.0])
    out = model(x, q)
    loss = -torch.log2(out["y_likelihood"]).sum() + out["x_hat"].square().sum()
    loss.backward()
    assert model.context.net[-1].weight.grad.abs().sum() > 0
    assert model.context.net[0].weight.grad[:, :, 2, 2].abs().sum() == 0  # masked taps get no gradient


def test_subgrid_evaluation_equals_the_full_resolution_network(image):
    """The decoder's half-resolution form of the context network gives exactly the full network's output."""
    from vcodec.entropy.exact import ACT_BITS, ExactHyperSynthesis
    from vcodec.models.context import from_other_phases, to_anchor_phases

    model = _codec(True)
    with torch.no_grad():
        for p in model.context.parameters():
            p.normal_(0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
    g = torch.Generator().manual_seed(5)
    y = torch.round(torch.randn(1, SMALL.m, 8, 12, generator=g, dtype=torch.float64) * 2**ACT_BITS * 3) / 2**ACT_BITS
    y = y * anchor_mask(8, 12)
    full = ExactHyperSynthesis(model.context.net)(y, input_frac=ACT_BITS)
    sub = from_other_phases(ExactHyperSynthesis(model.context.subgrid_net())(to_anchor_phases(y), input_frac=ACT_BITS))
    assert torch.equal(full * ~anchor_mask(8, 12), sub)
    with torch.no_grad():  # and the float network agrees up to the fixed-point rounding
        assert torch.allclose(model.context(y.float()) * ~anchor_mask(8, 12), sub.float(), atol=0.05)
