"""Inter-codec training stages (DESIGN §7):

1. `flow`: pre-train the flow network with a photometric warping loss on
   consecutive source frames (no coding involved).
2. `inter`: train the whole P-frame codec on (I, P) pairs; the reference is the
   frozen keyframe codec's reconstruction, rounded to 8 bits as a decoder holds it.
2b. `motion_warp`: teach the motion codec to carry the encoder's sharpened
   fields on real frame pairs, judged by the warp they give (the rest frozen).
3. `inter_multi`: unroll chains of several P-frames, each predicted from the
   previous reconstruction, so errors do not pile up across a GOP. With
   `propagate`, the loss of each P-frame also reaches the frames it was predicted
   from (error-propagation-aware training, Lu et al. 2020): a frame is then coded
   for its own distortion and for its worth as the next frame's reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vcodec.color import quantize_tensor
from vcodec.metrics import yuv_mse
from vcodec.models.flow import refine_flow, warp
from vcodec.models.inter import FLOW_SCALE, InterCodec, global_motion, motion_field
from vcodec.models.keyframe import KeyframeCodec


def charbonnier(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt(x * x + eps * eps).mean()


def random_flow(batch: int, height: int, width: int, generator: torch.Generator, max_shift: float = 12.0,
                max_local: float = 3.0) -> torch.Tensor:
    """Smooth random motion (B, 2, h, w) in pixels: translation + small zoom/rotation + a low-frequency field.

    Translations are drawn with a bias towards small motion (|t| = max_shift * u^2),
    as in natural video.
    """
    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator) * 2 - 1

    shift = max_shift * uniform(batch, 2) * torch.rand(batch, 2, generator=generator)
    zoom, angle = 0.05 * uniform(batch), 0.05 * uniform(batch)
    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    z, a = zoom[:, None, None], angle[:, None, None]
    affine = torch.stack([z * gx - a * gy, a * gx + z * gy], dim=1)
    local = F.interpolate(max_local * uniform(batch, 2, 4, 4), size=(height, width), mode="bicubic",
                          align_corners=False)
    return shift[:, :, None, None] + affine + local


def synthetic_pair(ref: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(current, flow, valid mask) with current = warp(ref, flow): a pair whose true motion is known.

    The mask drops pixels whose source lies outside the frame (their motion is unobservable).
    """
    b, _, h, w = ref.shape
    flow = random_flow(b, h, w, generator).to(ref.device, ref.dtype)
    cur = warp(ref, flow)
    noise = torch.randn(cur.shape, generator=generator).to(ref.device, ref.dtype)
    cur = (cur + 0.01 * noise).clamp(0, 1)  # cheap stand-in for sensor and coding noise
    ys = torch.arange(h, device=ref.device, dtype=ref.dtype)[:, None]
    xs = torch.arange(w, device=ref.device, dtype=ref.dtype)[None, :]
    x, y = xs + flow[:, 0], ys + flow[:, 1]
    valid = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).unsqueeze(1).to(ref.dtype)
    return cur, flow, valid


