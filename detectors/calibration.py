"""Thresholds for a target false-alarm rate, computed once before detection starts.

The policy's false-alarm budget is one ``arl0`` per model, shared by all
of its checks and segment streams. It is split evenly: with ``m`` detectors
(checks x streams, counting the segment cap, not the values seen so far), each
detector gets a false-alarm rate of ``1 / (m * arl0)`` per candidate
observation, so the model-wide rate is at most ``1 / arl0`` (union bound).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEFAULT_SHIFTS",
    "NEAR_BOUNDARY_SHIFTS",
    "Direction",
    "Family",
    "detector_arl0",
    "llr_coefficients",
    "lorden_threshold",
    "rate_thresholds",
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
#: Alternatives a rate detector tries, as multiples of the tolerance boundary rate (up) or
#: divisors (down): the one definition of the grid, which the precomputed table covers.
DEFAULT_SHIFTS: tuple[float, ...] = (1.2, 1.4, 1.7, 2.2, 3.0)
#: The default grid with arms for violations just past the boundary (1.05 to 1.2 times it):
#: adjacent arms at most a factor 2 apart in excess ``s - 1``. Not tabled yet, so each
#: grid point is simulated on first use (about 30 s of one core; see docs/detectors.md).
NEAR_BOUNDARY_SHIFTS: tuple[float, ...] = (1.05, 1.1, *DEFAULT_SHIFTS)

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


def rate_thresholds(
    family: Family,
    r0: float,
    arl0: float,
    shifts: tuple[float, ...],
    direction: Direction = "increase",
) -> tuple[float, ...]:
    """Per-arm thresholds of a multi-chart CUSUM over ``shifts``: in-control ARL ``arl0`` at ``r0``.

    One CUSUM runs per alternative ``r0 * s`` (or ``r0 / s``) and the detector
    alarms when any arm ``i`` exceeds its own threshold ``h_i``. A common
    threshold (Lorden's GLR discretised) lets the arms for large shifts, whose
    in-control run length at a given ``h`` is shortest, set ``h`` for every
    arm, and slows the small-shift arms by up to 3 nats; instead each arm gets
    the threshold that gives it the same in-control run length, the CUSUM
    multi-chart of Han, Tsung, Hu and Wang (2007), and the common level is
    then calibrated for the multi-chart as a whole.

    Run lengths count observations (Bernoulli trials or units of exposure).
    Method: for a CUSUM on log-likelihood ratios the in-control ARL grows as
    ``C exp(h)`` (Siegmund 1985, eq. 2.53; Lorden's bound is ``C = 1``). Each
    arm's ``C_i`` is estimated by simulation; with offsets ``o_i = log C_i -
    max_j log C_j`` the statistic ``max_i (S_i + o_i)`` has one constant ``C``,
    estimated by simulating the multi-chart, and ``h_i = log(arl0 / C) - o_i``.
    Simulations run in event space (between two events every arm moves
    deterministically), at a log grid of rates (six per decade), seeded and
    cached, and interpolated in log-log, so a monitor with many streams
    simulates rarely; for the default shifts the grid is precomputed
    (:data:`detectors.calibration_table`), so no stream waits for a simulation.

    References
    ----------
    D. Siegmund, *Sequential Analysis: Tests and Confidence Intervals*,
    Springer, 1985, chapter II.
    D. Han, F. Tsung, X. Hu and K. Wang, "CUSUM and EWMA multi-charts for
    detecting a range of mean shifts", Statistica Sinica 17, 1139-1164, 2007.

    >>> h = rate_thresholds("bernoulli", 0.05, 1e5, (1.2, 3.0))
    >>> h[0] < h[1]   # the small-shift arm gets the lower threshold
    True
    """
    if not r0 > 0 or (family == "bernoulli" and r0 >= 1):
        raise ValueError(f"r0 must be a valid {family} rate, got {r0}")
    if arl0 <= 1:
        raise ValueError(f"arl0 must be > 1, got {arl0}")
    shifts = tuple(float(s) for s in shifts)
    # log C and the offsets are smooth in log r: interpolate between the grid rates around r0.
    # Outside the grid, the nearest end is used.
    bottom, top = _grid_range(family, direction)
    x = min(max(math.log10(r0) * _GRID_PER_DECADE, bottom), top)
    lo, hi = math.floor(x), math.ceil(x)
    w = x - lo
    log_c = 0.0
    offsets = np.zeros(len(shifts))
    for g, weight in ((lo, 1.0 - w), (hi, w)):
        if weight > 0:
            rate = 10 ** (g / _GRID_PER_DECADE)
            if family == "bernoulli":
                rate = min(rate, 0.999)
            off = _arm_offsets(family, rate, shifts, direction)
            c = _multi_chart_constant(family, rate, shifts, direction, off)
            if math.log(arl0 / c) < _H_SIM - 1.0:
                # The law is asymptotic in h: below the simulated threshold, estimate C
                # again nearer the threshold in use (cheap: the cost grows like exp(h_sim)).
                near = max(round(4 * math.log(arl0 / c)) / 4, 1.0)
                c = _multi_chart_constant(family, rate, shifts, direction, off, h_sim=near)
            log_c += weight * math.log(c)
            offsets += weight * np.asarray(off)
    # A 10% margin on the run length covers the Monte Carlo error of C (about 5%).
    level = max(1.0, math.log(1.1 * arl0) - log_c)
    return tuple(float(level - o) for o in offsets)


_H_SIM = 7.0
#: Each arm's own constant is simulated to this threshold: it only sets the offsets.
_H_ARM = 5.0


@functools.lru_cache(maxsize=4096)
def _arm_offsets(
    family: Family, r0: float, shifts: tuple[float, ...], direction: Direction
) -> tuple[float, ...]:
    """``log C_i - max_j log C_j`` per arm, rounded to 0.01 (a cache key of the multi-chart)."""
    tabled = _table_entry(family, r0, shifts, direction)
    if tabled is not None:
        return tabled[0]
    logs = [math.log(_arl_constant(family, r0, (s,), direction, h_sim=_H_ARM)) for s in shifts]
    return tuple(round(v - max(logs), 2) for v in logs)


def _multi_chart_constant(
    family: Family,
    r0: float,
    shifts: tuple[float, ...],
    direction: Direction,
    offsets: tuple[float, ...],
    h_sim: float = _H_SIM,
) -> float:
    """``C`` of the multi-chart, from the precomputed table when it has this point."""
    if h_sim == _H_SIM:
        tabled = _table_entry(family, r0, shifts, direction)
        if tabled is not None and tabled[0] == offsets:
            return tabled[1]
    return _arl_constant(family, r0, shifts, direction, h_sim, offsets=offsets)


def _table_entry(
    family: Family, r0: float, shifts: tuple[float, ...], direction: Direction
) -> tuple[tuple[float, ...], float] | None:
    """(offsets, C) precomputed for this grid point, or None."""
    if shifts != DEFAULT_SHIFTS:
        return None
    entry = _table().get(f"{family} {direction} {round(math.log10(r0) * _GRID_PER_DECADE)}")
    if entry is None or not math.isclose(entry["rate"], r0, rel_tol=1e-9):
        return None
    return tuple(entry["offsets"]), float(entry["c"])


_TABLE_FILE = "calibration_table.json"


@functools.cache
def _table() -> dict[str, dict[str, Any]]:
    """The precomputed grid (see :func:`write_table`); empty if the file is missing."""
    path = Path(__file__).with_name(_TABLE_FILE)
    if not path.exists():
        return {}
    data: dict[str, dict[str, Any]] = json.loads(path.read_text())["points"]
    return data


def _grid_range(family: Family, direction: Direction) -> tuple[int, int]:
    """The grid's first and last index (rate ``10 ** (index / 6)``) for a family and direction.

    Rates run from 1e-6 up to 100 events per inference (Poisson), to 0.999
    (Bernoulli decrease) and to 0.68 for a Bernoulli increase: above that
    boundary most arms would ask for a rate near or beyond 1, and their
    CUSUMs barely move.
    """
    if family == "poisson":
        return -6 * _GRID_PER_DECADE, 2 * _GRID_PER_DECADE
    return -6 * _GRID_PER_DECADE, (-1 if direction == "increase" else 0)


def table_points() -> list[tuple[Family, Direction, int, float]]:
    """The grid points the shipped table holds (see :func:`_grid_range`)."""
    out: list[tuple[Family, Direction, int, float]] = []
    for family in ("bernoulli", "poisson"):
        for direction in ("increase", "decrease"):
            bottom, top = _grid_range(family, direction)
            for g in range(bottom, top + 1):
                rate = 10 ** (g / _GRID_PER_DECADE)
                if family == "bernoulli":
                    rate = min(rate, 0.999)
                out.append((family, direction, g, rate))
    return out


def table_point(family: Family, direction: Direction, rate: float) -> dict[str, Any]:
    """One precomputed grid point, simulated (ignores the shipped table)."""
    logs = [
        math.log(_arl_constant(family, rate, (s,), direction, h_sim=_H_ARM)) for s in DEFAULT_SHIFTS
    ]
    offsets = tuple(round(v - max(logs), 2) for v in logs)
    c = _arl_constant(family, rate, DEFAULT_SHIFTS, direction, _H_SIM, offsets=offsets)
    return {"rate": rate, "offsets": list(offsets), "c": c}


@functools.lru_cache(maxsize=4096)
def _arl_constant(
    family: Family,
    r0: float,
    shifts: tuple[float, ...],
    direction: Direction,
    h_sim: float = _H_SIM,
    runs: int = 400,
    offsets: tuple[float, ...] | None = None,
) -> float:
    """``C`` in ``ARL0 ~ C exp(h)`` for ``max_i (S_i + offsets_i)``, from ``runs`` run lengths.

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
    off = np.zeros(len(shifts)) if offsets is None else np.asarray(offsets, dtype=np.float64)
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
        over = (path + off).max(axis=2) >= h_sim
        hit = over.any(axis=1)
        for i in np.flatnonzero(hit):
            t = int(np.argmax(over[i]))
            if t % 2 == 0 and direction == "decrease":
                # Crossed during the rise between events: find when, exactly.
                before = path[i, t - 1] if t else state[i]
                start = ends[i, t - 1] if t else elapsed[i]
                rise = np.min((h_sim - off - before) / -b)
                lengths[alive[i]] = start + math.ceil(float(rise))
            else:
                lengths[alive[i]] = ends[i, t]
        keep = ~hit
        alive, state, elapsed = alive[keep], path[keep, -1, :], ends[keep, -1]
    raise RuntimeError("calibration did not converge; the rate or shifts are degenerate")
