"""DistributionShiftDetector: seeded false-alarm and delay bands, tolerance, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import DistributionShiftDetector
from detectors.distribution import distance

BINS = {"ks": 50, "wasserstein": 50, "js": 20}


def _bins(x: np.ndarray, n: int) -> np.ndarray:
    return np.minimum((x * n).astype(int), n - 1)


def _quantised(x: np.ndarray, offset: float) -> np.ndarray:
    """An int4-like score: rounded to sixteenths, then offset."""
    return np.clip(np.round(x * 16) / 16 + offset, 0.0, 1.0)


def _run(
    kind: str, candidate: np.ndarray, seed: int, tol: float = 0.1
) -> DistributionShiftDetector:
    rng = np.random.default_rng(seed)
    n = BINS[kind]
    det = DistributionShiftDetector(kind, tol, n, arl0=1e7)  # type: ignore[arg-type]
    det.update_reference(_bins(rng.beta(2, 5, 20_000), n))
    for chunk in np.array_split(_bins(candidate, n), 50):
        det.update_many(chunk)
    return det


@pytest.mark.parametrize("kind", sorted(BINS))
def test_no_false_alarm_without_drift(kind: str) -> None:
    """Same distribution for 30 seeded runs of 50k candidate scores: no alarm."""
    alarms = [
        _run(kind, np.random.default_rng(100 + s).beta(2, 5, 50_000), s).drift_detected
        for s in range(30)
    ]
    assert not any(alarms)


def test_shift_inside_tolerance_does_not_alarm() -> None:
    """A shift with KS distance ~0.05 under a 0.1 tolerance never alarms (30 seeds)."""
    for s in range(30):
        cand = np.random.default_rng(200 + s).beta(2.2, 5, 50_000)
        det = _run("ks", cand, s)
        assert 0.02 < det.observed_distance < 0.08
        assert not det.drift_detected


@pytest.mark.parametrize(("kind", "offset", "band"), [("ks", 0.05, 5_000), ("js", 0.1, 20_000)])
def test_quantisation_like_shift_is_found_within_a_band(
    kind: str, offset: float, band: int
) -> None:
    """Rounded-and-offset scores are found, median delay within the band.

    The JS radius grows with the number of bins (Agrawal's KL bound), so JS
    needs a larger shift or more data than KS for the same tolerance.
    """
    delays = []
    for s in range(10):
        cand = _quantised(np.random.default_rng(300 + s).beta(2, 5, 50_000), offset)
        det = _run(kind, cand, s)
        assert det.drift_detected
        delays.append(det.alarm_index)
    assert 200 <= float(np.median(delays)) <= band


def test_wasserstein_at_the_boundary_does_not_alarm() -> None:
    """A mean shift of exactly the tolerance (W1 ~ 0.1 = max_distance) does not alarm."""
    cand = np.clip(np.random.default_rng(5).beta(2, 5, 50_000) + 0.1, 0, 1)
    det = _run("wasserstein", cand, 5)
    assert 0.09 < det.observed_distance < 0.11
    assert not det.drift_detected


def test_total_variation_on_categories() -> None:
    """A tool mix moving 20% of its mass is found under a 0.05 TV tolerance."""
    rng = np.random.default_rng(9)
    det = DistributionShiftDetector("tv", 0.05, 16, arl0=1e7)
    det.update_reference(rng.choice(4, 20_000, p=[0.5, 0.3, 0.15, 0.05]))
    det.update_many(rng.choice(4, 20_000, p=[0.3, 0.3, 0.15, 0.25]))
    assert det.drift_detected
    assert det.observed_distance == pytest.approx(0.2, abs=0.02)


def test_distance_definitions() -> None:
    """The distances agree with their definitions on small histograms."""
    p, q = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    assert distance("ks", p, q) == pytest.approx(1.0)
    assert distance("tv", p, q) == pytest.approx(1.0)
    assert distance("js", p, q) == pytest.approx(1.0)
    assert distance("wasserstein", p, q) == pytest.approx(2 / 3)
    assert distance("ks", p, p) == 0.0


def test_invalid_input() -> None:
    """Bad parameters and out-of-range bins raise ValueError."""
    with pytest.raises(ValueError):
        DistributionShiftDetector("cramer", 0.1, 10, 1e6)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DistributionShiftDetector("ks", 1.5, 10, 1e6)
    det = DistributionShiftDetector("ks", 0.1, 10, 1e6)
    with pytest.raises(ValueError):
        det.update_many([10])
    with pytest.raises(ValueError):
        det.update_counts([1, 2])


@settings(max_examples=30, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=6),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_batch_splitting_does_not_change_results(cuts: list[int], seed: int) -> None:
    """Feeding the same observations in different chunks gives the same state."""
    rng = np.random.default_rng(seed)
    ref = _bins(rng.beta(2, 5, 2_000), 20)
    cand = _bins(_quantised(rng.beta(2, 5, 3_000), 0.03), 20)
    whole = DistributionShiftDetector("js", 0.1, 20, 1e6, min_reference=100, min_observations=50)
    split = DistributionShiftDetector("js", 0.1, 20, 1e6, min_reference=100, min_observations=50)
    for det in (whole, split):
        det.update_reference(ref)
    whole.update_many(cand)
    for chunk in np.split(cand, sorted(set(cuts))):
        split.update_many(chunk)
    assert split.state() == whole.state()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(min_value=0, max_value=1000), cut=st.integers(min_value=0, max_value=3000))
def test_state_round_trip_gives_identical_future_decisions(seed: int, cut: int) -> None:
    """A detector restored from state() decides exactly as the original."""
    rng = np.random.default_rng(seed)
    cand = _bins(_quantised(rng.beta(2, 5, 3_000), 0.03), 50)
    det = DistributionShiftDetector("ks", 0.1, 50, 1e6, min_reference=100, min_observations=50)
    det.update_reference(_bins(rng.beta(2, 5, 2_000), 50))
    det.update_many(cand[:cut])
    clone = DistributionShiftDetector.from_state(det.state())
    det.update_many(cand[cut:])
    clone.update_many(cand[cut:])
    assert clone.state() == det.state()
