"""Encoder-side latent refinement (`--effort`): lowers the coded cost, leaves the decoder exact."""

from __future__ import annotations

import pytest
import torch

import vcodec
from tests.conftest import crop, write_clip
from vcodec.color import frame_to_tensor
from vcodec.metrics import yuv_mse
from vcodec.models.inter import InterCodec, InterConfig
from vcodec.models.keyframe import PAD, pad_to
from vcodec.models.refinement import refine_latent
from vcodec.zoo import load_keyframe, save_weights


def _coded_cost(model, x: torch.Tensor, quality: float, y0: torch.Tensor) -> float:
    """Real bytes + λ·255²·MSE of the 8-bit reconstruction, per luma pixel: what refinement should lower."""
    latents = model.compress(x, quality, y0)
    x_hat = model.synthesize(latents.y_hat, quality, *x.shape[-2:])
    x_hat = (x_hat * 255).round() / 255
    pixels = 4 * x.shape[-2] * x.shape[-1]
    bits = 8 * len(latents.substream())
    return bits / pixels + float(model.lmbda(torch.tensor([quality]))) * 255**2 * float(yuv_mse(x_hat, x))


def test_refinement_lowers_the_real_cost_of_a_keyframe(sample_frames):
    model = load_keyframe().model
    x = frame_to_tensor(crop(sample_frames[0], 192, 128))
    y0 = model.analysis(x)
    # 20 steps, the effort the docs quote: after only a few steps the gain on a crop this small can be
    # smaller than the real coder's byte granularity.
    refined = refine_latent(model, pad_to(x, PAD), y0, 1.0, float(model.lmbda(torch.tensor([1.0]))), steps=20)
    assert not torch.equal(refined, y0)
    assert _coded_cost(model, x, 1.0, refined) < _coded_cost(model, x, 1.0, y0)


def test_zero_steps_keep_the_analysis_latent(sample_frames):
    model = load_keyframe().model
    x = frame_to_tensor(crop(sample_frames[0], 64, 64))
    y0 = model.analysis(x)
    assert refine_latent(model, pad_to(x, PAD), y0, 3.0, 0.01, steps=0) is y0


def test_refinement_leaves_model_gradients_alone(sample_frames):
    model = load_keyframe().model
    x = frame_to_tensor(crop(sample_frames[0], 64, 64))
    refine_latent(model, pad_to(x, PAD), model.analysis(x), 3.0, 0.01, steps=2)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("conditional", [False, True])
def test_effort_streams_decode_bit_exactly(tmp_path, sample_frames, conditional):
    """Keyframes and P-frame residuals refined; the decoder, which knows nothing of it, matches the encoder."""
    torch.manual_seed(0)
    weights = tmp_path / "inter.pt"
    tiny = InterConfig(motion_n=16, motion_m=16, residual_n=16, residual_m=16, refine_width=16, flow_width=16,
                       conditional=conditional)
    save_weights(weights, InterCodec(tiny).eval(), {"note": "test model"})
    clip = write_clip(tmp_path / "clip.mkv", [crop(f, 96, 64) for f in sample_frames[:3]])
    plain, refined = tmp_path / "plain.lvc", tmp_path / "refined.lvc"
    for path, effort in ((plain, 0), (refined, 3)):
        vcodec.encode(clip, path, quality=2, intra_period=0, inter_weights=weights, progress=False,
                      scene_cuts=False, effort=effort)
    assert plain.read_bytes() != refined.read_bytes()
    vcodec.decode(refined, tmp_path / "out.y4m", device="cpu", verify=True, inter_weights=weights, progress=False)


def test_effort_recodes_the_chosen_block_motion_without_searching_again(tmp_path, sample_frames, monkeypatch):
    """With `effort`, the frame is coded twice (choice, then refined); the block search runs once per block size
    and frame, and the stream still decodes exactly."""
    import vcodec.models.inter as inter
    from vcodec.codec import MotionSearch

    calls = []

    def counted(*args, **kwargs):
        calls.append(args[4])
        return fit(*args, **kwargs)

    fit = inter.fit_block_motion
    monkeypatch.setattr(inter, "fit_block_motion", counted)
    torch.manual_seed(0)
    weights = tmp_path / "inter.pt"
    tiny = InterConfig(motion_n=16, motion_m=16, residual_n=16, residual_m=16, refine_width=16, flow_width=16)
    save_weights(weights, InterCodec(tiny).eval(), {"note": "test model"})
    clip = write_clip(tmp_path / "clip.mkv", [crop(f, 96, 64) for f in sample_frames[:3]])
    stream = tmp_path / "blocks.lvc"
    vcodec.encode(clip, stream, quality=2, intra_period=0, inter_weights=weights, progress=False, scene_cuts=False,
                  effort=2, motion=MotionSearch(motion_offsets=(), blocks=(4, 8)))
    assert sorted(calls) == [4, 4, 8, 8]
    vcodec.decode(stream, tmp_path / "out.y4m", device="cpu", verify=True, inter_weights=weights, progress=False)


def test_negative_effort_is_a_user_error(tmp_path, small_clip):
    with pytest.raises(vcodec.UserError, match="effort"):
        vcodec.encode(small_clip, tmp_path / "x.lvc", effort=-1, progress=False)
