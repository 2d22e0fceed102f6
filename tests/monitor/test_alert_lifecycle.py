"""Alert lifecycle: one firing record per breach, resolved when the data clear it, then re-armed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.alerts import AlertRecord, alert_id
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import parse_policy
from monitor.replay import LogDeadLetterSink

START = datetime(2026, 1, 1, tzinfo=UTC)
RATE = 50  # inferences per second per version


def _monitor(*checks: dict[str, object]) -> Pipeline:
    """A pipeline watching model m: baseline v1, candidate v2, the given checks."""
    policy = {
        "version": 1,
        "models": [
            {
                "name": "m",
                "owner": "team-risk",
                "baseline": "v1",
                "candidates": ["v2"],
                "controls": ["SOC2-CC7.2"],
                "false_alarm": {"arl0": 1e6},
                "checks": list(checks),
            }
        ],
    }
    return Pipeline(
        parse_policy(policy), dead_letters=LogDeadLetterSink(), clock="event", quiet=True
    )


DENY = {
    "name": "deny",
    "metric": "decision_rate",
    "where": {"decision": "deny"},
    "tolerance": {"max_increase": 0.02},
    "action": "rollback",
}
DRIFT = {"name": "drift", "metric": "score_distribution", "tolerance": {"max_distance": 0.1}}


def _run(
    monitor: Pipeline,
    phases: list[tuple[int, float, float]],
    rng: np.random.Generator,
) -> list[AlertRecord]:
    """Feed both versions second by second: (seconds, candidate deny share, candidate score shift).

    The baseline denies 5% and scores uniformly on [0, 0.7]; each second is one batch.
    """
    alerts: list[AlertRecord] = []
    t, i = START, 0
    for seconds, deny, shift in phases:
        for _ in range(seconds):
            batch = []
            for version, p, s in (("v1", 0.05, 0.0), ("v2", deny, shift)):
                denied = rng.random(RATE) < p
                scores = rng.random(RATE) * 0.7 + s
                for k in range(RATE):
                    i += 1
                    at = t + timedelta(microseconds=int(1e6 * k / RATE))
                    event = {
                        "kind": "inference",
                        "id": f"e{i}",
                        "time": at.isoformat(),
                        "request_id": f"r{i}",
                        "model": "m",
                        "version": version,
                        "score": float(scores[k]),
                        "decision": "deny" if denied[k] else "allow",
                    }
                    batch.append(Message(json.dumps(event).encode(), "t", 0, i))
            t += timedelta(seconds=1)
            alerts.extend(monitor.process(batch).alerts)
    return alerts


@pytest.mark.parametrize(
    ("check", "bad", "good"),
    [(DENY, (0.15, 0.0), (0.05, 0.0)), (DRIFT, (0.05, 0.3), (0.05, 0.0))],
    ids=["rate", "distribution"],
)
def test_breach_fires_once_resolves_when_clear_and_rearms(
    check: dict[str, object], bad: tuple[float, float], good: tuple[float, float]
) -> None:
    """Bad for 5 min: one firing alert; good for 10 min: resolved, same id; bad again: new id."""
    monitor = _monitor(check)
    alerts = _run(
        monitor,
        [(300, *bad), (600, *good), (300, *bad)],
        np.random.default_rng(7),
    )
    assert [a.status for a in alerts] == ["firing", "resolved", "firing"]
    first, resolved, again = alerts
    assert first.alert_id == alert_id("m", "v2", str(check["name"]), {})
    assert resolved.alert_id == first.alert_id
    assert resolved.resolved_at is not None
    assert first.event_time < resolved.resolved_at < again.event_time
    # Resolution needs evidence from the good phase: not before it started.
    assert datetime.fromisoformat(resolved.resolved_at) > START + timedelta(seconds=300)
    assert "since_breach" in resolved.evidence
    assert again.alert_id == alert_id("m", "v2", str(check["name"]), {}, 1) != first.alert_id
    assert first.rollback_to == "v1"
    assert first.owner == "team-risk" and first.controls == ["SOC2-CC7.2"]


def test_persistent_breach_stays_firing_without_repeats() -> None:
    """A candidate that stays 3x over the deny tolerance fires once and never resolves."""
    monitor = _monitor(DENY)
    alerts = _run(monitor, [(900, 0.15, 0.0)], np.random.default_rng(8))
    assert [a.status for a in alerts] == ["firing"]
    (status,) = monitor.models["m"].statuses()
    assert status.state == "breach"


def test_candidate_at_the_boundary_does_not_flap() -> None:
    """Breach, then a candidate just inside tolerance: it resolves at most once, never re-fires."""
    monitor = _monitor(DENY)
    alerts = _run(monitor, [(300, 0.15, 0.0), (900, 0.065, 0.0)], np.random.default_rng(9))
    statuses = [a.status for a in alerts]
    assert statuses[0] == "firing"
    assert statuses in (["firing"], ["firing", "resolved"])
