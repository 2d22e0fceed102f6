"""Threshold calibration: deterministic, monotone, and the empirical ARL0 near its target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import RateShiftDetector, calibration, lorden_threshold
from detectors.calibration import Direction, Family, rate_thresholds
from detectors.rate import DEFAULT_SHIFTS


def test_thresholds_are_deterministic_and_monotone() -> None:
    """Same inputs give the same h; each arm's h grows by log(10) per decade of ARL0."""
    h4 = rate_thresholds("bernoulli", 0.05, 1e4, DEFAULT_SHIFTS)
    assert h4 == rate_thresholds("bernoulli", 0.05, 1e4, DEFAULT_SHIFTS)
    h8 = rate_thresholds("bernoulli", 0.05, 1e8, DEFAULT_SHIFTS)
    for lo, hi in zip(h4, h8, strict=True):
        assert hi - lo == pytest.approx(4 * math.log(10), abs=0.6)


def test_small_shift_arms_get_lower_thresholds() -> None:
    """Equal in-control run length per arm: the arms for small shifts, slow to rise, stop lower."""
    for family, direction in (("bernoulli", "increase"), ("poisson", "decrease")):
        h = rate_thresholds(family, 0.02, 1e6, DEFAULT_SHIFTS, direction)  # type: ignore[arg-type]
        assert list(h) == sorted(h)
        assert h[-1] - h[0] > 1.0


def test_calibrated_thresholds_are_below_lordens_bound() -> None:
    """The bound ARL0 >= exp(h) is conservative; calibration gives a lower h for rare rates."""
    for rate in (0.002, 0.05):
        h = rate_thresholds("poisson", rate, 1e6, DEFAULT_SHIFTS)
        assert max(h) < lorden_threshold(1e6, len(DEFAULT_SHIFTS))


@pytest.mark.parametrize(
    ("family", "direction", "index"), [("poisson", "increase", 6), ("bernoulli", "decrease", -6)]
)
def test_shipped_table_is_reproduced_by_simulation(
    family: Family, direction: Direction, index: int
) -> None:
    """The precomputed grid is what the seeded simulation gives (regenerate it if not)."""
    rate = 10 ** (index / 6)
    shipped = calibration._table()[f"{family} {direction} {index}"]
    assert shipped["rate"] == pytest.approx(rate, rel=1e-12)
    fresh = calibration.table_point(family, direction, rate)
    assert fresh["offsets"] == shipped["offsets"]
    assert fresh["c"] == pytest.approx(shipped["c"], rel=1e-9)


def test_rates_off_the_grid_use_its_nearest_end() -> None:
    """A Bernoulli increase boundary above the grid's top is calibrated, not simulated forever."""
    top = rate_thresholds("bernoulli", 10 ** (-1 / 6), 1e6, DEFAULT_SHIFTS)
    assert rate_thresholds("bernoulli", 0.9, 1e6, DEFAULT_SHIFTS) == top


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
