"""The baseline's own drift: a world change moving both versions, a null run, restores, the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from monitor.alerts import AlertRecord
from monitor.baseline_drift import BaselineDrift
from monitor.cli import main
from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.envelope import Checkpoint, open_sealed, seal
from monitor.http import HttpServer
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import parse_policy
from monitor.replay import LogDeadLetterSink
from monitor.state import policy_digest, restore_pipeline

POLICY = """
version: 1
models:
  - name: fraud-scorer
    owner: fraud-ml-oncall
    baseline: v7-fp32
    candidates: [v7-int8]
    false_alarm: {arl0: 1000000}
    action_window_seconds: 5
    checks:
      - {name: escalations, metric: action_rate, where: {action: escalation},
         tolerance: {max_relative_change: 0.5}, action: rollback}
      - {name: deny-rate, metric: decision_rate, where: {decision: deny},
         tolerance: {max_relative_change: 0.5}, action: page}
      - {name: score-drift, metric: score_distribution, distance: ks,
         tolerance: {max_distance: 0.1}, action: page}
      - {name: new-privileged-tool, metric: novel_tool, where: {privileged: true},
         action: rollback}
"""
RATE = 800.0
#: The world changes under both versions at 60 s; the candidate diverges on its own at 110 s.
WORLD_AT, DEGRADE_AT = 60.0, 110.0
KEY = b"baseline drift test key"


def _scenario(seed: int, world: bool) -> Scenario:
    sc = Scenario.identical(seed=seed, requests_per_second=RATE, canary_share=0.3)
    if not world:
        return sc
    return replace(
        sc,
        world_change_at=WORLD_AT,
        world_escalation_factor=1.5,
        world_score_shift=0.1,
        escalation_factor=0.1,
        degrade_from=DEGRADE_AT,
    )


def _pipeline() -> Pipeline:
    policy = parse_policy(yaml.safe_load(POLICY))
    return Pipeline(policy, dead_letters=LogDeadLetterSink(), clock="event", quiet=True)


def _batches(sc: Scenario, requests: int) -> Iterator[list[Message]]:
    sim, offset = TrafficSimulator(sc), 0
    while sim.requests < requests:
        events = sim.next_batch(2000)
        yield [Message(json.dumps(e).encode(), "sim", 0, offset + k) for k, e in enumerate(events)]
        offset += len(events)


def _seconds(iso: str, sc: Scenario) -> float:
    return (datetime.fromisoformat(iso) - sc.start).total_seconds()


@dataclass
class WorldRun:
    """The world-change replay, with a checkpoint taken on the way and its continuation."""

    scenario: Scenario
    pipeline: Pipeline
    alerts: list[AlertRecord]
    restored: Pipeline
    restored_alerts: list[AlertRecord]


@pytest.fixture(scope="module")
def world() -> WorldRun:
    """135 s of traffic: world change at 60 s, candidate diverging at 110 s; sealed at 105 s."""
    sc = _scenario(1, world=True)
    pipeline, alerts = _pipeline(), []
    restored: Pipeline | None = None
    restored_alerts: list[AlertRecord] = []
    for batch in _batches(sc, int(135 * RATE)):
        alerts += pipeline.process(batch).alerts
        if restored is not None:
            restored_alerts += restored.process(batch).alerts
        elif pipeline.models["fraud-scorer"].baseline_drift.now >= sc.start.timestamp() + 105:
            sealed = seal(Checkpoint(policy_digest(pipeline.policy), pipeline.state(), {}), KEY)
            restored = _pipeline()
            restore_pipeline(restored, open_sealed(sealed, KEY).state)
            restored.assigned(["sim:0"])
    assert restored is not None
    return WorldRun(sc, pipeline, alerts, restored, restored_alerts)


def test_a_world_change_is_found_in_the_baseline_within_a_band(world: WorldRun) -> None:
    """Scores and escalations of both versions step at 60 s: the baseline's drift is found
    on each, 15-75 s later (ADWIN on one chunk per one-second bucket)."""
    verdict = world.pipeline.verdicts.get("fraud-scorer", "v7-int8")
    assert verdict is not None
    drift = verdict["baseline_drift"]
    assert drift["detected"] is True
    assert {"score-drift", "escalations"} <= set(drift["checks"])
    assert "new-privileged-tool" not in drift["changes"]
    since = _seconds(drift["since"], world.scenario)
    assert WORLD_AT + 15 <= since <= WORLD_AT + 75
    assert drift["changes"]["score-drift"] == drift["changes"]["escalations"] == 1


def test_the_verdict_reason_says_the_baseline_moved(world: WorldRun) -> None:
    """The reason of the breached check whose baseline drifted names the drift."""
    verdict = world.pipeline.verdicts.get("fraud-scorer", "v7-int8")
    assert verdict is not None
    assert verdict["verdict"] == "fail"
    (reason,) = [r for r in verdict["reasons"] if r["check"] == "escalations"]
    assert reason["reason"].startswith("candidate outside tolerance (alert firing); ")
    assert "the baseline v7-fp32 itself drifted since 2026-11-02T09:01:" in reason["reason"]
    assert reason["reason"].endswith("the candidate is judged against the moving baseline")
    assert verdict["baseline_drift"]["reason"] in reason["reason"]


def test_the_alert_fired_after_the_world_change_carries_the_drift(world: WorldRun) -> None:
    """The candidate's own divergence at 110 s fires with evidence.baseline_drift of its check."""
    (alert,) = [a for a in world.alerts if a.check == "escalations"]
    assert alert.status == "firing"
    assert _seconds(alert.event_time, world.scenario) >= DEGRADE_AT
    drift = alert.evidence["baseline_drift"]
    assert drift["detected"] is True and drift["checks"] == ["escalations"]
    assert (
        WORLD_AT
        < _seconds(drift["since"], world.scenario)
        <= _seconds(alert.event_time, world.scenario)
    )
    assert world.alerts == [alert], "the world change itself raised no alert"


