"""Rate detectors on an estimated baseline: conditional false-alarm guarantee and delay bands."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors import RateShiftDetector
from detectors.boundary import rate_confidence_bounds, tolerance_boundaries
from detectors.calibration import Family


@pytest.mark.parametrize(
    ("family", "tol", "true_up", "true_down"),
    [
        ("bernoulli", {"max_relative_change": 0.25}, 0.05, 0.03),
        ("bernoulli", {"max_increase": 0.01}, 0.05, None),
        ("poisson", {"max_relative_change": 0.25}, 0.05, 0.03),
    ],
)
def test_tested_boundaries_cover_the_true_ones_in_90_percent_of_samples(
    family: Family, tol: dict[str, float], true_up: float, true_down: float | None
) -> None:
    """Over 2,000 seeded baselines of 20k, both tested boundaries lie at or beyond the true
    ones in 89-95% of samples (the exact bounds guarantee >= 90%, up to Monte Carlo error)."""
    rng = np.random.default_rng(7)
    n = 20_000
    draws = rng.binomial(n, 0.04, 2000) if family == "bernoulli" else rng.poisson(0.04 * n, 2000)
    covered = 0
    for count in draws:
        up, down = tolerance_boundaries(family, float(count), n, confidence=0.9, **tol)
        assert up is not None
        covered += up >= true_up and (true_down is None or down is None or down <= true_down)
    assert 0.89 <= covered / draws.size <= 0.95


def test_confidence_bounds_are_the_exact_quantiles() -> None:
    """Clopper-Pearson and Garwood bounds equal the Beta and chi-square quantiles."""
    lo, up = rate_confidence_bounds("bernoulli", 40.0, 1000.0, 0.05)
    assert lo == pytest.approx(stats.beta.ppf(0.05, 40, 961), rel=1e-9)
    assert up == pytest.approx(stats.beta.ppf(0.95, 41, 960), rel=1e-9)
    lo, up = rate_confidence_bounds("poisson", 12.0, 300.0, 0.1)
    assert lo == pytest.approx(stats.chi2.ppf(0.1, 24) / 2 / 300, rel=1e-9)
    assert up == pytest.approx(stats.chi2.ppf(0.9, 26) / 2 / 300, rel=1e-9)
    assert rate_confidence_bounds("bernoulli", 0.0, 0.0, 0.1) == (0.0, 1.0)
    assert rate_confidence_bounds("bernoulli", 50.0, 50.0, 0.1)[1] == 1.0


def _alarm_share(baseline: int | None, runs: int, length: int, seed: int) -> float:
    """Share of runs at the TRUE boundary (5%) alarming within ``length`` (ARL0 = 2000)."""
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(runs):
        det = RateShiftDetector("bernoulli", arl0=2000, max_increase=0.01)
        if baseline is None:  # known exactly
            det.update_reference(0.04 * 1e9, 1e9)
        else:
            det.update_reference(float(rng.binomial(baseline, 0.04)), baseline)
        det.update_many(rng.random(length) < 0.05)
        alarms += det.drift_detected
    return alarms / runs


def test_null_runs_on_an_estimated_baseline_keep_the_false_alarm_rate() -> None:
    """400 null runs of 1,000 observations at the true boundary, each on its own 20k baseline,
    alarm no more often than on a baseline known exactly (within 4 points of Monte Carlo
    error), which alarms in 15-45% of runs at ARL0 2000."""
    known = _alarm_share(None, 400, 1000, seed=1)
    estimated = _alarm_share(20_000, 400, 1000, seed=2)
    assert 0.15 <= known <= 0.45
    assert estimated <= known + 0.04


def test_shift_just_past_the_boundary_is_found() -> None:
    """A candidate 1.1x past the boundary (5% -> 5.5%, 1M baseline, ARL0 1e4) alarms in
    every seeded run within 100k observations, median 2k-15k."""
    delays = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        det = RateShiftDetector("bernoulli", arl0=1e4, max_relative_change=0.25)
        det.update_reference(float(rng.binomial(1_000_000, 0.04)), 1_000_000)
        while not det.drift_detected and det.observations < 100_000:
            det.update_many(rng.random(20_000) < 0.055)
        assert det.drift_detected
        delays.append(det.alarm_index)
    assert 2_000 <= float(np.median(delays)) <= 15_000


def test_a_state_without_baseline_confidence_restores_with_its_normal_bound() -> None:
    """A detector state of an older release (z = 2, no baseline_confidence) still loads, and
    keeps the boundary it was tested against."""
    det = RateShiftDetector("bernoulli", arl0=1e4, max_relative_change=0.25, z=2.0)
    det.update_reference(800, 20_000)
    snapshot = det.state()
    del snapshot["params"]["baseline_confidence"]
    restored = RateShiftDetector.from_state(snapshot)
    assert restored.baseline_confidence == 0.9 and restored.z == 2.0
    assert restored.boundaries == det.boundaries
    assert restored.thresholds == det.thresholds


def test_baseline_confidence_is_validated() -> None:
    """A confidence outside [0.5, 1) is refused with a message naming it."""
    for bad in (0.3, 1.0):
        with pytest.raises(ValueError, match="baseline_confidence"):
            RateShiftDetector("bernoulli", 5.0, max_increase=0.01, baseline_confidence=bad)
