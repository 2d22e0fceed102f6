"""Tests of the demo's week: per-degradation windows in the scenario and the week preset."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from monitor.demo.presets import preset
from monitor.demo.simulator import RARE_LANG, Scenario, generate

WINDOW = (10_000.0, 20_000.0)


def _escalations_per_inference(events: list[dict[str, object]], lo: float, hi: float) -> float:
    """The candidate's escalations per inference among requests ``lo`` to ``hi`` seconds in."""
    version: dict[object, object] = {}
    counts: Counter[str] = Counter()
    for e in events:
        n = int(str(e["request_id"])[2:])
        if not lo <= n < hi:
            continue
        if e["kind"] == "inference":
            version[e["request_id"]] = e["version"]
            counts["inference"] += e["version"] == "v7-int8"
        elif e.get("action") == "escalation" and version.get(e["request_id"]) == "v7-int8":
            counts["escalation"] += 1
    return counts["escalation"] / counts["inference"]


def test_escalation_window_limits_the_shift_to_its_window() -> None:
    """Escalations halve inside the window only (seeded bands at 1 request per second)."""
    sc = Scenario(seed=5, requests_per_second=1.0, escalation_window=WINDOW)
    events = list(generate(sc, 30_000))
    inside = _escalations_per_inference(events, *WINDOW)
    before = _escalations_per_inference(events, 0, WINDOW[0])
    after = _escalations_per_inference(events, WINDOW[1], 30_000)
    # ~3,000 candidate inferences per part: bands of about +-3.5 standard errors.
    assert 0.028 <= inside <= 0.052
    assert 0.062 <= before <= 0.098 and 0.062 <= after <= 0.098


def test_default_windows_change_nothing() -> None:
    """A window of (0, None) is the scenario without one: the same events."""
    a = list(generate(Scenario(seed=2), 3000))
    b = list(generate(Scenario(seed=2, escalation_window=(0.0, None), deny_window=(0, None)), 3000))
    assert a == b


def test_deny_window_starts_the_rare_segment_shift() -> None:
    """Before the deny window the candidate's lang=ga denials are the baseline's (none moved)."""
    plain = Scenario.identical(seed=4, requests_per_second=1.0)
    late = replace(plain, rare_lang_deny_factor=3.0, deny_window=(1e9, None))
    early = replace(plain, rare_lang_deny_factor=3.0, deny_window=(0.0, None))
    assert list(generate(late, 3000)) == list(generate(plain, 3000))
    assert list(generate(early, 3000)) != list(generate(plain, 3000))


@pytest.mark.parametrize(
    ("window", "match"),
    [
        ((-1.0, None), "from must be >= 0"),
        ((5.0, 5.0), "until must be None or a number of seconds > from"),
        ((5.0,), "must be a \\(from, until\\) pair"),
    ],
)
def test_windows_are_validated(window: tuple[float, ...], match: str) -> None:
    """A window out of order or of the wrong shape is refused with its name."""
    with pytest.raises(ValueError, match=match):
        Scenario(deny_window=window)  # type: ignore[arg-type]


def test_week_preset_tells_its_story() -> None:
    """Seven days at a modest rate, under 300k events' worth of requests, the windows in days."""
    scenario, requests = preset("week")
    assert requests / scenario.requests_per_second == pytest.approx(7 * 86_400, rel=1e-4)
    assert requests * 2.2 < 300_000
    assert scenario.escalation_window == (86_400.0, 3 * 86_400.0)
    assert scenario.deny_window == (3.5 * 86_400.0, None)
    assert RARE_LANG == "ga"
    with pytest.raises(ValueError, match="unknown preset 'month'"):
        preset("month")
