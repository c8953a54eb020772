"""Exact integer evaluation of the entropy-parameter network.

Encoder and decoder must derive bit-identical entropy parameters, even on
different devices, thread counts or BLAS libraries; otherwise one flipped scale
index desynchronizes the arithmetic decoder. Following Ballé et al. 2019
("Integer networks for data compression"), the hyper-synthesis is run in fixed
point: weights are rounded to multiples of 2**-WEIGHT_BITS, activations to
2**-ACT_BITS, and every convolution is computed in float64 on integer-valued
tensors. Sums of integers below 2**53 are exact in any order, so the result does
not depend on how the hardware accumulates. The network's input (the decoded
hyper-latent) is already an integer tensor.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHT_BITS = 12
ACT_BITS = 10
_EXACT_LIMIT = float(2**52)


class ExactnessError(RuntimeError):
    """An accumulator left the range where float64 integer arithmetic is exact."""


class ExactHyperSynthesis:
    """Fixed-point copy of a Sequential of Conv2d / ConvTranspose2d / ReLU layers.

    Also serves the checkerboard context model (vcodec.models.context), whose
    masked convolution contributes its masked weights.
    """

    def __init__(self, net: nn.Sequential):
        self.layers: list[tuple[str, torch.Tensor | None, torch.Tensor | None, dict]] = []
        for m in net:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                weight = m.masked_weight() if hasattr(m, "masked_weight") else m.weight
                w = torch.round(weight.detach().double() * 2**WEIGHT_BITS)
                b = m.bias.detach().double() if m.bias is not None else torch.zeros(w.shape[0])
                kind = "conv" if isinstance(m, nn.Conv2d) else "deconv"
                opts = {"stride": m.stride, "padding": m.padding, "groups": m.groups}
                if kind == "deconv":
                    opts["output_padding"] = m.output_padding
                self.layers.append((kind, w, b, opts))
            elif isinstance(m, nn.ReLU):
                self.layers.append(("relu", None, None, {}))
            else:
                raise TypeError(f"layer {type(m).__name__} has no exact integer form")

    def __call__(self, z: torch.Tensor, input_frac: int = 0) -> torch.Tensor:
        """z, a multiple of 2**-input_frac -> output as exact multiples of 2**-ACT_BITS (float64).

        The hyper-synthesis takes the integer hyper-latent (input_frac 0); the
        context model takes decoded latents, integers plus means on the ACT_BITS
        grid. The input is rounded onto its grid first: it lies there by
        construction, and rounding makes the result independent of how the caller
        happened to represent it.
        """
        a = torch.round(z.double() * 2.0**input_frac)
        frac = input_frac  # fractional bits of the current activation
        for kind, w, b, opts in self.layers:
            if kind == "relu":
                a = torch.relu(a)
                continue
            w = w.to(a.device)
            bias = torch.round(b.to(a.device) * 2 ** (WEIGHT_BITS + frac))
            if kind == "conv":
                acc = F.conv2d(a, w, bias, **opts)
            else:
                acc = F.conv_transpose2d(a, w, bias, **opts)
            if acc.numel() and float(acc.abs().max()) >= _EXACT_LIMIT:
                raise ExactnessError("entropy-parameter accumulator exceeds 2**52")
            a = torch.floor(acc * 2.0 ** (ACT_BITS - WEIGHT_BITS - frac) + 0.5)
            frac = ACT_BITS
        return a * 2.0**-frac
