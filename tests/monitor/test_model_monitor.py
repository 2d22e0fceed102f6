"""Per-model routing and checks: roles, the candidate cap, inconclusive states, late labels."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.events import Event, InferenceEvent, OutcomeEvent
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import parse_policy
from monitor.replay import LogDeadLetterSink
from monitor.router import MAX_CANDIDATES, Router

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


def _message(event: Event, offset: int = 0) -> Message:
    return Message(event.model_dump_json().encode(), "t", 0, offset)


def _pipeline(policy: dict[str, object]) -> Pipeline:
    return Pipeline(parse_policy(policy), dead_letters=LogDeadLetterSink(), quiet=True)


def test_versions_are_capped_when_the_policy_lists_no_candidates() -> None:
    """With candidates omitted, only the first MAX_CANDIDATES versions are watched."""
    router = Router(parse_policy(POLICY))
    msg = Message(b"", "t", 0, 0)
    watched = [not router.route([(_inference(i, f"v-{i}"), msg)]).unmonitored for i in range(20)]
    monitor = router.versions["m"]
    assert sum(watched) == MAX_CANDIDATES
    assert monitor.role("v1") == "baseline"
    assert monitor.role("v-19") is None


def test_checks_are_inconclusive_before_data() -> None:
    """A candidate with a few inferences and no baseline is inconclusive on every check."""
    pipeline = _pipeline(POLICY)
    batch = []
    for i in range(50):
        event = _inference(i, "v2").model_copy(
            update={"time": datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC)}
        )
        batch.append(_message(event, i))
    pipeline.process(batch)
    monitor = pipeline.models["m"]
    states = {status.check.name: status.state for status in monitor.statuses()}
    # The score check has no status until its bins freeze at the baseline's quantiles;
    # the verdict shows it inconclusive all the same.
    assert states == {"deny": "inconclusive"}
    verdict = pipeline.verdicts.get("m", "v2")
    assert verdict is not None and verdict["verdict"] == "inconclusive"
    reasons = {r["check"]: (r["state"], r["reason"]) for r in verdict["reasons"]}
    assert reasons["drift"] == ("inconclusive", "no candidate data yet")
    assert reasons["deny"][0] == "inconclusive"


def test_late_labels_are_counted() -> None:
    """A label arriving after its inference's bucket was judged is counted as late, once."""
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
    monitor = _pipeline(policy)
    counted = 0

    def drain_late() -> int:
        nonlocal counted
        late, counted = monitor.ledger.late - counted, monitor.ledger.late
        return late

    monitor.process([_message(_inference(0, "v2"), 0)])
    later = _inference(1, "v2").model_copy(update={"time": datetime(2026, 1, 2, tzinfo=UTC)})
    monitor.process([_message(later, 1)])
    assert drain_late() == 0
    outcome = OutcomeEvent(
        kind="outcome",
        id="o1",
        time=datetime(2026, 1, 2, tzinfo=UTC),
        request_id="r0",
        label="fraud",
    )
    monitor.process([_message(outcome, 2)])
    assert drain_late() == 1
    assert drain_late() == 0
    late = monitor.metrics.registry.get_sample_value(
        "shiftwatch_events_late_total", {"model": "m", "reason": "outcome"}
    )
    assert late == 1
