"""Conditional residual coding: the residual codec sees the motion-compensated prediction.

A plain residual codec (DVC) codes r = x − x̄ blind to x̄, so it must spend bits
on structure the decoder could have inferred from the prediction it already
holds: where edges are, where the prediction is flat, what texture the residual
sits on. Conditional coding (Ladune et al. 2020; Li et al. 2021, DCVC) gives the
prediction to both transforms; conditional *residual* coding (Brand et al. 2021)
keeps the residual as the signal and adds the prediction as side information,
which keeps the strong prior of residual coding while letting the transforms
adapt to the prediction.

Here the analysis adds features of x̄ to its first layer, and the synthesis adds
features of x̄ at each of its scales (1/8, 1/4, 1/2, 1 of the input). Every such
injection starts at zero, so a conditional codec initialized from a plain
residual codec's weights starts out as exactly that codec. The entropy model is
untouched: its parameters still depend only on the transmitted hyper-latent, so
parsing stays device-independent (DESIGN §5); x̄ only shapes the pixels.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vcodec.layers import conv
from vcodec.models.hyperprior import MeanScaleHyperprior


def _zero_conv(in_ch: int, out_ch: int) -> nn.Conv2d:
    layer = conv(in_ch, out_ch, 3, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ConditionalHyperprior(MeanScaleHyperprior):
    """Mean-scale hyperprior whose transforms also see a condition tensor (the prediction), same size as x."""

    def __init__(self, in_ch: int, n: int, m: int, init_log_gain: torch.Tensor, cond_ch: int,
                 context: bool = False, channel_slices: int = 1, detail: tuple[int, int] = (0, 0)):
        super().__init__(in_ch, n, m, init_log_gain, context=context, channel_slices=channel_slices, detail=detail,
                         side_ch=cond_ch)
        self.cond_features = nn.ModuleList([conv(cond_ch, n), conv(n, n), conv(n, n)])  # 1/2, 1/4, 1/8
        self.analysis_inject = _zero_conv(n, n)  # into g_a's first layer output (1/2)
        self.synthesis_inject = nn.ModuleList([_zero_conv(n, n) for _ in range(3)])  # at 1/8, 1/4, 1/2
        self.output_inject = _zero_conv(cond_ch, in_ch)  # at full size

    def _pyramid(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """Features of the condition at 1/2, 1/4 and 1/8 of its size."""
        feats, f = [], cond
        for layer in self.cond_features:
            f = nn.functional.leaky_relu(layer(f), 0.1)
            feats.append(f)
        return feats

    def _analyze(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is None:
            raise TypeError("a conditional codec needs its condition")
        half = nn.functional.leaky_relu(self.cond_features[0](cond), 0.1)
        h = self.g_a[0](x) + self.analysis_inject(half)
        for layer in self.g_a[1:]:
            h = layer(h)
        return h

    def _synthesize(self, y: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is None:
            raise TypeError("a conditional codec needs its condition")
        half, quarter, eighth = self._pyramid(cond)
        # after g_s[1], [3], [5] the activation is at 1/8, 1/4, 1/2 of the input size
        side = {1: (self.synthesis_inject[0], eighth), 3: (self.synthesis_inject[1], quarter),
                5: (self.synthesis_inject[2], half)}
        h = y
        for i, layer in enumerate(self.g_s[:-1]):
            h = layer(h)
            if i in side:
                inject, feature = side[i]
                h = h + inject(feature)
        return self._output(h, self.g_s[-1](h) + self.output_inject(cond), cond)
