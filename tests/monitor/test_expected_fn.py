"""``expected_false_negative_rate``: the label-free proxy, through the pipeline.

A fraud scorer: 10% of requests are fraud; the baseline scores fraud
Beta(5, 2) and legitimate traffic Beta(1, 8), and allows below 0.5. The
baseline runs alone for 20 minutes (labels an exponential 1 minute late, a
label horizon of 10 minutes) before a 30-minute canary takes half the
traffic. The candidate's labels never come within the run. A degraded
candidate squeezes its fraud scores by 0.6 (a quantised model that loses its
confident positives): many more frauds fall below the threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from monitor.envelope import Checkpoint, open_sealed, seal
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import parse_policy
from monitor.replay import LogDeadLetterSink
from monitor.state import policy_digest, restore_pipeline

MODEL, BASELINE, CANDIDATE = "fraud-scorer", "v7-fp32", "v7-int8"
START = datetime(2025, 3, 1, tzinfo=UTC)
LEAD, CANARY, RATE = 1200.0, 1800.0, 20.0
FRAUD_SHARE, FRAUD_BETA, LEGIT_BETA = 0.1, (5.0, 2.0), (1.0, 8.0)


def _policy(metric: str = "expected_false_negative_rate") -> dict[str, Any]:
    return {
        "version": 1,
        "models": [
            {
                "name": MODEL,
                "owner": "fraud-ml-oncall",
                "baseline": BASELINE,
                "candidates": [CANDIDATE],
                "negative_decisions": ["allow"],
                "positive_labels": ["fraud"],
                "label_horizon_seconds": 600,
                "checks": [
                    {
                        "name": "efn",
                        "metric": metric,
                        "tolerance": {"max_relative_change": 0.25},
                        "action": "rollback",
                    }
                ],
            }
        ],
    }


@dataclass(frozen=True)
class Traffic:
    """The scenario of the module docstring; ``squeeze`` scales the candidate's fraud scores."""

    seed: int
    squeeze: float = 1.0
    baseline_labels: bool = True

    def events(self) -> list[dict[str, Any]]:
        rng = np.random.default_rng(self.seed)
        n = int((LEAD + CANARY) * RATE)
        t = np.sort(rng.uniform(0, LEAD + CANARY, n))
        fraud = rng.random(n) < FRAUD_SHARE
        score = np.where(fraud, rng.beta(*FRAUD_BETA, n), rng.beta(*LEGIT_BETA, n))
        candidate = (t >= LEAD) & (rng.random(n) < 0.5)
        score = np.where(candidate & fraud, score * self.squeeze, score)
        delay = rng.exponential(60.0, n)
        timed: list[tuple[float, dict[str, Any]]] = []
        for i in range(n):
            version = CANDIDATE if candidate[i] else BASELINE
            decision = "allow" if score[i] < 0.5 else "deny"
            inference = {
                "kind": "inference",
                "id": f"i{i}",
                "request_id": f"r{i}",
                "model": MODEL,
                "version": version,
                "score": round(float(score[i]), 6),
                "decision": decision,
            }
            timed.append((float(t[i]), inference))
            if fraud[i] and decision == "allow" and not candidate[i] and self.baseline_labels:
                outcome = {"kind": "outcome", "id": f"o{i}", "request_id": f"r{i}"}
                outcome |= {"label": "fraud", "source": "chargeback"}
                timed.append((float(t[i] + delay[i]), outcome))
        timed.sort(key=lambda item: item[0])
        stamped = []
        for at, event in timed:
            stamped.append({**event, "time": (START + timedelta(seconds=at)).isoformat()})
        return stamped


def _pipeline(metric: str = "expected_false_negative_rate") -> Pipeline:
    return Pipeline(
        parse_policy(_policy(metric)), dead_letters=LogDeadLetterSink(), clock="event", quiet=True
    )


def _messages(traffic: Traffic) -> list[Message]:
    events = traffic.events()
    return [Message(json.dumps(e).encode(), "t", 0, i) for i, e in enumerate(events)]


def _run(traffic: Traffic) -> tuple[list[dict[str, Any]], set[str]]:
    """The alerts, and every state the overall check showed after each batch."""
    pipeline = _pipeline()
    messages = _messages(traffic)
    alerts: list[dict[str, Any]] = []
    states: set[str] = set()
    for i in range(0, len(messages), 2000):
        result = pipeline.process(messages[i : i + 2000])
        alerts += [a.model_dump(mode="json") for a in result.alerts]
        verdict = pipeline.verdicts.get(MODEL, CANDIDATE)
        if verdict is not None:
            states |= {c["state"] for c in verdict["checks"] if c["segment"] == ""}
    return alerts, states


def test_a_squeezed_candidate_alerts_before_any_of_its_labels() -> None:
    """Fraud scores x0.6: the proxy fires a rollback within the canary, with none of the
    candidate's labels, its evidence naming itself a proxy and its calibration."""
    alerts, _ = _run(Traffic(seed=1, squeeze=0.6))
    assert alerts, "no alert within the canary"
    alert = alerts[0]
    assert alert["check"] == "efn" and alert["metric"] == "expected_false_negative_rate"
    assert alert["status"] == "firing" and alert["action"] == "rollback"
    fired = datetime.fromisoformat(str(alert["event_time"]))
    assert START + timedelta(seconds=LEAD) < fired < START + timedelta(seconds=LEAD + CANARY)
    assert float(alert["observed"]) > 1.25 * float(alert["reference"])
    evidence = alert["evidence"]
    assert "label-free proxy" in evidence["proxy"]
    assert evidence["calibration_positives"] >= 50


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_an_identical_candidate_stays_quiet(seed: int) -> None:
    """The same model as candidate: no alert over the canary, and the check gets to ok."""
    alerts, states = _run(Traffic(seed=seed))
    assert alerts == []
    assert "ok" in states and "breach" not in states


def test_without_baseline_labels_the_check_stays_inconclusive() -> None:
    """No label ever: no calibration, so even a squeezed candidate is inconclusive, not ok."""
    alerts, states = _run(Traffic(seed=5, squeeze=0.6, baseline_labels=False))
    assert alerts == []
    assert states == {"inconclusive"}


def test_a_checkpoint_mid_canary_continues_exactly() -> None:
    """Sealed and restored after the calibration froze, the pipeline raises the same alerts
    and ends with the verdict of one that never stopped."""
    messages = _messages(Traffic(seed=6, squeeze=0.6))
    half = int(len(messages) * 0.45)

    def feed(pipeline: Pipeline, start: int, stop: int) -> list[object]:
        alerts: list[object] = []
        for i in range(start, stop, 2000):
            alerts += pipeline.process(messages[i : min(i + 2000, stop)]).alerts
        return alerts

    unbroken = _pipeline()
    assert feed(unbroken, 0, half) == []
    key = b"expected fn test key"
    sealed = seal(Checkpoint(policy_digest(unbroken.policy), unbroken.state(), {}), key)
    restored = _pipeline()
    restore_pipeline(restored, open_sealed(sealed, key).state)
    restored.assigned(["t:0"])
    later = feed(restored, half, len(messages))
    assert later, "the scenario fires after the checkpoint"
    assert later == feed(unbroken, half, len(messages))
    assert restored.verdicts.get(MODEL, CANDIDATE) == unbroken.verdicts.get(MODEL, CANDIDATE)
