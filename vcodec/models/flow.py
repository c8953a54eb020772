"""Optical flow for motion estimation: warping and a small SpyNet-style pyramid network.

Flow lives on the codec's half-resolution 4:2:0 grid (see vcodec.color) and is
measured in half-resolution pixels; the same displacement moves all 6 channels.
Warping is backward and bilinear: out(p) = ref(p + flow(p)); samples that fall
outside the frame take the nearest border pixel (grid_sample's "border" mode),
which suits camera pans better than zeros.

`warp` moves all 6 channels on the half-resolution grid: right for matching, but
for a prediction it blurs luma, whose four phases sit 2 luma pixels apart in that
grid, so a 1-pixel luma shift interpolates between pixels 2 apart instead of
taking the neighbouring phase. `warp_yuv420` warps luma on its own full-resolution
grid and chroma on the half-resolution one.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vcodec.layers import conv
from vcodec.metrics import yuv_mse


def warp(ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward bilinear warp of ref (B, C, H, W) by flow (B, 2, H, W) in pixels (x, y)."""
    b, _, h, w = ref.shape
    ys = torch.arange(h, device=ref.device, dtype=ref.dtype)
    xs = torch.arange(w, device=ref.device, dtype=ref.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x = gx + flow[:, 0]
    y = gy + flow[:, 1]
    grid = torch.stack([2 * (x + 0.5) / w - 1, 2 * (y + 0.5) / h - 1], dim=-1)
    return F.grid_sample(ref, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_yuv420(ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward bilinear warp of a 4:2:0 tensor (B, 6, H, W) by a half-resolution flow (B, 2, H, W):
    luma on its full-resolution plane (flow upsampled and doubled), chroma as `warp` does."""
    luma = F.pixel_shuffle(ref[:, :4], 2)
    luma_flow = 2 * F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=False)
    luma = F.pixel_unshuffle(warp(luma, luma_flow), 2)
    return torch.cat([luma, warp(ref[:, 4:], flow)], dim=1)


def cost_volume(cur: torch.Tensor, ref: torch.Tensor, radius: int, window: int = 11) -> torch.Tensor:
    """Log matching cost of every displacement within `radius`: (B, (2r+1)^2, H, W).

    The cost is the squared difference averaged over channels and a window x
    window block: what block matching looks at, handed to the network so it picks
    and refines displacements instead of inferring them from image gradients
    (PWC-Net's cost volume, on pixels rather than learned features). Large blocks
    give smooth, reliable motion, which is what a motion codec can afford to send.
    Displacement k is (dx, dy) = (k mod (2r+1) - r, k div (2r+1) - r).
    """
    h, w = cur.shape[-2:]
    padded = F.pad(ref, [radius] * 4, mode="replicate")
    size = 2 * radius + 1
    costs = [((cur - padded[..., dy : dy + h, dx : dx + w]) ** 2).mean(1, keepdim=True)
             for dy in range(size) for dx in range(size)]
    return torch.log(box_mean(torch.cat(costs, dim=1), window) + 1e-4)


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a window x window block around each pixel, over the pixels inside the frame.

    Done as two 1-D means (rows, then columns): the same numbers as the 2-D pool up to
    rounding, about 3x faster on a CPU, where the 2-D pool was half the flow network's time.
    """
    r = window // 2
    rows = F.avg_pool2d(x, (1, window), 1, (0, r), count_include_pad=False)
    return F.avg_pool2d(rows, (window, 1), 1, (r, 0), count_include_pad=False)


class FlowLevel(nn.Module):
    """One pyramid level: soft block matching around the current flow, then a CNN
    correction from [cost volume, current, warped reference, flow].

    The CNN's last layer starts at zero, so an untrained level is block matching;
    training teaches it where matching fails (flat areas, occlusions, sub-pixel
    motion) and which motion is cheap to code.
    """

    def __init__(self, channels: int, width: int = 32, radius: int = 3):
        super().__init__()
        self.radius = radius
        self.net = nn.Sequential(
            conv((2 * radius + 1) ** 2 + 2 * channels + 2, width, 5, 1), nn.ReLU(inplace=True),
            conv(width, width, 5, 1), nn.ReLU(inplace=True),
            conv(width, width // 2, 5, 1), nn.ReLU(inplace=True),
            conv(width // 2, 2, 5, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.1)))
        d = torch.arange(-radius, radius + 1, dtype=torch.float32)
        dy, dx = torch.meshgrid(d, d, indexing="ij")
        self.register_buffer("displacements", torch.stack([dx.flatten(), dy.flatten()], dim=1), persistent=False)

    def forward(self, cur: torch.Tensor, ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        cost = cost_volume(cur, warp(ref, flow), self.radius)
        flow = flow + self.soft_argmin(cost)
        return flow + self.net(torch.cat([cost, cur, warp(ref, flow), flow], dim=1))

    def soft_argmin(self, cost: torch.Tensor) -> torch.Tensor:
        """Expected displacement under softmax(-cost / T): block matching, made differentiable.

        Where matching is ambiguous (flat areas) the weights spread and the step
        shrinks towards zero, a safe default for a prediction. The temperature is
        learned.
        """
        weights = torch.softmax(-cost / self.log_temperature.exp(), dim=1)
        return torch.einsum("bkhw,kc->bchw", weights, self.displacements.to(weights.dtype))


class FlowNet(nn.Module):
    """Coarse-to-fine flow (SpyNet, Ranjan & Black 2017, with PWC-Net's cost volume), sized for CPU coding.

    Inputs must be divisible by 2**(levels - 1).
    """

    def __init__(self, channels: int = 6, levels: int = 3, width: int = 32):
        super().__init__()
        self.levels = nn.ModuleList(FlowLevel(channels, width) for _ in range(levels))

    def forward(self, cur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Flow that warps `ref` onto `cur`."""
        pyramid = [(cur, ref)]
        for _ in range(len(self.levels) - 1):
            c, r = pyramid[-1]
            pyramid.append((F.avg_pool2d(c, 2), F.avg_pool2d(r, 2)))
        c, r = pyramid[-1]
        flow = torch.zeros(c.shape[0], 2, *c.shape[-2:], device=c.device, dtype=c.dtype)
        for level, (c, r) in zip(self.levels, reversed(pyramid)):
            if flow.shape[-2:] != c.shape[-2:]:
                flow = 2 * F.interpolate(flow, size=c.shape[-2:], mode="bilinear", align_corners=False)
            flow = level(c, r, flow)
        return flow


# Encoder-side flow refinement (InterCodec.estimate_motion): 20 Adam steps of 0.1 half-resolution pixels with
# this smoothness weight took the first P-frame's bytes at q4 down by 2-11% on the eval clips, at about 1 s
# per 854x480 frame on one core (docs/TRAINING.md).
REFINE_STEPS = 20
REFINE_STEP_SIZE = 0.1
REFINE_SMOOTHNESS = 1e-4


def refine_flow(cur: torch.Tensor, ref: torch.Tensor, flow: torch.Tensor, warp_fn=warp, steps: int = REFINE_STEPS,
                step_size: float = REFINE_STEP_SIZE, smoothness: float = REFINE_SMOOTHNESS) -> torch.Tensor:
    """The flow network's estimate sharpened by gradient descent on the warping error itself.

    The network is trained to be right on average; for one frame pair, a few
    steps on the field lower its warping error (PSNR-YUV weighting, `warp_fn` as
    the codec warps) by several dB where the network is blurry. A small penalty
    on neighbouring differences keeps the field smooth, which the motion codec
    codes cheaply. Only the encoder runs this: the decoder receives whatever
    field the motion codec codes.
    """
    if steps <= 0:
        return flow
    with torch.inference_mode(False), torch.enable_grad():
        cur, ref = cur.detach().clone(), ref.detach().clone()  # tensors made under inference mode cannot enter autograd
        field = flow.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([field], lr=step_size)
        for _ in range(steps):
            error = yuv_mse(warp_fn(ref, field), cur).sum()
            roughness = ((field[..., 1:, :] - field[..., :-1, :]) ** 2).mean() + \
                ((field[..., 1:] - field[..., :-1]) ** 2).mean()
            (field.grad,) = torch.autograd.grad(error + smoothness * roughness, [field])
            optimizer.step()
        return field.detach()
