"""Equal-age false-negative tests: label arrival (Kaplan-Meier), time-uniform bounds, budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import EqualAgeRateDetector
from detectors.arrival import LabelArrival
from detectors.bounds import share_bounds


def _arrival(seed: int, days: float, mean_delay: float) -> LabelArrival:
    rng = np.random.default_rng(seed)
    est = LabelArrival([1800.0, 3600.0], horizon=43_200.0, bucket_seconds=300.0)
    end = days * 86_400.0
    t = np.sort(rng.uniform(0, end, 30_000))
    delay = rng.exponential(mean_delay, t.size)
    positive = rng.random(t.size) < 0.05
    for at, d, pos in zip(t.tolist(), delay.tolist(), positive.tolist(), strict=True):
        est.add_decision(at)
        if pos and at + d <= end:
            est.add_label(at, d)
    return est


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_arrival_share_matches_the_delay_distribution(seed: int) -> None:
    """With a full horizon of follow-up, F(a) is within 0.05 of 1 - exp(-a / mean)."""
    est = _arrival(seed, days=2.0, mean_delay=7200.0)
    for age in (1800.0, 3600.0):
        share, complete = est.share(age, 2 * 86_400.0)
        assert complete
        assert abs(share - (1 - math.exp(-age / 7200.0))) < 0.05


def test_arrival_before_a_full_horizon_overstates_and_says_so() -> None:
    """Followed up 3 h only, F(1 h) is F(1 h) / F(~3 h): higher than the truth, flagged."""
    est = _arrival(4, days=3 * 3600.0 / 86_400.0, mean_delay=7200.0)
    share, complete = est.share(3600.0, 3 * 3600.0)
    assert not complete
    assert share > 1 - math.exp(-0.5) + 0.05


def test_arrival_folding_changes_nothing() -> None:
    """Summing buckets followed past the horizon leaves the estimate unchanged."""
    est = _arrival(5, days=2.0, mean_delay=7200.0)
    before = est.share(3600.0, 2 * 86_400.0)
    est.fold(2 * 86_400.0 - 600.0)
    assert est.share(3600.0, 2 * 86_400.0) == pytest.approx(before, rel=1e-12)


def test_share_bounds_hold_at_every_sample_size_at_once() -> None:
    """Over 400 seeded sequences of 3,000 trials at 1%, the 95% sequence misses the true
    share at some point in at most 5% of them (time-uniform, not per sample size)."""
    rng = np.random.default_rng(7)
    misses = 0
    checkpoints = np.unique(np.geomspace(20, 3000, 40).astype(int))
    for _ in range(400):
        cum = np.cumsum(rng.random(3000) < 0.01)
        for n in checkpoints:
            low, high = share_bounds(float(cum[n - 1]), float(n), 0.05)
            if not low <= 0.01 <= high:
                misses += 1
                break
    assert misses / 400 <= 0.05


def test_budget_is_split_over_ages_at_the_tolerance_boundary() -> None:
    """Candidates exactly on the scaled boundary at two ages: false alarms within 1,500
    observations per age stay within the budget (at most ~2 x 1500 / (3 x arl0) of runs)."""
    arl0, n, p = 3000.0, 1500, 0.01
    shares = (0.4, 0.7)
    rng = np.random.default_rng(9)
    runs, alarms = 300, 0
    for _ in range(runs):
        det = EqualAgeRateDetector([1800.0, 3600.0], arl0=arl0, max_increase=0.01)
        for k, f in enumerate(shares):
            det.update_reference_at(k, round(p * f * 1e6), 1e6)
            det.set_arrival(k, f, complete=True)
        for k, f in enumerate(shares):
            boundary = p * f + 0.01 * f
            hits = (rng.random(n) < boundary).reshape(-1, 20).sum(axis=1)
            for count in hits.tolist():
                det.update_at(k, count, 20)
        alarms += det.drift_detected
    expected = 1 - math.exp(-2 * n / (3 * arl0))
    assert alarms / runs <= 1.5 * expected


def test_a_relative_shift_fires_at_the_age_and_names_it() -> None:
    """FN five times the baseline's, seen at 1 h: the age's test fires; evidence names the age."""
    rng = np.random.default_rng(12)
    det = EqualAgeRateDetector([3600.0], arl0=1e7, max_relative_change=0.5)
    det.update_reference_at(0, int((rng.random(20_000) < 0.004).sum()), 20_000)
    for _ in range(40):
        det.update_at(0, int((rng.random(500) < 0.02).sum()), 500)
    assert det.drift_detected and det.fired_age == 3600.0
    assert det.evidence().details["label_age_seconds"] == 3600.0
    assert det.fired_detector is not det.horizon


@pytest.mark.parametrize("complete", [False, True])
def test_an_absolute_tolerance_is_shown_met_only_on_a_complete_arrival_curve(
    complete: bool,
) -> None:
    """An unchanged candidate at 1 h with F = 0.4: ok only once F rests on a full horizon."""
    rng = np.random.default_rng(13)
    det = EqualAgeRateDetector([3600.0], arl0=1e7, max_increase=0.01)
    det.set_arrival(0, 0.4, complete=complete)
    det.update_reference_at(0, int((rng.random(60_000) < 0.004).sum()), 60_000)
    det.update_at(0, int((rng.random(60_000) < 0.004).sum()), 60_000)
    assert not det.drift_detected
    assert det.conclusive is complete
    assert (det.inside_age == 3600.0) is complete


def test_without_labels_nothing_is_conclusive() -> None:
    """Zero positives on both sides at every age is no evidence: never conclusive."""
    det = EqualAgeRateDetector([600.0, 3600.0], arl0=1e7, max_relative_change=0.2)
    for k in range(2):
        det.update_reference_at(k, 0, 100_000)
        det.update_at(k, 0, 100_000)
    assert not det.conclusive and not det.drift_detected
