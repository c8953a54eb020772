"""Bjøntegaard-delta rate and PSNR (piecewise cubic interpolation, as in JVET's tools).

Thin wrapper over the `bjontegaard` package with the project's conventions:
rates in any unit (only ratios matter), results in percent / dB, and an explicit
overlap figure so callers can warn when curves barely share a quality range.
"""

from __future__ import annotations

import warnings

import bjontegaard
import numpy as np

MIN_OVERLAP = 0.5  # below this fraction of shared quality range, a BD figure is an extrapolation


def overlap(dist_anchor: list[float], dist_test: list[float]) -> float:
    """Shared fraction of the two curves' quality ranges (0 = disjoint, 1 = identical)."""
    lo, hi = max(min(dist_anchor), min(dist_test)), min(max(dist_anchor), max(dist_test))
    span = min(max(dist_anchor) - min(dist_anchor), max(dist_test) - min(dist_test))
    return 0.0 if hi <= lo or span <= 0 else (hi - lo) / span


def _prepare(rate: list[float], dist: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sort by rate and keep the RD frontier: points whose quality beats every cheaper point.

    Interpolation needs strictly increasing rate and quality; a dominated point
    (more bits, no better quality) is not part of a codec's achievable curve.
    """
    order = np.argsort(rate, kind="stable")
    keep_r, keep_d = [], []
    for r, d in zip(np.asarray(rate, dtype=np.float64)[order], np.asarray(dist, dtype=np.float64)[order]):
        if keep_r and r <= keep_r[-1]:
            if d > keep_d[-1]:
                keep_r[-1], keep_d[-1] = r, d
            continue
        if not keep_d or d > keep_d[-1]:
            keep_r.append(r)
            keep_d.append(d)
    return np.array(keep_r), np.array(keep_d)


def bd_rate(rate_anchor, dist_anchor, rate_test, dist_test) -> float | None:
    """Average bitrate difference of test vs anchor at equal quality, in percent (negative = fewer bits).

    None when the quality ranges do not overlap at all.
    """
    if overlap(dist_anchor, dist_test) <= 0:
        return None
    ra, da = _prepare(rate_anchor, dist_anchor)
    rt, dt = _prepare(rate_test, dist_test)
    if min(len(ra), len(rt)) < 2 or overlap(list(da), list(dt)) <= 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(bjontegaard.bd_rate(ra, da, rt, dt, method="pchip", require_matching_points=False,
                                         min_overlap=0.0))


def bd_psnr(rate_anchor, dist_anchor, rate_test, dist_test) -> float | None:
    """Average quality difference of test vs anchor at equal rate, in dB (positive = better)."""
    ra, da = _prepare(rate_anchor, dist_anchor)
    rt, dt = _prepare(rate_test, dist_test)
    if min(len(ra), len(rt)) < 2 or max(min(ra), min(rt)) >= min(max(ra), max(rt)):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(bjontegaard.bd_psnr(ra, da, rt, dt, method="pchip", require_matching_points=False,
                                         min_overlap=0.0))
