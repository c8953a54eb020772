"""Rate control: pick each frame's (fractional) quality to hit a target bitrate.

The entropy model gives a frame's ideal code length at any quality from one
analysis transform (`KeyframeCodec.estimate_bits`), and the rate is monotonic in
the quality index, so a bisection finds the quality whose estimate meets the
frame's budget. The budget follows the bits actually written so far (packet
overhead included), and a running ratio of real to estimated bits absorbs the
entropy coder's and container's overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction


class RateController:
    def __init__(self, kbps: float, fps: Fraction, levels: int, header_bits: int = 0):
        if kbps <= 0:
            raise ValueError("bitrate must be positive")
        self.frame_bits = kbps * 1000 / float(fps)
        self.levels = levels
        self.planned = 0.0
        self.spent = float(header_bits)
        self.ratio = 1.0  # real bits / estimated bits, learned as frames are written
        self.clamped = 0  # frames whose target was outside the model's range

    def target(self) -> float:
        """Bits for the next frame: the nominal share plus half the accumulated surplus."""
        return max(0.2 * self.frame_bits, self.frame_bits + 0.5 * (self.planned - self.spent))

    def choose(self, estimate: Callable[[float], float], steps: int = 8) -> float:
        """Highest quality whose corrected estimate fits the next frame's target."""
        goal = self.target()
        lo, hi = 0.0, float(self.levels - 1)
        if estimate(hi) * self.ratio <= goal:
            self.clamped += 1
            return hi
        if estimate(lo) * self.ratio >= goal:
            self.clamped += 1
            return lo
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            if estimate(mid) * self.ratio <= goal:
                lo = mid
            else:
                hi = mid
        return lo

    def update(self, estimated_bits: float, real_bits: float) -> None:
        self.planned += self.frame_bits
        self.spent += real_bits
        if estimated_bits > 0:
            self.ratio = 0.7 * self.ratio + 0.3 * (real_bits / estimated_bits)
