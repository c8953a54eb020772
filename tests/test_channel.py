"""Channel-wise context: exact slice-by-slice coding, a zero start that codes like no context, training pass."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import crop
from vcodec.color import frame_to_tensor
from vcodec.entropy.coder import EntropyDecodeError
from vcodec.entropy.exact import ACT_BITS
from vcodec.models.channel import slice_bounds
from vcodec.models.keyframe import KeyframeCodec, KeyframeConfig

N, M = 32, 24


def _codec(context: bool, slices: int, seed: int = 0) -> KeyframeCodec:
    torch.manual_seed(seed)
    model = KeyframeCodec(KeyframeConfig(n=N, m=M, context=context, channel_slices=slices)).eval()
    model.update_tables()
    return model


def _trained_looking(model: KeyframeCodec) -> KeyframeCodec:
    """Non-zero context networks, as after training (they start at zero)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for net in model.channel_context.nets:
            net[-1].weight.normal_(0, 0.05, generator=g)
        if model.context is not None:
            model.context.net[-1].weight.normal_(0, 0.05, generator=g)
    model.update_tables()
    return model


@pytest.fixture(scope="module")
def image(sample_frames) -> torch.Tensor:
    return frame_to_tensor(crop(sample_frames[0], 96, 64))


def test_slices_cover_the_channels_in_order():
    assert slice_bounds(24, 4) == [slice(0, 6), slice(6, 12), slice(12, 18), slice(18, 24)]
    assert slice_bounds(10, 3) == [slice(0, 3), slice(3, 7), slice(7, 10)]
    with pytest.raises(ValueError):
        slice_bounds(4, 5)


@pytest.mark.parametrize("context", [False, True])
def test_zero_initialized_channel_context_codes_the_same_latents(image, context):
    plain, sliced = _codec(context, 1), _codec(context, 4)
    sliced.load_state_dict(plain.state_dict(), strict=False)
    sliced.update_tables()
    a, b = plain.compress(image, 3.0), sliced.compress(image, 3.0)
    assert torch.equal(a.y_hat, b.y_hat)
    # the same symbols, in other groups of one ANS stream
    assert abs(len(b.substream()) - len(a.substream())) <= 8


@pytest.mark.parametrize("context", [False, True])
def test_slice_by_slice_roundtrip_is_exact(image, context):
    model = _trained_looking(_codec(context, 3))
    for quality in (0.0, 3.5, 7.0):
        lat = model.compress(image, quality)
        assert torch.equal(model.decompress(lat.substream(), 32, 48), lat.y_hat)


def test_channel_parameters_survive_perturbation_and_threads():
    """Each slice's entropy parameters come from exact arithmetic on exact decoded values."""
    model = _trained_looking(_codec(True, 3))
    g = torch.Generator().manual_seed(7)

    def on_grid(*shape: int, scale: float) -> torch.Tensor:
        return torch.round(torch.randn(*shape, generator=g, dtype=torch.float64) * scale * 2**ACT_BITS) / 2**ACT_BITS

    known, means = on_grid(1, M, 6, 8, scale=4), on_grid(1, 8, 6, 8, scale=2)
    scales = on_grid(1, 8, 6, 8, scale=1).abs()
    reference = model.channel_parameters(1, 1, known, means, scales)
    wobbled = known * (1 + 1e-9 * torch.randn(known.shape, generator=g, dtype=torch.float64))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for got in (model.channel_parameters(1, 1, wobbled, means, scales),
                    model.channel_parameters(1, 1, known.float().double(), means.float().double(), scales)):
            assert all(torch.equal(a, b) for a, b in zip(got, reference))
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():  # and the float network agrees up to the fixed-point rounding
        floats = model.channel_context(1, 1, known.float(), means.float(), scales.float())
        assert all(torch.allclose(a, b.float(), atol=0.05) for a, b in zip(floats, reference))


def test_truncated_group_is_a_decode_error(image):
    model = _trained_looking(_codec(False, 3))
    data = model.compress(image, 3.0).substream()
    for bad in (data[:3], (10**6).to_bytes(4, "little") + data[4:]):
        with pytest.raises(EntropyDecodeError):
            model.decompress(bad, 32, 48)


def test_training_pass_trains_every_slice_network():
    model = _trained_looking(_codec(True, 3)).train()
    x, q = torch.rand(2, 6, 64, 64), torch.tensor([1.0, 5.0])
    out = model(x, q)
    loss = -torch.log2(out["y_likelihood"]).sum() + out["x_hat"].square().sum()
    loss.backward()
    for net in model.channel_context.nets:
        assert net[-1].weight.grad.abs().sum() > 0


def test_keyframe_weights_with_a_channel_context_encode_and_decode(tmp_path, small_clip):
    """The config travels with the weights: the decoder rebuilds the sliced codec and reproduces the frames."""
    import vcodec
    from vcodec.zoo import save_weights

    weights = tmp_path / "keyframe_channel.pt"
    save_weights(weights, _trained_looking(_codec(True, 3)), {"note": "test model"})
    stream = tmp_path / "channel.lvc"
    vcodec.encode(small_clip, stream, quality=3, intra_period=1, weights=weights, progress=False, frames=2)
    vcodec.decode(stream, tmp_path / "channel.y4m", device="cpu", verify=True, weights=weights, progress=False)