def test_the_metrics_show_the_baseline_drift(world: WorldRun) -> None:
    """shiftwatch_baseline_drift is 1 for the drifting checks; the change counter counts them."""
    text = generate_latest(world.pipeline.metrics.registry).decode()
    for check in ("escalations", "score-drift"):
        labels = f'{{check="{check}",model="fraud-scorer"}}'
        assert f"shiftwatch_baseline_drift{labels} 1.0" in text
        assert f"shiftwatch_baseline_drift_changes_total{labels} 1.0" in text
    assert 'shiftwatch_baseline_drift{check="new-privileged-tool"' not in text


def test_the_watch_survives_a_checkpoint(world: WorldRun) -> None:
    """Sealed at 105 s and restored, the pipeline ends with the same verdict and alerts."""
    assert world.restored.verdicts.get("fraud-scorer", "v7-int8") == world.pipeline.verdicts.get(
        "fraud-scorer", "v7-int8"
    )
    assert world.restored_alerts == world.alerts


def test_a_checkpoint_without_the_watch_starts_it_afresh() -> None:
    """A state from before the watch (no baseline_drift key) restores; the watch starts empty."""
    pipeline = _pipeline()
    for batch in _batches(_scenario(2, world=False), 8000):
        pipeline.process(batch)
    state = pipeline.state()
    del state["baseline_drift"]
    fresh = _pipeline()
    restore_pipeline(fresh, state)
    assert fresh.models["fraud-scorer"].baseline_drift.state()["detectors"] == {}
    verdict = fresh.verdicts.get("fraud-scorer", "v7-int8")
    assert verdict is not None and verdict["baseline_drift"]["detected"] is False


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_world_change_flags_no_baseline_drift(seed: int) -> None:
    """60 s of stable traffic (over 50 chunks per check after the reference): no drift."""
    pipeline = _pipeline()
    for batch in _batches(_scenario(seed, world=False), int(60 * RATE)):
        pipeline.process(batch)
    watch = pipeline.models["fraud-scorer"].baseline_drift
    view = watch.view()
    assert view["detected"] is False and view["checks"] == []
    assert set(view["changes"]) == {"escalations", "deny-rate", "score-drift"}
    assert all(n == 0 for n in view["changes"].values())
    assert all(det["state"]["chunks"] >= 50 for det in watch.state()["detectors"].values())


def test_policy_check_warns_from_a_running_monitor(
    world: WorldRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy check --monitor URL` prints a warning for the drifting baseline; exit status 0."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    metrics = world.pipeline.metrics
    server = HttpServer(metrics.registry, lambda: (True, "ok"), verdicts=metrics.verdicts).start()
    try:
        assert (
            main(["policy", "check", str(policy), "--monitor", f"http://127.0.0.1:{server.port}"])
            == 0
        )
    finally:
        server.stop()
    out = capsys.readouterr().out.splitlines()
    warnings = [line for line in out if line.startswith("warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "warning: model fraud-scorer: the baseline v7-fp32 itself drifted since 2026-11-02T09:01:"
    )
    assert "candidate v7-int8 is judged against a moving baseline" in warnings[0]
    assert out[-1] == "ok"


def test_policy_check_without_drift_or_monitor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No drift: no warning; an unreachable monitor: exit status 1 and the URL that failed."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("    candidates: [v7-int8]\n", ""))
    pipeline = _pipeline()
    for batch in _batches(_scenario(3, world=False), 4000):
        pipeline.process(batch)
    metrics = pipeline.metrics
    server = HttpServer(metrics.registry, lambda: (True, "ok"), verdicts=metrics.verdicts).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        assert main(["policy", "check", str(policy), "--monitor", url]) == 0
    finally:
        server.stop()
    captured = capsys.readouterr()
    assert "warning" not in captured.out and captured.out.splitlines()[-1] == "ok"
    assert main(["policy", "check", str(policy), "--monitor", url]) == 1
    assert f"cannot read {url}/verdict?model=fraud-scorer" in capsys.readouterr().err


def test_restore_of_none_is_a_fresh_watch() -> None:
    """BaselineDrift.restore(None) (an older checkpoint) leaves an empty, undrifting watch."""
    watch = BaselineDrift(parse_policy(yaml.safe_load(POLICY)).models[0])
    watch.restore(None)
    assert watch.view()["detected"] is False and watch.state()["detectors"] == {}
