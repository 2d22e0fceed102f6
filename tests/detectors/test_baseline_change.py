"""The single-stream change detectors: seeded false-alarm and delay bands, exact restores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from detectors.adaptive_window import AdaptiveWindow
from detectors.baseline_change import HistogramChangeDetector, RateChangeDetector

Change = RateChangeDetector | HistogramChangeDetector


def _rate_chunks(rng: np.random.Generator, rates: list[tuple[float, int]]) -> list[Any]:
    return [(float(rng.binomial(700, p)), 700.0) for p, n in rates for _ in range(n)]


def _score_chunks(rng: np.random.Generator, shifts: list[tuple[float, int]]) -> list[Any]:
    out = []
    for shift, n in shifts:
        for _ in range(n):
            values = np.clip(rng.beta(2.0, 5.0, 700) + shift, 0.0, 0.999)
            out.append(np.bincount((values * 20).astype(int), minlength=20).astype(float))
    return out


def _detections(det: Change, chunks: list[Any]) -> list[int]:
    found = []
    for i, chunk in enumerate(chunks):
        det.update(chunk)
        if det.drift_detected:
            found.append(i)
    return found


def test_no_change_is_rarely_flagged() -> None:
    """A stable rate, 40 seeds x 2,500 buckets of 700 trials: at most 2 changes flagged."""
    flagged = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        det = RateChangeDetector("bernoulli")
        flagged += len(_detections(det, _rate_chunks(rng, [(0.08, 2_500)])))
    assert flagged <= 2


def test_stable_scores_and_tools_are_rarely_flagged() -> None:
    """Stable score histograms (KS) and tool mixes (chi-square): at most 1 change in 20,000."""
    flagged = 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        flagged += len(_detections(HistogramChangeDetector(20), _score_chunks(rng, [(0.0, 1000)])))
        tools = [
            rng.multinomial(900, [0.45, 0.35, 0.198, 0.002]).astype(float) for _ in range(1000)
        ]
        flagged += len(_detections(HistogramChangeDetector(4, ordered=False), tools))
    assert flagged <= 1


def _rate_step(rng: np.random.Generator) -> list[Any]:
    return _rate_chunks(rng, [(0.08, 300), (0.12, 200)])


def _score_step(rng: np.random.Generator) -> list[Any]:
    return _score_chunks(rng, [(0.0, 300), (0.05, 200)])


@pytest.mark.parametrize(
    ("make", "chunks"),
    [
        (lambda: RateChangeDetector("bernoulli"), _rate_step),
        (lambda: RateChangeDetector("poisson"), _rate_step),
        (lambda: HistogramChangeDetector(20), _score_step),
    ],
    ids=["bernoulli-0.08-to-0.12", "poisson-0.08-to-0.12", "scores-shift-0.05"],
)
def test_a_step_is_found_within_a_band_of_chunks(
    make: Callable[[], Change], chunks: Callable[[np.random.Generator], list[Any]]
) -> None:
    """After 300 stable chunks a step is found for each of 10 seeds, median 10-50 chunks on."""
    delays = []
    for seed in range(10):
        found = [
            i for i in _detections(make(), chunks(np.random.default_rng(200 + seed))) if i >= 300
        ]
        assert found, f"seed {200 + seed}: no change found"
        delays.append(found[0] - 300)
    assert 10 <= float(np.median(delays)) <= 50
    assert max(delays) <= 120


def test_restored_detectors_continue_exactly() -> None:
    """A detector restored from its state (mid-window and past a rebuild) flags the same chunks."""
    rng = np.random.default_rng(7)
    chunks = _rate_chunks(rng, [(0.08, 1500), (0.14, 300), (0.10, 600)])
    for cut in (40, 700, 1520, 1900):
        whole = RateChangeDetector("bernoulli")
        first = _detections(whole, chunks[:cut])
        restored = RateChangeDetector.from_state(whole.state())
        assert restored.state()["params"] == whole.state()["params"]
        rest_whole = _detections(whole, chunks[cut:])
        rest_restored = _detections(restored, chunks[cut:])
        assert rest_restored == rest_whole, cut
        assert restored.detections == whole.detections == len(first) + len(rest_whole)
    assert whole.detections >= 2


def test_the_window_is_bounded() -> None:
    """The values kept for a restore never exceed max_values, however long the stream."""
    window = AdaptiveWindow(max_values=64)
    for x in np.random.default_rng(3).random(1000).tolist():
        window.update(x)
        assert len(window.state()["state"]["values"]) <= 64


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: AdaptiveWindow(delta=0.0), "delta"),
        (lambda: AdaptiveWindow().update(1.5), r"\[0, 1\]"),
        (lambda: RateChangeDetector("binomial"), "family"),  # type: ignore[arg-type]
        (lambda: RateChangeDetector("poisson", chunk=0.0), "chunk"),
        (lambda: RateChangeDetector("poisson").update((-1.0, 5.0)), "count"),
        (lambda: HistogramChangeDetector(4).update(np.ones(5)), "4 bins"),
        (lambda: HistogramChangeDetector(4).update(np.array([1.0, np.nan, 0, 0])), "finite"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(call: Callable[[], object], match: str) -> None:
    """Bad parameters or observations raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=match):
        call()
