"""Thresholds for a target false-alarm rate, computed once before detection starts.

The false-alarm budget of DESIGN.md is one ``arl0`` per model, shared by all
of its checks and segment streams. It is split evenly: with ``m`` detectors
(checks x streams, counting the segment cap, not the values seen so far), each
detector gets a false-alarm rate of ``1 / (m * arl0)`` per candidate
observation, so the model-wide rate is at most ``1 / arl0`` (union bound).
"""

from __future__ import annotations

import math

__all__ = ["detector_arl0", "lorden_threshold"]


def detector_arl0(model_arl0: float, n_detectors: int) -> float:
    """Per-detector in-control run length so that ``n_detectors`` share ``model_arl0``.

    >>> detector_arl0(1e6, 50)
    50000000.0
    """
    if model_arl0 <= 1:
        raise ValueError(f"model_arl0 must be > 1, got {model_arl0}")
    if n_detectors < 1:
        raise ValueError(f"n_detectors must be >= 1, got {n_detectors}")
    return float(model_arl0) * n_detectors


def lorden_threshold(arl0: float, n_arms: int = 1) -> float:
    """CUSUM threshold ``h`` with in-control ARL of at least ``arl0``.

    Page's CUSUM on log-likelihood ratios is a sequence of one-sided SPRTs,
    each of which falsely crosses ``h`` with probability at most ``exp(-h)``
    (Wald's inequality), so ``ARL0 >= exp(h)`` (Lorden 1971, Theorem 2). A
    detector that takes the maximum over ``n_arms`` CUSUMs (a grid of
    alternatives) keeps the bound with ``h = log(n_arms * arl0)``.

    The bound is conservative; :mod:`detectors` may replace it by an exact
    Markov-chain calibration for a known pre-change distribution.

    References
    ----------
    G. Lorden, "Procedures for reacting to a change in distribution",
    Ann. Math. Statist. 42(6), 1897-1908, 1971.

    >>> round(lorden_threshold(1e6, 4), 3)
    15.202
    """
    if arl0 <= 1:
        raise ValueError(f"arl0 must be > 1, got {arl0}")
    if n_arms < 1:
        raise ValueError(f"n_arms must be >= 1, got {n_arms}")
    return math.log(arl0 * n_arms)
