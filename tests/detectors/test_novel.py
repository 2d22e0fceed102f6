"""NovelToolDetector: readiness, pending tools, bounded memory, state round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import NovelToolDetector


def test_known_tools_never_fire() -> None:
    """Candidate calls of tools the baseline uses never fire, however many."""
    det = NovelToolDetector(min_reference=10)
    for _ in range(10):
        det.update_reference("crm.lookup")
    det.update_many(["crm.lookup"] * 1000)
    assert not det.drift_detected and det.conclusive


def test_fires_on_first_unseen_tool_once_ready() -> None:
    """The first unseen tool fires at once when the baseline has made enough calls."""
    det = NovelToolDetector(min_reference=5)
    for tool in ["a", "b", "a", "c", "a"]:
        det.update_reference(tool)
    det.update("a")
    det.update("iam.grant_admin")
    assert det.drift_detected and det.novel_tool == "iam.grant_admin"
    assert det.upper_rate == pytest.approx(3 / 5)


def test_tool_seen_before_ready_is_judged_when_ready() -> None:
    """A candidate tool seen early fires once the baseline is ready without having called it."""
    det = NovelToolDetector(min_reference=4)
    det.update_reference("a")
    det.update("x")
    assert not det.drift_detected and not det.conclusive
    for _ in range(3):
        det.update_reference("a")
    assert det.drift_detected and det.novel_tool == "x"


def test_pending_tool_cleared_when_baseline_calls_it() -> None:
    """A pending tool the baseline then calls is not novel."""
    det = NovelToolDetector(min_reference=3)
    det.update("x")
    for tool in ["x", "a", "a"]:
        det.update_reference(tool)
    assert not det.drift_detected


def test_memory_is_bounded() -> None:
    """A flood of distinct baseline tools is capped; pending candidate tools too."""
    det = NovelToolDetector(min_reference=10**9, max_tools=100, max_pending=8)
    for i in range(10_000):
        det.update_reference(f"tool-{i}")
        det.update(f"cand-{i}")
    snapshot = det.state()["state"]
    assert len(snapshot["tools"]) == 100 and snapshot["folded"] == 9_900
    assert len(snapshot["pending"]) == 8


@pytest.mark.parametrize("kwargs", [{"min_reference": 0}, {"max_tools": 0}, {"max_pending": -1}])
def test_invalid_arguments(kwargs: dict[str, int]) -> None:
    """Out-of-range parameters raise ValueError."""
    with pytest.raises(ValueError):
        NovelToolDetector(**kwargs)


@settings(max_examples=50, deadline=None)
@given(
    base=st.lists(st.sampled_from("abcde"), max_size=30),
    before=st.lists(st.sampled_from("abcdefg"), max_size=10),
    after=st.lists(st.sampled_from("abcdefg"), max_size=10),
)
def test_state_round_trip_gives_identical_future_decisions(
    base: list[str], before: list[str], after: list[str]
) -> None:
    """A detector restored from state() decides exactly as the original."""
    det = NovelToolDetector(min_reference=5)
    for tool in base:
        det.update_reference(tool)
    det.update_many(before)
    clone = NovelToolDetector.from_state(det.state())
    det.update_many(after)
    clone.update_many(after)
    assert clone.state() == det.state()
    assert clone.novel_tool == det.novel_tool
