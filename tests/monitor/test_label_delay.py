"""A 3-hour canary whose false negatives are labelled hours later, through the pipeline.

20 inferences/s, half to the candidate, labels an exponential 2 hours late, a
label horizon of 12 hours; the baseline was watched alone for 12 hours before
the canary (at 1 request/s), as it is in production. The policy leaves
``label_ages_seconds`` at its default (horizon / 72 and horizon / 8: 10 min
and 90 min).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from monitor.demo.label_delay import LabelDelayTraffic
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import parse_policy
from monitor.replay import LogDeadLetterSink

POLICY = {
    "version": 1,
    "models": [
        {
            "name": "fraud-scorer",
            "owner": "fraud-ml-oncall",
            "baseline": "v7-fp32",
            "candidates": ["v7-int8"],
            "segments": ["tier"],
            "negative_decisions": ["allow"],
            "positive_labels": ["fraud"],
            "label_horizon_seconds": 43_200,
            "checks": [
                {
                    "name": "fn-proxy",
                    "metric": "false_negative_rate",
                    "tolerance": {"max_increase": 0.01},
                    "action": "rollback",
                }
            ],
        }
    ],
}
CANARY = LabelDelayTraffic(
    seed=11,
    requests_per_second=20.0,
    duration_seconds=3 * 3600.0,
    canary_share=0.5,
    segment_share=0.1,
    fn_rate=0.01,
    label_delay_seconds=2 * 3600.0,
    baseline_lead_seconds=43_200.0,
    lead_requests_per_second=1.0,
)
END = CANARY.start + timedelta(seconds=CANARY.duration_seconds)


@dataclass
class Timeline:
    """What the pipeline published while the canary ran."""

    alerts: list[dict[str, object]] = field(default_factory=list)
    passed_at: datetime | None = None
    pass_reasons: list[str] = field(default_factory=list)
    overall_states: set[str] = field(default_factory=set)
    verdicts: set[str] = field(default_factory=set)


def _run(traffic: LabelDelayTraffic, *, stop_on: str | None = None) -> Timeline:
    pipeline = Pipeline(
        parse_policy(POLICY), dead_letters=LogDeadLetterSink(), clock="event", quiet=True
    )
    events = traffic.events()
    seen = Timeline()
    for i in range(0, len(events), 5000):
        chunk = events[i : i + 5000]
        batch = [Message(json.dumps(e).encode(), "t", 0, i + j) for j, e in enumerate(chunk)]
        result = pipeline.process(batch)
        seen.alerts += [a.model_dump(mode="json") for a in result.alerts]
        verdict = pipeline.verdicts.get("fraud-scorer", "v7-int8")
        if verdict is None:
            continue
        seen.verdicts.add(verdict["verdict"])
        seen.overall_states |= {c["state"] for c in verdict["checks"] if c["segment"] == ""}
        if verdict["verdict"] == "pass" and seen.passed_at is None:
            seen.passed_at = datetime.fromisoformat(str(chunk[-1]["time"]))
            seen.pass_reasons = [c["reason"] for c in verdict["checks"] if c["segment"] == ""]
        if (stop_on == "alert" and seen.alerts) or (stop_on == "pass" and seen.passed_at):
            break
    return seen


def test_fivefold_false_negatives_in_a_tenth_of_traffic_alert_before_the_canary_ends() -> None:
    """FN 1% -> 5% in tier=rare (10% of traffic), labels 2 h late: a rollback alert for that
    segment, judged at a label age below the 12 h horizon, before the 3 h canary ends."""
    seen = _run(replace(CANARY, candidate_segment_fn_rate=0.05), stop_on="alert")
    assert seen.alerts, "no alert within the canary"
    alert = seen.alerts[0]
    assert alert["check"] == "fn-proxy" and alert["segment"] == {"tier": "rare"}
    assert alert["action"] == "rollback" and alert["status"] == "firing"
    fired = datetime.fromisoformat(str(alert["event_time"]))
    assert CANARY.start < fired < END
    evidence = alert["evidence"]
    assert isinstance(evidence, dict)
    age = evidence["label_age_seconds"]
    assert age in (600.0, 5400.0)
    assert 0 < evidence["label_arrival"] < 1
    # At that age the candidate's share positive so far is well above the baseline's.
    assert float(str(alert["observed"])) > 2 * float(str(alert["reference"]))
    assert "pass" not in seen.verdicts


def test_an_unchanged_canary_passes_the_gate_before_it_ends() -> None:
    """The same canary with no change reaches `pass` within the 3 h, with no alert."""
    seen = _run(CANARY, stop_on="pass")
    assert seen.alerts == []
    assert seen.passed_at is not None and seen.passed_at < END
    assert seen.pass_reasons[0].startswith("within tolerance at label age")
    assert seen.overall_states <= {"inconclusive", "ok"}


def test_without_labels_the_check_never_says_ok() -> None:
    """No label ever arrives: over the whole canary the check is inconclusive, never ok,
    and the verdict never passes (labels that did not come are not evidence of none)."""
    seen = _run(replace(CANARY, label_share=0.0, baseline_lead_seconds=0.0))
    assert seen.alerts == []
    assert seen.overall_states == {"inconclusive"}
    assert seen.verdicts == {"inconclusive"}


def test_a_checkpoint_mid_canary_continues_exactly() -> None:
    """Sealed and restored halfway through a short canary (labels 2 min late, horizon
    20 min, FN 20x in tier=rare), the pipeline raises the alerts and ends with the verdict
    of one that never stopped."""
    from monitor.envelope import Checkpoint, open_sealed, seal
    from monitor.state import policy_digest, restore_pipeline

    short = {**POLICY, "models": [{**POLICY["models"][0], "label_horizon_seconds": 1200}]}
    traffic = replace(
        CANARY,
        duration_seconds=1800.0,
        label_delay_seconds=120.0,
        baseline_lead_seconds=1200.0,
        candidate_segment_fn_rate=0.2,
    )
    events = traffic.events()
    messages = [Message(json.dumps(e).encode(), "t", 0, i) for i, e in enumerate(events)]
    half = len(messages) // 2

    def fresh() -> Pipeline:
        return Pipeline(
            parse_policy(short), dead_letters=LogDeadLetterSink(), clock="event", quiet=True
        )

    def feed(pipeline: Pipeline, start: int, stop: int) -> list[object]:
        alerts: list[object] = []
        for i in range(start, stop, 3000):
            alerts += pipeline.process(messages[i : min(i + 3000, stop)]).alerts
        return alerts

    unbroken = fresh()
    feed(unbroken, 0, half)
    key = b"label delay test key"
    sealed = seal(Checkpoint(policy_digest(unbroken.policy), unbroken.state(), {}), key)
    restored = fresh()
    restore_pipeline(restored, open_sealed(sealed, key).state)
    restored.assigned(["t:0"])
    later = feed(restored, half, len(messages))
    assert later, "the scenario fires after the checkpoint"
    assert later == feed(unbroken, half, len(messages))
    assert restored.verdicts.get("fraud-scorer", "v7-int8") == unbroken.verdicts.get(
        "fraud-scorer", "v7-int8"
    )
