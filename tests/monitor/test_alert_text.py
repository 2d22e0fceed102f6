"""The words of an alert: the summary fits the action, the description has no raw values."""

from __future__ import annotations

import pytest

from monitor.alert_text import describe_tolerance, description, summary
from monitor.alerts import AlertRecord


def _record(**changes: object) -> AlertRecord:
    base = AlertRecord(
        alert_id="a" * 24,
        status="firing",
        check="deny-rate",
        metric="decision_rate",
        model="fraud-scorer",
        version="v7-int8",
        baseline="v7-fp32",
        segment={"lang": "ga"},
        action="page",
        severity="warning",
        observed=0.12,
        reference=0.04,
        tolerance={"max_relative_change": 0.5},
        event_time="2026-11-27T09:00:00+00:00",
        fired_at="2026-11-27T09:00:01+00:00",
        owner="fraud-ml-oncall",
        controls=[],
        evidence={"statistic": 15.2, "threshold": 13.27, "events_seen": {"candidate": 900.0}},
        rollback_to="v7-fp32",
    )
    return base.model_copy(update=changes)


@pytest.mark.parametrize(
    ("action", "says"),
    [
        ("rollback", "roll back to v7-fp32"),
        ("page", "fraud-ml-oncall to decide"),
        ("ticket", "a ticket for fraud-ml-oncall"),
        ("log", "recorded for the review"),
    ],
)
def test_summary_asks_for_what_the_action_means(action: str, says: str) -> None:
    """Only a rollback alert says to roll back; each names the segment."""
    text = summary(_record(action=action))
    assert text.endswith(says) and "in segment lang=ga" in text
    assert ("roll back" in text) == (action == "rollback")


def test_resolved_summary_says_it_is_back() -> None:
    """A resolved alert's summary asks for nothing."""
    text = summary(_record(status="resolved", action="rollback"))
    assert "back inside its tolerance" in text and "roll back" not in text


def test_description_is_sentences_with_the_band_and_the_evidence() -> None:
    """The rate, its reference, the tolerance in words and the evidence, no dict."""
    text = description(_record())
    assert "0.12 against 0.04 for v7-fp32" in text
    assert "within ±50% of the baseline's rate" in text
    assert "15.2 crossed the threshold 13.27" in text
    assert "900 candidate and n/a baseline" in text
    assert "{" not in text


def test_novel_tool_and_two_sided_absolute_tolerances() -> None:
    """A novel tool is named; absolute bounds on both sides read as a range."""
    novel = _record(metric="novel_tool", tolerance={}, evidence={"tool": "refund.issue"})
    assert "called 'refund.issue', a tool the baseline never called" in description(novel)
    both = {"max_increase": 0.01, "max_decrease": 0.02}
    assert describe_tolerance("action_rate", both) == (
        "between 0.02 below and 0.01 above the baseline's rate"
    )
