"""Keyframe (I-frame) codec: a variable-rate mean-scale hyperprior on YUV 4:2:0.

The input is the 6-channel half-resolution 4:2:0 tensor (see vcodec.color).
Because it is already at half resolution, the analysis uses three stride-2
stages (plus one stride-1 stage) to reach the usual 1/16 latent resolution
relative to luma. See vcodec.models.hyperprior for the codec itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vcodec.models.hyperprior import (
    DEFAULT_LAMBDAS,
    PAD,
    LadderConfig,
    Latents,
    MeanScaleHyperprior,
    RateLadder,
    initial_log_gains,
    pad_to,
)

__all__ = ["DEFAULT_LAMBDAS", "KeyframeCodec", "KeyframeConfig", "Latents", "PAD", "pad_to"]


@dataclass
class KeyframeConfig(LadderConfig):
    n: int = 128  # transform width
    m: int = 192  # latent channels
    context: bool = False  # checkerboard context model (vcodec.models.context)
    channel_slices: int = 1  # > 1: channel-wise context over that many slices (vcodec.models.channel)
    detail_width: int = 0  # > 0: a nonlinear output stage of this width (vcodec.models.detail)
    detail_blocks: int = 2


class KeyframeCodec(RateLadder, MeanScaleHyperprior):
    def __init__(self, config: KeyframeConfig | None = None):
        config = config or KeyframeConfig()
        super().__init__(6, config.n, config.m, initial_log_gains(config.lambdas), context=config.context,
                         channel_slices=config.channel_slices, detail=(config.detail_width, config.detail_blocks))
        self.config = config
        self._register_ladder(config.lambdas)

    def synthesize(self, y_hat: torch.Tensor, quality: float, height: int, width: int) -> torch.Tensor:
        """y_hat -> (1, 6, height, width) reconstruction in [0, 1]."""
        return super().synthesize(y_hat, quality, height, width).clamp(0, 1)
