"""Where a rate's tolerance lies, and the CUSUM arms that test beyond it.

A :class:`~detectors.rate.RateShiftDetector` tests the candidate against the
*boundary* of the tolerance region around the baseline's estimated rate, not
against the rate itself; these functions compute that boundary, the
log-likelihood-ratio coefficients of each arm (one per alternative shift and
direction) and the arms' calibrated thresholds.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from detectors.calibration import Direction, Family, llr_coefficients, rate_thresholds

__all__ = ["arm_coefficients", "arm_thresholds", "tolerance_boundaries"]

_EPS = 1e-12

#: (upper, lower) boundary rates; None where that side has no tolerance or no valid rate.
Boundaries = tuple[float | None, float | None]


def tolerance_boundaries(
    family: Family,
    ref_count: float,
    ref_exposure: float,
    z: float,
    *,
    max_increase: float | None = None,
    max_decrease: float | None = None,
    max_relative_change: float | None = None,
) -> Boundaries:
    """The tolerance boundaries around the baseline rate, moved out by ``z`` standard errors.

    The baseline rate is estimated, smoothed so that a baseline that never saw
    the event still gives a finite boundary; moving the boundary outwards by
    its standard error makes an uncertain baseline delay an alarm rather than
    cause a false one.

    >>> up, down = tolerance_boundaries("bernoulli", 50, 1000, 0.0, max_relative_change=0.5)
    >>> round(up, 4), round(down, 4)
    (0.0757, 0.0252)
    """
    n = ref_exposure
    r = (ref_count + 0.5) / (n + 1.0)
    var = r * (1.0 - r) if family == "bernoulli" else r
    se = z * math.sqrt(var / (n + 1.0))
    hi, lo = r + se, max(r - se, 0.0)
    if max_relative_change is not None:
        up: float | None = hi * (1.0 + max_relative_change)
        down: float | None = lo * (1.0 - max_relative_change)
    else:
        up = hi + max_increase if max_increase is not None else None
        down = lo - max_decrease if max_decrease is not None else None
    if up is not None and not up < (1.0 if family == "bernoulli" else math.inf):
        up = None
    if down is not None and not down > _EPS:
        down = None
    return up, down


def arm_coefficients(
    family: Family, boundaries: Boundaries, shifts: tuple[float, ...]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per arm (a, b): the log-likelihood ratio of (count, exposure) is ``count*a - exposure*b``.

    The first ``len(shifts)`` arms test increases to ``up * s``, the others
    decreases to ``down / s``; an arm without a boundary has ``b = inf`` and
    never accumulates.
    """
    up, down = boundaries
    k = len(shifts)
    a = np.zeros(2 * k)
    b = np.full(2 * k, np.inf)
    for i, s in enumerate(shifts):
        if up is not None:
            a[i], b[i] = llr_coefficients(family, up, up * s)
        if down is not None:
            a[k + i], b[k + i] = llr_coefficients(family, down, down / s)
    return a, b


def arm_thresholds(
    family: Family, boundaries: Boundaries, shifts: tuple[float, ...], arl0: float
) -> NDArray[np.float64]:
    """Per-arm thresholds for an in-control run length ``arl0`` at the boundaries.

    Two directions share the budget: each gets twice the run length. An arm
    without a boundary gets an infinite threshold.
    """
    k = len(shifts)
    out = np.full(2 * k, np.inf)
    up, down = boundaries
    sides: list[tuple[float, Direction, slice]] = []
    if up is not None:
        sides.append((up, "increase", slice(0, k)))
    if down is not None:
        sides.append((down, "decrease", slice(k, 2 * k)))
    budget = arl0 * len(sides)
    for rate, direction, arms in sides:
        out[arms] = rate_thresholds(family, rate, budget, shifts, direction)
    return out
