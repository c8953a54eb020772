"""Inter-codec training stages (DESIGN §7):

1. `flow`: pre-train the flow network with a photometric warping loss on
   consecutive source frames (no coding involved).
2. `inter`: train the whole P-frame codec on (I, P) pairs; the reference is the
   frozen keyframe codec's reconstruction, rounded to 8 bits as a decoder holds it.
3. `inter_multi`: unroll chains of several P-frames, each predicted from the
   previous reconstruction, so errors do not pile up across a GOP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vcodec.color import quantize_tensor
from vcodec.models.flow import warp
from vcodec.models.inter import InterCodec
from vcodec.models.keyframe import KeyframeCodec
from vcodec.training.keyframe import yuv_mse


def charbonnier(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt(x * x + eps * eps).mean()


def flow_loss(model: InterCodec, seq: torch.Tensor, smooth: float = 0.05) -> tuple[torch.Tensor, dict[str, float]]:
    """Photometric loss |warp(x0, flow(x1, x0)) - x1| plus first-order flow smoothness."""
    x0, x1 = seq[:, 0], seq[:, 1]
    flow = model.flow_net(x1, x0)
    photometric = charbonnier(warp(x0, flow) - x1)
    smoothness = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (flow[..., 1:] - flow[..., :-1]).abs().mean()
    with torch.no_grad():
        gain = 10 * torch.log10(F.mse_loss(x0, x1).clamp_min(1e-10) / F.mse_loss(warp(x0, flow), x1).clamp_min(1e-10))
    return photometric + smooth * smoothness, {"warp_gain_db": float(gain)}


@torch.no_grad()
def keyframe_reference(keyframe: KeyframeCodec, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The frozen keyframe codec's reconstruction, as the decoder would hold it (8-bit)."""
    return quantize_tensor(keyframe(x, q)["x_hat"])


def _bits(likelihoods: list[torch.Tensor]) -> torch.Tensor:
    return -sum(torch.log2(lik.float()).sum((1, 2, 3)) for lik in likelihoods)


def inter_loss(model: InterCodec, keyframe: KeyframeCodec, seq: torch.Tensor, q: torch.Tensor,
               mc_weight: float = 0.0, forward: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Rate-distortion loss over the P-frames of `seq` (B, 1 + K, 6, h, w); frame 0 is the keyframe.

    Each P-frame is predicted from the previous reconstruction (rounded to 8 bits
    and detached: the chain is unrolled as the decoder runs it). `mc_weight`
    adds the motion-compensated prediction's distortion, which speeds up the
    first steps of training.
    """
    forward = forward or model
    ref = keyframe_reference(keyframe, seq[:, 0], q)
    lam = model.lmbda(q) * 255**2
    luma_pixels = seq.shape[-1] * seq.shape[-2] * 4
    total, bpp_sum, psnr_sum = 0.0, 0.0, 0.0
    frames = seq.shape[1] - 1
    for t in range(1, seq.shape[1]):
        x = seq[:, t]
        out = forward(x, ref, q)
        bpp = _bits(out["likelihoods"]) / luma_pixels
        mse = yuv_mse(out["x_hat"].float(), x)
        loss = lam * mse + bpp
        if mc_weight > 0:
            loss = loss + mc_weight * lam * yuv_mse(out["prediction"].float(), x)
        total = total + loss.mean() / frames
        bpp_sum += float(bpp.detach().mean())
        psnr_sum += float((10 * torch.log10(1.0 / mse.detach().clamp_min(1e-10))).mean())
        ref = quantize_tensor(out["x_hat"].detach())
    return total, {"bpp": bpp_sum / frames, "psnr_yuv": psnr_sum / frames}
