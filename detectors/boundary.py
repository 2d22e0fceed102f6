"""Where a rate's tolerance lies, and the CUSUM arms that test beyond it.

A :class:`~detectors.rate.RateShiftDetector` tests the candidate against the
*boundary* of the tolerance region around the baseline's estimated rate, not
against the rate itself; these functions compute that boundary, the
log-likelihood-ratio coefficients of each arm (one per alternative shift and
direction) and the arms' calibrated thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaincinv, gammaincinv

from detectors.calibration import Direction, Family, llr_coefficients, rate_thresholds

__all__ = [
    "arm_coefficients",
    "arm_thresholds",
    "check_test",
    "check_tolerance",
    "rate_confidence_bounds",
    "tolerance_boundaries",
]

_EPS = 1e-12

#: (upper, lower) boundary rates; None where that side has no tolerance or no valid rate.
Boundaries = tuple[float | None, float | None]
_Num = TypeVar("_Num", float, NDArray[np.float64])


def rate_confidence_bounds(
    family: Family, count: _Num, exposure: _Num, alpha: float
) -> tuple[_Num, _Num]:
    """One-sided (lower, upper) confidence bounds on a rate, each at level ``1 - alpha``.

    Exact, not asymptotic: Clopper-Pearson for a Bernoulli share of ``count``
    successes in ``exposure`` trials, the Beta quantiles
    ``B(alpha; x, n - x + 1)`` and ``B(1 - alpha; x + 1, n - x)``; Garwood's
    for a Poisson rate of ``count`` events over ``exposure`` units, the Gamma
    quantiles ``G(alpha; x) / n`` and ``G(1 - alpha; x + 1) / n`` (the chi-square
    form divided by two). So ``P(upper < rate) <= alpha`` and ``P(lower > rate)
    <= alpha`` for every true rate and sample size. Without events the lower
    bound is 0; with no exposure the bounds are (0, 1) or (0, inf). Takes
    floats or arrays (elementwise).

    References
    ----------
    C. J. Clopper and E. S. Pearson, "The use of confidence or fiducial limits
    illustrated in the case of the binomial", Biometrika 26(4), 404-413, 1934.
    F. Garwood, "Fiducial limits for the Poisson distribution", Biometrika
    28(3/4), 437-442, 1936.

    >>> lo, up = rate_confidence_bounds("bernoulli", 40.0, 1000.0, 0.05)
    >>> round(lo, 4), round(up, 4)
    (0.0303, 0.0518)
    >>> lo, up = rate_confidence_bounds("poisson", 0.0, 1000.0, 0.05)   # rule of three
    >>> lo, round(up * 1000, 3)
    (0.0, 2.996)
    """
    x = np.asarray(count, dtype=np.float64)
    n = np.asarray(exposure, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if family == "bernoulli":
            x = np.minimum(x, n)
            upper = np.where(x < n, betaincinv(x + 1.0, n - x, 1.0 - alpha), 1.0)
            lower = np.where(x > 0, betaincinv(x, n - x + 1.0, alpha), 0.0)
        else:
            upper = np.where(n > 0, gammaincinv(x + 1.0, 1.0 - alpha) / n, np.inf)
            lower = np.where((x > 0) & (n > 0), gammaincinv(x, alpha) / n, 0.0)
    if np.ndim(upper) == 0:
        return float(lower), float(upper)  # type: ignore[return-value]
    return lower, upper  # type: ignore[return-value]


def check_test(family: str, h: float | None, arl0: float | None) -> None:
    """Refuse a rate test without a family it knows, or without a threshold or an ARL0."""
    if family not in ("bernoulli", "poisson"):
        raise ValueError(f"family must be 'bernoulli' or 'poisson', got {family!r}")
    if h is None and arl0 is None:
        raise ValueError("give a threshold h, or arl0 to calibrate one")
    if h is not None and not h > 0:
        raise ValueError(f"threshold h must be > 0, got {h}")
    if arl0 is not None and not arl0 > 1:
        raise ValueError(f"arl0 must be > 1, got {arl0}")


def check_tolerance(
    max_increase: float | None,
    max_decrease: float | None,
    max_relative_change: float | None,
    shifts: Sequence[float],
) -> None:
    """Refuse a tolerance a rate test cannot run with, or arms that test nothing beyond it."""
    if max_relative_change is not None and (max_increase is not None or max_decrease is not None):
        raise ValueError("give max_relative_change or max_increase/max_decrease, not both")
    if all(v is None for v in (max_increase, max_decrease, max_relative_change)):
        raise ValueError("one of max_increase, max_decrease, max_relative_change is required")
    for name, value in (
        ("max_increase", max_increase),
        ("max_decrease", max_decrease),
        ("max_relative_change", max_relative_change),
    ):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if not shifts or any(not s > 1 for s in shifts):
        raise ValueError(f"shifts must be a non-empty sequence of numbers > 1, got {shifts}")


def tolerance_boundaries(
    family: Family,
    ref_count: float,
    ref_exposure: float,
    *,
    confidence: float = 0.9,
    z: float | None = None,
    max_increase: float | None = None,
    max_decrease: float | None = None,
    max_relative_change: float | None = None,
) -> Boundaries:
    """The tolerance boundaries to test: around a confidence bound of the baseline rate.

    The baseline rate ``r`` is estimated from ``ref_count`` events over
    ``ref_exposure``. A detector calibrated at a boundary further out than the
    true one keeps (or exceeds) its in-control run length, one calibrated
    closer in does not; so the upper boundary is put around the upper
    confidence bound of ``r`` and the lower one around its lower bound
    (:func:`rate_confidence_bounds`): ``upper * (1 + max_relative_change)`` or
    ``upper + max_increase``, ``lower * (1 - max_relative_change)`` or
    ``lower - max_decrease``. With probability at least ``confidence`` over the
    baseline's sample both tested boundaries lie at or beyond the true ones,
    so the false-alarm promise holds *conditionally* on that sample (Jensen
    et al. 2006; the guarantee of Gandy & Kvaloy 2013, here exact rather than
    bootstrapped): with two sides each bound takes ``(1 - confidence) / 2``
    (Bonferroni; the two failures are disjoint, so the level is exact).

    ``z`` (a number) gives instead the normal approximation of releases
    before 0.3, ``r +- z * se`` with ``r`` smoothed as ``(count + 0.5) / (n + 1)``,
    which detectors restored from their checkpoints keep.

    References
    ----------
    W. A. Jensen, L. A. Jones-Farmer, C. W. Champ and W. H. Woodall, "Effects of
    parameter estimation on control chart properties: a literature review",
    J. Quality Technology 38(4), 349-364, 2006.
    A. Gandy and J. T. Kvaloy, "Guaranteed conditional performance of control
    charts via bootstrap methods", Scand. J. Statistics 40(4), 647-668, 2013.

    >>> up, down = tolerance_boundaries("bernoulli", 50, 1000, max_relative_change=0.5)
    >>> round(up, 4), round(down, 4)
    (0.0943, 0.0196)
    >>> up, down = tolerance_boundaries("bernoulli", 50, 1000, z=0.0, max_relative_change=0.5)
    >>> round(up, 4), round(down, 4)
    (0.0757, 0.0252)
    """
    sides = (
        2
        if max_relative_change is not None
        else ((max_increase is not None) + (max_decrease is not None))
    )
    if z is not None:
        n = ref_exposure
        r = (ref_count + 0.5) / (n + 1.0)
        var = r * (1.0 - r) if family == "bernoulli" else r
        se = z * math.sqrt(var / (n + 1.0))
        hi, lo = r + se, max(r - se, 0.0)
    else:
        alpha = (1.0 - confidence) / max(sides, 1)
        lo, hi = rate_confidence_bounds(family, float(ref_count), float(ref_exposure), alpha)
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
