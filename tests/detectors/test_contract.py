"""The detector contract of ``detectors.base.Detector``, checked over every detector."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable

import numpy as np
import pytest

from detectors import (
    Detector,
    DistributionShiftDetector,
    EqualAgeRateDetector,
    NovelToolDetector,
    RateShiftDetector,
)

#: Every detector with a factory making a valid instance, a baseline feeder and candidate data.
FACTORIES: dict[str, Callable[[], Detector]] = {
    "rate-bernoulli": lambda: RateShiftDetector("bernoulli", 8.0, max_relative_change=0.25),
    "rate-poisson": lambda: RateShiftDetector("poisson", 8.0, max_increase=0.01),
    "novel-tool": lambda: NovelToolDetector(min_reference=50),
    "distribution-ks": lambda: DistributionShiftDetector("ks", 0.1, 20, 1e6),
    "distribution-tv": lambda: DistributionShiftDetector("tv", 0.05, 8, 1e6),
    "equal-age": lambda: EqualAgeRateDetector([3600.0], arl0=1e4, max_relative_change=0.25),
}


def _feed(det: Detector, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if isinstance(det, RateShiftDetector):
        det.update_reference(count=800, exposure=10_000)
        det.update_many(rng.random(3_000) < 0.16)
    elif isinstance(det, EqualAgeRateDetector):
        det.update_reference(count=800, exposure=10_000)
        det.update_reference_at(0, count=800, exposure=10_000)
        for x in (rng.random(3_000) < 0.16).reshape(-1, 100).sum(axis=1).tolist():
            det.update_at(0, x, 100)
        det.update_many(rng.random(300) < 0.08)
    elif isinstance(det, DistributionShiftDetector):
        det.update_reference(rng.integers(0, det.n_bins, 1_000))
        det.update_many(rng.integers(0, det.n_bins // 2, 1_000))
    elif isinstance(det, NovelToolDetector):
        for tool in rng.choice(["a", "b", "c"], size=100):
            det.update_reference(str(tool))
        det.update_many(["a", "b", "zz"])


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_constructor_arguments_are_public_attributes(name: str) -> None:
    """Each constructor parameter is readable as an attribute of the same name."""
    det = FACTORIES[name]()
    for param in inspect.signature(type(det).__init__).parameters:
        if param != "self":
            assert hasattr(det, param), param
    assert set(type(det).param_keys) == {
        p for p in inspect.signature(type(det).__init__).parameters if p != "self"
    }


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_keys_are_private_attributes(name: str) -> None:
    """Every name in state_keys is a private attribute; none is public."""
    det = FACTORIES[name]()
    assert type(det).state_keys
    for key in type(det).state_keys:
        assert hasattr(det, f"_{key}")


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_update_returns_none_and_results_are_read_only(name: str) -> None:
    """update() returns None; drift_detected and statistic cannot be assigned."""
    det = FACTORIES[name]()
    _feed(det, 0)
    assert det.update("a" if isinstance(det, NovelToolDetector) else 1) is None
    assert isinstance(det.drift_detected, bool)
    assert isinstance(det.statistic, float)
    with pytest.raises(AttributeError):
        det.drift_detected = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        det.statistic = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_is_json_and_round_trips(name: str) -> None:
    """state() is JSON-serialisable and from_state() restores an equal detector."""
    det = FACTORIES[name]()
    _feed(det, 1)
    snapshot = json.loads(json.dumps(det.state()))
    restored = type(det).from_state(snapshot)
    assert restored.state() == det.state()
    assert restored.statistic == det.statistic
    assert restored.drift_detected == det.drift_detected


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_from_state_refuses_another_type(name: str) -> None:
    """A snapshot of one detector type is not silently loaded as another."""
    det = FACTORIES[name]()
    snapshot = det.state() | {"type": "SomethingElse"}
    with pytest.raises(ValueError, match="SomethingElse"):
        type(det).from_state(snapshot)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_docstring_has_example_and_references(name: str) -> None:
    """The class docstring carries Parameters, a doctest Example and References (numpydoc)."""
    doc = inspect.getdoc(type(FACTORIES[name]())) or ""
    for section in ("Parameters", "Examples", "References", ">>>"):
        assert section in doc


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_reset_forgets_the_candidate_and_keeps_the_baseline(name: str) -> None:
    """After reset() no drift is latched, and the baseline's side of the evidence is kept."""
    det = FACTORIES[name]()
    _feed(det, 2)
    assert det.drift_detected, "the contract feed drifts every detector"
    before = det.evidence()
    det.reset()
    after = det.evidence()
    assert not det.drift_detected
    assert after.baseline_seen == before.baseline_seen > 0
    assert after.candidate_seen == 0
    assert det.ready


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_evidence_reports_what_the_detector_saw(name: str) -> None:
    """evidence() gives observed and reference values and the observations on each side."""
    det = FACTORIES[name]()
    _feed(det, 3)
    seen = det.evidence()
    assert seen.candidate_seen > 0 and seen.baseline_seen > 0
    assert np.isfinite(seen.observed) and np.isfinite(seen.reference)
    assert det.conclusive and np.isfinite(det.threshold)
    json.dumps(seen.details)  # plain data, for the alert record
