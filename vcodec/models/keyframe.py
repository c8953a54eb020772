"""Keyframe (I-frame) codec: a variable-rate mean-scale hyperprior on YUV 4:2:0.

The input is the 6-channel half-resolution 4:2:0 tensor (see vcodec.color).
Because it is already at half resolution, the analysis uses three stride-2
stages (plus one stride-1 stage) to reach the usual 1/16 latent resolution
relative to luma. See vcodec.models.hyperprior for the codec itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from vcodec.models.hyperprior import PAD, Latents, MeanScaleHyperprior, log_interp, pad_to

# Rate-distortion trade-offs per quality index: loss = lambda * 255^2 * MSE + bpp.
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)

__all__ = ["DEFAULT_LAMBDAS", "KeyframeCodec", "KeyframeConfig", "Latents", "PAD", "pad_to"]


@dataclass
class KeyframeConfig:
    n: int = 128  # transform width
    m: int = 192  # latent channels
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        return asdict(self)


def initial_log_gains(lambdas: tuple[float, ...]) -> torch.Tensor:
    """Gains start at sqrt(lambda / lambda_mid): the step size of a high-rate MSE quantizer."""
    lam = torch.tensor(lambdas, dtype=torch.float64)
    return (0.5 * torch.log(lam / lam[len(lam) // 2])).float()


class KeyframeCodec(MeanScaleHyperprior):
    def __init__(self, config: KeyframeConfig | None = None):
        config = config or KeyframeConfig()
        super().__init__(6, config.n, config.m, initial_log_gains(config.lambdas))
        self.config = config
        self.register_buffer("log_lambdas", torch.log(torch.tensor(config.lambdas, dtype=torch.float32)))

    @property
    def levels(self) -> int:
        return self.config.levels

    def lmbda(self, q: torch.Tensor) -> torch.Tensor:
        """lambda for (fractional) quality q, interpolated log-linearly."""
        return torch.exp(log_interp(self.log_lambdas, q))

    def synthesize(self, y_hat: torch.Tensor, quality: float, height: int, width: int) -> torch.Tensor:
        """y_hat -> (1, 6, height, width) reconstruction in [0, 1]."""
        return super().synthesize(y_hat, quality, height, width).clamp(0, 1)