def flow_loss(model: InterCodec, seq: torch.Tensor, step: int, seed: int = 0,
              photometric_weight: float = 10.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow pre-training: end-point error on synthetic pairs + photometric loss on real ones.

    A purely photometric loss from random weights collapses to zero flow (its
    gradient only sees sub-pixel motion in textured areas), so the network is
    bootstrapped the way SpyNet was, with pairs whose motion is known: frame 0 of
    each sequence warped by a random smooth field. The photometric term
    |warp(x0, flow(x1, x0)) - x1| on the real consecutive frames keeps it honest
    on natural motion, occlusions and lighting.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    x0, x1 = seq[:, 0], seq[:, 1]
    cur, true_flow, valid = synthetic_pair(x0, generator)
    epe = ((model.flow_net(cur, x0) - true_flow).norm(dim=1, keepdim=True) * valid).sum() / valid.sum().clamp_min(1)
    flow = model.flow_net(x1, x0)
    photometric = charbonnier(warp(x0, flow) - x1)
    with torch.no_grad():
        gain = 10 * torch.log10(F.mse_loss(x0, x1).clamp_min(1e-10) / F.mse_loss(warp(x0, flow), x1).clamp_min(1e-10))
    return epe + photometric_weight * photometric, {"epe": float(epe.detach()), "warp_gain_db": float(gain)}


def motion_loss(model: InterCodec, q: torch.Tensor, step: int, seed: int = 0, size: int = 96,
                flow_weight: float = 0.0025) -> tuple[torch.Tensor, dict[str, float]]:
    """Motion-codec pre-training on synthetic smooth flow fields (no images needed).

    The distortion is the squared end-point error weighted like the warp error it
    would cause: a flow error of d pixels on an image with mean squared gradient
    g² costs about g²·d² in MSE; `flow_weight` is that g² (0.0025: gradients of
    about 0.05 per pixel), so λ(q)·255²·flow_weight·EPE² is on the same scale as
    the frame distortion the inter stage optimizes. Starting the inter stage from
    a motion codec that already transmits motion keeps it from learning to send
    none.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    flow = random_flow(q.shape[0], size, size, generator).to(q.device)
    g = motion_field(global_motion(flow)).to(q.device)  # as in InterCodec: the codec sees flow - global motion
    out = model.motion((flow - g) * (1 / FLOW_SCALE), q)
    flow_hat = out["x_hat"] * FLOW_SCALE + g
    bpp = _bits([out["y_likelihood"], out["z_likelihood"]]) / (4 * size * size)
    epe2 = ((flow_hat - flow) ** 2).sum(1).mean((1, 2))
    loss = (model.lmbda(q) * 255**2 * flow_weight * epe2 + bpp).mean()
    return loss, {"bpp": float(bpp.detach().mean()), "epe": float(epe2.detach().sqrt().mean())}


def motion_warp_loss(model: InterCodec, keyframe: KeyframeCodec, seq: torch.Tensor, q: torch.Tensor,
                     refine_steps: int = 20) -> tuple[torch.Tensor, dict[str, float]]:
    """Motion codec on the fields the encoder sends: λ(q)·255²·MSE-YUV(warp(x̂_0, decoded field), x_1) + motion bpp.

    The synthetic smooth fields of the `motion` stage never ask the motion
    autoencoder for a sharp field, and it cannot give one: the encoder's
    sharpened field warps 4-5 dB better than the same field through the codec,
    even unquantized (docs/TRAINING.md). Here the input is that sharpened field
    on real pairs (reference: the frozen keyframe codec's 8-bit reconstruction)
    and the distortion is the warp it gives, so precision is paid for in bits at
    the frame's λ. The residual codec, which would correct part of the warp
    error, is left out; a joint stage afterwards rebalances the two.
    """
    ref = keyframe_reference(keyframe, seq[:, 0], q)
    x = seq[:, 1]
    with torch.no_grad():
        flow = refine_flow(x, ref, model.flow_net(x, ref), model.warp, steps=refine_steps)
    g = motion_field(global_motion(flow)).to(flow.device)
    out = model.motion((flow - g) * (1 / FLOW_SCALE), q)
    flow_hat = out["x_hat"] * FLOW_SCALE + g
    bpp = _bits([out["y_likelihood"], out["z_likelihood"]]) / (seq.shape[-1] * seq.shape[-2] * 4)
    mse = yuv_mse(model.warp(ref, flow_hat).float(), x)
    loss = (model.lmbda(q) * 255**2 * mse + bpp).mean()
    with torch.no_grad():
        sharp = yuv_mse(model.warp(ref, flow).float(), x)
    return loss, {"bpp": float(bpp.detach().mean()), "warp_psnr": float((-10 * torch.log10(mse.detach())).mean()),
                  "sharp_psnr": float((-10 * torch.log10(sharp)).mean())}


def sample_blocks(frames: int, choices: list[int], step: int, seed: int) -> list[int]:
    """Each P-frame's way of sending motion for one training step, uniform over `choices` (0: the motion
    codec, B: block motion with BxB cells), drawn from the step so that a resumed run draws the same."""
    g = torch.Generator().manual_seed(seed * 5_000_011 + step + 1)
    return [choices[int(i)] for i in torch.randint(len(choices), (frames,), generator=g)]


@torch.no_grad()
def keyframe_reference(keyframe: KeyframeCodec, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The frozen keyframe codec's reconstruction, as the decoder would hold it (8-bit)."""
    return quantize_tensor(keyframe(x, q)["x_hat"])


def reference(x_hat: torch.Tensor, propagate: bool) -> torch.Tensor:
    """The next P-frame's reference: the reconstruction rounded to 8 bits, as the decoder holds it.

    With `propagate` the rounding is straight-through, so the next frame's loss
    flows back into this one; otherwise the chain is cut here.
    """
    rounded = quantize_tensor(x_hat.detach())
    return x_hat + (rounded - x_hat).detach() if propagate else rounded


def _bits(likelihoods: list[torch.Tensor]) -> torch.Tensor:
    return -sum(torch.log2(lik.float()).sum((1, 2, 3)) for lik in likelihoods)


def inter_loss(model: InterCodec, keyframe: KeyframeCodec, seq: torch.Tensor, q: torch.Tensor,
               mc_weight: float = 0.0, refine_steps: int = 0, propagate: bool = False,
               blocks: list[int] | None = None, vector_rd: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Rate-distortion loss over the P-frames of `seq` (B, 1 + K, 6, h, w); frame 0 is the keyframe.

    Each P-frame is predicted from the previous reconstruction, rounded to 8 bits
    as the decoder holds it (`reference`; `propagate` lets gradients through it).
    `mc_weight` adds the motion-compensated prediction's distortion, which speeds
    up the first steps of training. `refine_steps`: the encoder's flow sharpening
    (InterCodec.forward). `blocks`: how each P-frame sends its motion, one entry per
    frame (0: the motion codec; B > 0: block motion with BxB cells), as the
    encoder chooses between them frame by frame; `vector_rd`: the encoder's
    rate-distortion pass over block vectors (`MotionSearch.vector_rd`).
    """
    ref = keyframe_reference(keyframe, seq[:, 0], q)
    lam = model.lmbda(q) * 255**2
    luma_pixels = seq.shape[-1] * seq.shape[-2] * 4
    total, bpp_sum, psnr_sum = 0.0, 0.0, 0.0
    frames = seq.shape[1] - 1
    for t in range(1, seq.shape[1]):
        x = seq[:, t]
        block = blocks[t - 1] if blocks else 0
        out = model(x, ref, q, refine_steps=refine_steps, block=block, vector_rd=vector_rd)
        bpp = (_bits(out["likelihoods"]) + out.get("motion_bits", 0.0)) / luma_pixels
        mse = yuv_mse(out["x_hat"].float(), x)
        loss = lam * mse + bpp
        if mc_weight > 0:
            loss = loss + mc_weight * lam * yuv_mse(out["prediction"].float(), x)
        total = total + loss.mean() / frames
        bpp_sum += float(bpp.detach().mean())
        psnr_sum += float((10 * torch.log10(1.0 / mse.detach().clamp_min(1e-10))).mean())
        ref = reference(out["x_hat"], propagate)
    return total, {"bpp": bpp_sum / frames, "psnr_yuv": psnr_sum / frames}


class ChainLoss(torch.nn.Module):
    """`inter_loss` as one module call: under torchrun, DistributedDataParallel wraps this, so a step's whole
    chain is one forward pass whose graph it can search for parameters left out of the loss (a chain of
    block-motion P-frames never uses the motion codec) and one backward pass that averages the gradients."""

    def __init__(self, model: InterCodec):
        super().__init__()
        self.model = model

    def forward(self, keyframe: KeyframeCodec, seq: torch.Tensor, q: torch.Tensor,
                **options) -> tuple[torch.Tensor, dict[str, float]]:
        return inter_loss(self.model, keyframe, seq, q, **options)
