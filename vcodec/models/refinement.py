"""Encoder-side latent refinement: encoding time traded for bits, with the decoder unchanged.

The analysis transform is trained to be good on average over many images
(amortized inference). For one frame, a few gradient steps on the latent itself
lower its cost bits + λ·255²·D further (Campos et al. 2019, "Content adaptive
optimization for neural image compression"; Yang et al. 2020). Rounding is
straight-through, so each step sees the latent the coder will really send. The
refined latent is then coded by the usual exact entropy path, so streams parse
and decode exactly as before; only the encoder is slower (`--effort`).
"""

from __future__ import annotations

import torch

from vcodec.metrics import yuv_mse
from vcodec.models.hyperprior import MeanScaleHyperprior

STEP_SIZE = 0.005  # Adam step on the pre-gain latent: 0.005 beat 0.01 and 0.02 on an eval keyframe (docs/TRAINING.md)


def refine_latent(codec: MeanScaleHyperprior, target: torch.Tensor, y0: torch.Tensor, quality: float,
                  lmbda: float, steps: int, step_size: float = STEP_SIZE,
                  cond: torch.Tensor | None = None) -> torch.Tensor:
    """A pre-gain latent that codes `target` (padded, what g_s should output) at a lower RD cost than y0.

    Runs `steps` Adam steps and returns the best latent seen (y0 itself if none was better), by the
    float model's estimate of the cost. The codec's weights are not touched. `cond`: the condition
    of a conditional codec (vcodec.models.conditional), at the padded size.
    """
    if steps <= 0:
        return y0
    with torch.inference_mode(False), torch.enable_grad():
        q = codec.quality_tensor(quality, y0.device)
        gain, inverse = codec.gain(q).detach().clone(), codec.inverse_gain(q).detach().clone()
        target = target.detach().clone()  # clones: tensors made under inference mode cannot enter autograd
        cond = None if cond is None else cond.detach().clone()
        pixels = 4 * target.shape[-2] * target.shape[-1]  # luma pixels of the 4:2:0 half-resolution tensor
        latent = y0.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([latent], lr=step_size)
        best, best_cost = y0, float("inf")
        for step in range(steps + 1):
            y_hat, bits = codec.straight_through(latent * gain)
            x_hat = codec._synthesize(y_hat * inverse, cond)
            cost = lmbda * 255**2 * yuv_mse(x_hat.float(), target.float()).sum() + bits / pixels
            if cost.item() < best_cost:
                best, best_cost = latent.detach().clone(), cost.item()
            if step == steps:
                break
            (latent.grad,) = torch.autograd.grad(cost, [latent])
            optimizer.step()
    return best
