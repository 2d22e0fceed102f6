"""Thresholds for a target false-alarm rate, computed once before detection starts.

The false-alarm budget of DESIGN.md is one ``arl0`` per model, shared by all
of its checks and segment streams. It is split evenly: with ``m`` detectors
(checks x streams, counting the segment cap, not the values seen so far), each
detector gets a false-alarm rate of ``1 / (m * arl0)`` per candidate
observation, so the model-wide rate is at most ``1 / arl0`` (union bound).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np

__all__ = [
    "Direction",
    "Family",
    "detector_arl0",
    "llr_coefficients",
    "lorden_threshold",
    "rate_threshold",
]


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


Family = Literal["bernoulli", "poisson"]
Direction = Literal["increase", "decrease"]

#: Rates are calibrated on a log grid of this many points per decade (a cache key).
_GRID_PER_DECADE = 6


def llr_coefficients(family: Family, r0: float, r1: float) -> tuple[float, float]:
    """(a, b) such that an observation's log-likelihood ratio is count * a - exposure * b.

    >>> a, b = llr_coefficients("poisson", 0.1, 0.2)
    >>> round(a, 4), round(b, 4)
    (0.6931, 0.1)
    """
    if family == "bernoulli":
        r1 = min(r1, 1.0 - 1e-9)
        return (
            math.log(r1 * (1.0 - r0) / (r0 * (1.0 - r1))),
            math.log((1.0 - r0) / (1.0 - r1)),
        )
    return math.log(r1 / r0), r1 - r0


def rate_threshold(
    family: Family,
    r0: float,
    arl0: float,
    shifts: tuple[float, ...],
    direction: Direction = "increase",
) -> float:
    """Threshold of the mixture CUSUM over ``shifts`` with in-control ARL ``arl0`` at rate ``r0``.

    Run lengths count observations (Bernoulli trials or units of exposure).
    ``C`` is computed on a log grid of rates (six per decade), cached, and
    interpolated in log-log, so a monitor with many streams simulates rarely.

    Method: for a CUSUM on log-likelihood ratios the in-control ARL grows as
    ``C * exp(h)`` (Siegmund 1985, eq. 2.53; Lorden's bound is ``C = 1``).
    ``C`` is estimated by simulating the mixture CUSUM at the rate ``r0`` to a
    moderate threshold, in event space (between two events the statistic
    moves deterministically), and ``h = log(arl0 / C)``. The simulation is
    seeded: the same inputs always give the same threshold.

    References
    ----------
    D. Siegmund, *Sequential Analysis: Tests and Confidence Intervals*,
    Springer, 1985, chapter II.
    """
    if not r0 > 0 or (family == "bernoulli" and r0 >= 1):
        raise ValueError(f"r0 must be a valid {family} rate, got {r0}")
    if arl0 <= 1:
        raise ValueError(f"arl0 must be > 1, got {arl0}")
    shifts = tuple(float(s) for s in shifts)
    # log C is smooth in log r: interpolate between the two grid rates around r0.
    x = math.log10(r0) * _GRID_PER_DECADE
    lo, hi = math.floor(x), math.ceil(x)
    w = x - lo
    log_c = 0.0
    for g, weight in ((lo, 1.0 - w), (hi, w)):
        if weight > 0:
            rate = 10 ** (g / _GRID_PER_DECADE)
            if family == "bernoulli":
                rate = min(rate, 0.999)
            c = _arl_constant(family, rate, shifts, direction)
            if math.log(arl0 / c) < _H_SIM - 1.0:
                # The law is asymptotic in h: below the simulated threshold, estimate C
                # again nearer the threshold in use (cheap: the cost grows like exp(h_sim)).
                near = max(round(4 * math.log(arl0 / c)) / 4, 1.0)
                c = _arl_constant(family, rate, shifts, direction, h_sim=near)
            log_c += weight * math.log(c)
    # A 10% margin on the run length covers the Monte Carlo error of C (about 5%).
    h = math.log(1.1 * arl0) - log_c
    return max(1.0, h)


_H_SIM = 7.0


@functools.lru_cache(maxsize=4096)
def _arl_constant(
    family: Family,
    r0: float,
    shifts: tuple[float, ...],
    direction: Direction,
    h_sim: float = _H_SIM,
    runs: int = 400,
) -> float:
    """``C`` in ``ARL0 ~ C exp(h)``, from ``runs`` simulated run lengths to ``h_sim``.

    Simulated in event space, a block of events at a time: between two events
    the statistic moves linearly (down for increase arms, up for decrease
    arms), so each event contributes a drift half-step and a jump half-step,
    and the Lindley recursion over a block is a running sum minus its running
    minimum.
    """
    rng = np.random.default_rng(20261127)
    r1 = [r0 * s if direction == "increase" else r0 / s for s in shifts]
    coef = np.array([llr_coefficients(family, r0, x) for x in r1])
    a, b = coef[:, 0], coef[:, 1]
    jump = a - b if family == "bernoulli" else a  # the event trial's own LLR
    block = 128
    k = len(shifts)
    state = np.zeros((runs, k))
    elapsed = np.zeros(runs)
    alive = np.arange(runs)  # chains still running; finished ones are dropped
    lengths = np.full(runs, np.nan)
    for _ in range(100_000):
        n = alive.size
        if n == 0:
            return float(lengths.mean() / math.exp(h_sim))
        if family == "bernoulli":
            gaps = rng.geometric(r0, (n, block)).astype(np.float64)
            drift = gaps - 1.0  # non-event trials before the event
        else:
            gaps = rng.exponential(1.0 / r0, (n, block))
            drift = gaps
        z = np.empty((n, 2 * block, k))
        z[:, 0::2, :] = -drift[:, :, None] * b
        z[:, 1::2, :] = jump
        c = np.cumsum(z, axis=1)
        path = c - np.minimum(np.minimum.accumulate(c, axis=1), -state[:, None, :])
        steps = np.empty((n, 2 * block))
        steps[:, 0::2] = drift
        steps[:, 1::2] = gaps - drift
        ends = elapsed[:, None] + np.cumsum(steps, axis=1)
        over = path.max(axis=2) >= h_sim
        hit = over.any(axis=1)
        for i in np.flatnonzero(hit):
            t = int(np.argmax(over[i]))
            if t % 2 == 0 and direction == "decrease":
                # Crossed during the rise between events: find when, exactly.
                before = path[i, t - 1] if t else state[i]
                start = ends[i, t - 1] if t else elapsed[i]
                lengths[alive[i]] = start + math.ceil(float(np.min((h_sim - before) / -b)))
            else:
                lengths[alive[i]] = ends[i, t]
        keep = ~hit
        alive, state, elapsed = alive[keep], path[keep, -1, :], ends[keep, -1]
    raise RuntimeError("calibration did not converge; the rate or shifts are degenerate")
