"""Issue 3 scenarios through `shiftwatch replay`: novel tools, late-labelled false negatives."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from monitor.demo.simulator import Scenario, write_jsonl
from monitor.policy import load_policy
from monitor.replay import replay
from tests.conftest import DEMO_POLICY, read_jsonl

POLICY = """
version: 1
models:
  - name: fraud-scorer
    owner: fraud-ml-oncall
    baseline: v7-fp32
    candidates: [v7-int8]
    segments: [lang]
    negative_decisions: [allow]
    positive_labels: [fraud]
    false_alarm: {{arl0: 1000000}}
    action_window_seconds: 5
    label_horizon_seconds: {horizon}
    label_ages_seconds: {ages}
    checks:
      - {{name: fn-proxy, metric: false_negative_rate, tolerance: {{max_increase: 0.002}},
         action: rollback}}
      - {{name: new-privileged-tool, metric: novel_tool, where: {{privileged: true}},
         action: rollback}}
      - {{name: escalations, metric: action_rate, where: {{action: escalation}},
         tolerance: {{max_relative_change: 0.25}}, action: rollback}}
"""


def _run(
    tmp: Path, scenario: Scenario, requests: int, horizon: float, ages: str = "null"
) -> list[dict[str, object]]:
    events, policy, alerts = tmp / "events.jsonl", tmp / "policy.yaml", tmp / "alerts.jsonl"
    policy.write_text(POLICY.format(horizon=horizon, ages=ages))
    write_jsonl(events, scenario, requests)
    ledger = replay(events, load_policy(policy), alerts_out=alerts, show_progress=False)
    assert ledger.balanced() and ledger.dead_lettered == 0
    return read_jsonl(alerts)


def test_privileged_tool_the_baseline_never_used(tmp_path: Path) -> None:
    """A candidate calling a privileged tool the baseline never called fires a rollback alert."""
    scenario = replace(
        Scenario.identical(seed=61, requests_per_second=100.0), novel_privileged_tool=True
    )
    alerts = _run(tmp_path, scenario, 30_000, horizon=600)
    assert [a["check"] for a in alerts] == ["new-privileged-tool"]
    alert = alerts[0]
    assert alert["evidence"]["tool"] == "iam.grant_admin"
    assert alert["action"] == "rollback" and alert["segment"] == {}
    assert alert["evidence"]["statistic"] >= alert["evidence"]["threshold"]


def test_false_negative_increase_confined_to_a_five_percent_segment(tmp_path: Path) -> None:
    """Missed fraud up tenfold in lang=ga only (5% of traffic) alerts for that segment alone."""
    scenario = replace(
        Scenario.identical(seed=51, requests_per_second=100.0),
        fn_segment_factor=10.0,
        canary_share=0.5,
    )
    alerts = _run(tmp_path, scenario, 400_000, horizon=600)
    fn = [a for a in alerts if a["check"] == "fn-proxy"]
    assert [a["segment"] for a in fn] == [{"lang": "ga"}]
    assert fn[0]["observed"] > fn[0]["reference"] + 0.002
    assert not [a for a in alerts if a["check"] != "fn-proxy"]


@pytest.mark.parametrize(("factor", "ages"), [(1.0, "null"), (10.0, "[]"), (10.0, "null")])
def test_false_negatives_whose_labels_arrive_days_late(
    tmp_path: Path, factor: float, ages: str
) -> None:
    """Labels a day late on average: judged at the horizon only (``label_ages_seconds: []``)
    the increase is found after the horizon; judged also at the default label ages
    (horizon / 72 and horizon / 8) it is found before; nothing fires if identical."""
    scenario = replace(
        Scenario.identical(seed=52, requests_per_second=0.5),
        fn_segment_factor=factor,
        canary_share=0.5,
        label_delay_days=1.0,
    )
    horizon = 5 * 86400.0
    requests = 400_000 if factor > 1 else 200_000
    alerts = _run(tmp_path, scenario, requests, horizon=horizon, ages=ages)
    fn = [a for a in alerts if a["check"] == "fn-proxy"]
    if factor == 1.0:
        assert alerts == []
        return
    assert [a["segment"] for a in fn] == [{"lang": "ga"}]
    fired = datetime.fromisoformat(str(fn[0]["event_time"]))
    after = (fired - scenario.start).total_seconds()
    evidence = fn[0]["evidence"]
    assert isinstance(evidence, dict)
    if ages == "[]":
        # Only negatives older than the horizon are judged: nothing can fire before it has passed.
        assert after >= horizon
        assert "label_age_seconds" not in evidence
    else:
        # Judged at label age horizon / 8 (15 h), candidate and baseline censored alike.
        assert after < horizon
        assert evidence["label_age_seconds"] == horizon / 8


def _demo_policy_replay(tmp: Path, scenario: Scenario, requests: int) -> list[dict[str, object]]:
    events, alerts = tmp / "events.jsonl", tmp / "alerts.jsonl"
    write_jsonl(events, scenario, requests)
    policy = load_policy(DEMO_POLICY)
    replay(events, policy, alerts_out=alerts, show_progress=False)
    return read_jsonl(alerts)


def test_quantisation_like_score_shift(tmp_path: Path) -> None:
    """Scores rounded to sixteenths and offset by 0.02 fire the score-drift check, nothing else."""
    scenario = replace(Scenario.identical(seed=71, requests_per_second=100.0), score_shift=0.02)
    alerts = _demo_policy_replay(tmp_path, scenario, 60_000)
    assert {a["check"] for a in alerts} == {"score-drift"}
    overall = [a for a in alerts if a["segment"] == {}]
    assert len(overall) == 1
    evidence = overall[0]["evidence"]
    assert isinstance(evidence, dict) and evidence["distance"] == "ks"
    assert evidence["statistic"] > evidence["threshold"] == 0.1


def test_demo_degradations_leave_distribution_checks_quiet(tmp_path: Path) -> None:
    """The demo's candidate trips escalations and lang=ga denials, not the score or tool checks."""
    alerts = _demo_policy_replay(tmp_path, Scenario(seed=72, requests_per_second=300.0), 60_000)
    checks = {str(a["check"]) for a in alerts}
    assert "escalations" in checks
    assert checks <= {"escalations", "deny-rate"}


LATENCY_POLICY = """
version: 1
models:
  - name: fraud-scorer
    owner: fraud-ml-oncall
    baseline: v7-fp32
    segments: [lang]
    checks:
      - {name: latency, metric: latency, tolerance: {max_distance: 0.05}, action: page}
      - {name: tool-mix, metric: tool_distribution, tolerance: {max_distance: 0.05}, action: page}
"""


@pytest.mark.parametrize("factor", [1.0, 0.6])
def test_latency_shift(tmp_path: Path, factor: float) -> None:
    """A candidate 40% faster moves the latency distribution beyond 0.05 KS; an equal one not."""
    events, policy, alerts = tmp_path / "e.jsonl", tmp_path / "p.yaml", tmp_path / "a.jsonl"
    policy.write_text(LATENCY_POLICY)
    scenario = replace(
        Scenario.identical(seed=81, requests_per_second=100.0), latency_factor=factor
    )
    write_jsonl(events, scenario, 30_000)
    replay(events, load_policy(policy), alerts_out=alerts, show_progress=False)
    fired = read_jsonl(alerts)
    if factor == 1.0:
        assert fired == []
    else:
        assert {(a["check"], json.dumps(a["segment"])) for a in fired} >= {("latency", "{}")}
        assert {a["check"] for a in fired} == {"latency"}
