"""ModelMonitor routing: roles, the candidate cap, and inconclusive states before data."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.checks import MAX_CANDIDATES, ModelMonitor
from monitor.events import InferenceEvent, OutcomeEvent
from monitor.messages import Message
from monitor.policy import parse_policy

POLICY = {
    "version": 1,
    "models": [
        {
            "name": "m",
            "owner": "o",
            "baseline": "v1",
            "checks": [
                {
                    "name": "deny",
                    "metric": "decision_rate",
                    "where": {"decision": "deny"},
                    "tolerance": {"max_increase": 0.01},
                },
                {
                    "name": "drift",
                    "metric": "score_distribution",
                    "tolerance": {"max_distance": 0.1},
                },
            ],
        }
    ],
}


def _inference(i: int, version: str) -> InferenceEvent:
    return InferenceEvent(
        kind="inference",
        id=f"i{i}",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        request_id=f"r{i}",
        model="m",
        version=version,
        score=0.5,
        decision="allow",
    )


def test_versions_are_capped_when_the_policy_lists_no_candidates() -> None:
    """With candidates omitted, only the first MAX_CANDIDATES versions are watched."""
    monitor = ModelMonitor(parse_policy(POLICY).models[0])
    msg = Message(b"", "t", 0, 0)
    watched = [monitor.add_inference(_inference(i, f"v-{i}"), msg) is not None for i in range(20)]
    assert sum(watched) == MAX_CANDIDATES
    assert monitor.role("v1") == "baseline"
    assert monitor.role("v-19") is None


def test_checks_are_inconclusive_before_data() -> None:
    """A candidate with a few inferences and no baseline is inconclusive on every check."""
    monitor = ModelMonitor(parse_policy(POLICY).models[0])
    msg = Message(b"", "t", 0, 0)
    for i in range(50):
        event = _inference(i, "v2").model_copy(
            update={"time": datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC)}
        )
        monitor.add_inference(event, msg)
    monitor.end_batch()
    states = {key[0]: status.state for key, status in monitor.statuses.items()}
    assert states == {"deny": "inconclusive", "drift": "inconclusive"}


def test_late_labels_are_counted() -> None:
    """A label arriving after its inference's bucket was judged is drained as late."""
    policy = {
        "version": 1,
        "models": [
            {
                "name": "m",
                "owner": "o",
                "baseline": "v1",
                "negative_decisions": ["allow"],
                "positive_labels": ["fraud"],
                "label_horizon_seconds": 10,
                "checks": [
                    {
                        "name": "fn",
                        "metric": "false_negative_rate",
                        "tolerance": {"max_increase": 0.01},
                    }
                ],
            }
        ],
    }
    monitor = ModelMonitor(parse_policy(policy).models[0])
    msg = Message(b"", "t", 0, 0)
    first = monitor.add_inference(_inference(0, "v2"), msg)
    later = _inference(1, "v2").model_copy(update={"time": datetime(2026, 1, 2, tzinfo=UTC)})
    monitor.add_inference(later, msg)
    assert first is not None and monitor.drain_late() == 0
    outcome = OutcomeEvent(
        kind="outcome",
        id="o1",
        time=datetime(2026, 1, 2, tzinfo=UTC),
        request_id="r0",
        label="fraud",
    )
    monitor.add_outcome(outcome, first, msg)
    assert monitor.drain_late() == 1
    assert monitor.drain_late() == 0
