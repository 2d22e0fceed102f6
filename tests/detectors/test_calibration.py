"""Threshold calibration: deterministic, monotone, and the empirical ARL0 near its target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import RateShiftDetector, lorden_threshold
from detectors.calibration import rate_threshold
from detectors.rate import DEFAULT_SHIFTS


def test_threshold_is_deterministic_and_monotone() -> None:
    """Same inputs give the same h; h grows by log(10) per decade of ARL0 (slope-1 law)."""
    h4 = rate_threshold("bernoulli", 0.05, 1e4, DEFAULT_SHIFTS)
    assert h4 == rate_threshold("bernoulli", 0.05, 1e4, DEFAULT_SHIFTS)
    h8 = rate_threshold("bernoulli", 0.05, 1e8, DEFAULT_SHIFTS)
    assert h8 - h4 == pytest.approx(4 * math.log(10), abs=0.6)


def test_calibrated_threshold_is_below_lordens_bound() -> None:
    """The bound ARL0 >= exp(h) is conservative; calibration gives a lower h for rare rates."""
    for rate in (0.002, 0.05):
        assert rate_threshold("poisson", rate, 1e6, DEFAULT_SHIFTS) < lorden_threshold(1e6, 4)


@pytest.mark.parametrize(("base", "tol"), [(0.005, 0.005), (0.04, 0.01)])
def test_empirical_arl0_is_near_the_target(base: float, tol: float) -> None:
    """At the tolerance boundary, 300 seeded runs give ARL0 within [0.8, 1.5] x 3000."""
    rng = np.random.default_rng(11)
    target = 3000.0
    lengths = []
    for _ in range(300):
        det = RateShiftDetector("bernoulli", arl0=target, max_increase=tol, z=0.0)
        det.update_reference(base * 1e9, 1e9)
        while not det.drift_detected:
            det.update_many(rng.random(10_000) < base + tol)
        lengths.append(det.alarm_index)
    assert 0.8 <= float(np.mean(lengths)) / target <= 1.5


def test_threshold_resolved_once_the_baseline_is_ready() -> None:
    """With arl0 and no h, the threshold is nan until the baseline is ready, then fixed."""
    det = RateShiftDetector("poisson", arl0=1e6, max_relative_change=0.25, min_reference=100)
    assert math.isnan(det.threshold)
    det.update_reference(10, 200)
    det.update_many(np.zeros(10))
    h = det.threshold
    assert 1 < h < lorden_threshold(2e6, 8)
    det.update_reference(1000, 2000)
    det.update_many(np.zeros(10))
    assert det.threshold == h
