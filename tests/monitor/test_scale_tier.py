"""The two-stage tier on Quix Streams against the real broker: the same checks and alerts as
one process, through SIGKILLs of either stage and a rebalance of the judge stage.

Events are keyed by ``request_id`` over 6 partitions, as the tier asks. Each
stream ends with a *closing* inference on every partition, a day after the
traffic, so that every bucket of the traffic is released in both runs: the
reference (one :class:`~monitor.pipeline.Pipeline` fed the same events) and
the tier, whose watermark is the minimum over the partitions.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from monitor.alerts import AlertRecord
from monitor.broker import EmbeddedBroker, create_topics
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from tests.conftest import (
    DEMO_POLICY,
    committed_total,
    demo_traffic,
    metric_sum,
    produce,
    wait_kafka,
    without_fired_at,
)
from tests.monitor.scale_stages import Stage, alerts_of

pytestmark = pytest.mark.kafka

PARTITIONS = 6
MODELS = ("fraud-scorer", "refund-agent")  # partials keyed by model: partitions 0 and 1 of 2


# -- the traffic and the one-process reference ------------------------------------------------
def _events(model: str, seed: int, *ends: int) -> tuple[list[dict[str, Any]], ...]:
    """The demo's degraded candidate for ``model``, in pieces (ids and request ids are the
    model's own)."""
    pieces = []
    for piece in demo_traffic(seed, *ends):
        out = []
        for event in piece:
            event = {**event, "model": model}
            event["id"] = f"{model}/{event['id']}"
            event["request_id"] = f"{model}/{event['request_id']}"
            out.append(event)
        pieces.append(out)
    return tuple(pieces)


def _closing(events: list[dict[str, Any]], models: tuple[str, ...]) -> list[dict[str, Any]]:
    """One baseline inference per model and partition, a day after the last event."""
    last = max(datetime.fromisoformat(e["time"]) for e in events)
    at = (last + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    return [
        {
            "kind": "inference",
            "id": f"closing/{model}/{p}",
            "time": at,
            "request_id": f"closing/{model}/{p}",
            "model": model,
            "version": "v7-fp32",
            "score": 0.5,
            "decision": "allow",
            "_partition": p,
        }
        for model in models
        for p in range(PARTITIONS)
    ]


def _produce_closing(bootstrap: str, topic: str, closing: list[dict[str, Any]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for event in closing:
        body = {k: v for k, v in event.items() if k != "_partition"}
        producer.send(
            topic,
            value=json.dumps(body).encode(),
            key=body["request_id"].encode(),
            partition=event["_partition"],
        )
    producer.flush()
    producer.close()
    return len(closing)


class _Collect:
    """An alert sink that keeps the records; a dead-letter sink that must get nothing."""

    def __init__(self) -> None:
        self.alerts: list[AlertRecord] = []

    def emit(self, alert: AlertRecord) -> None:
        self.alerts.append(alert)

    def send(self, message: Message, rejection: object) -> None:
        raise AssertionError(f"the traffic has no bad event: {rejection}")

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def _reference(
    policy: Path, events: list[dict[str, Any]], models: tuple[str, ...]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Verdicts and alert records of one process over ``events`` in order."""
    alerts = _Collect()
    pipeline = Pipeline(
        load_policy(policy), dead_letters=_Collect(), alert_sinks=[alerts], quiet=True
    )
    bodies = [{k: v for k, v in e.items() if k != "_partition"} for e in events]
    messages = [Message(json.dumps(e).encode(), "ref", 0, i) for i, e in enumerate(bodies)]
    for start in range(0, len(messages), 5000):
        pipeline.process(messages[start : start + 5000])
    assert pipeline.ledger.late == 0  # the tier's equality below needs every event on time
    verdicts = {}
    for model in models:
        verdict = pipeline.verdicts.get(model, "v7-int8")
        assert verdict is not None
        verdicts[model] = json.loads(json.dumps(verdict))
    return verdicts, [a.model_dump(mode="json") for a in alerts.alerts]


def _same_alerts(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """The same records, but for the wall-clock ``fired_at`` and where they were read."""

    def key(alert: dict[str, Any]) -> str:
        alert = {k: v for k, v in alert.items() if k != "fired_at"}
        alert["evidence"] = {k: v for k, v in alert["evidence"].items() if k != "source"}
        return json.dumps(alert, sort_keys=True)

    keys = [(a["alert_id"], a["status"]) for a in got]
    assert len(keys) == len(set(keys)), "an alert was delivered twice"
    assert sorted(map(key, got)) == sorted(map(key, expected))


# -- the tier ---------------------------------------------------------------------------------
class _Tier:
    """A topic of 6 partitions, its dead-letter topic, and stages started on demand."""

    def __init__(self, broker: EmbeddedBroker, workdir: Path, policy: Path = DEMO_POLICY) -> None:
        run = uuid.uuid4().hex[:8]
        self.broker, self.workdir, self.policy = broker, workdir, policy
        self.topic, self.group = f"tier-{run}", f"tier-{run}"
        create_topics(broker.bootstrap_servers, {self.topic: PARTITIONS, f"{self.topic}.dlq": 1})
        self.stages: list[Stage] = []

    def stage(self, stage: str, name: str, **env: str) -> Stage:
        one = Stage(
            self.broker,
            stage,
            self.topic,
            self.group,
            self.workdir / name,
            policy=self.policy,
            alerts=self.workdir / name / "alerts.jsonl" if stage == "judge" else None,
            extra_env=env,
        )
        self.stages.append(one.start())
        return one

    def produce(self, events: list[dict[str, Any]]) -> int:
        plain = [e for e in events if "_partition" not in e]
        closing = [e for e in events if "_partition" in e]
        n = produce(self.broker.bootstrap_servers, self.topic, plain, key_by="request_id")
        return n + _produce_closing(self.broker.bootstrap_servers, self.topic, closing)

    def alerts(self) -> list[dict[str, Any]]:
        """Every judge's alerts file (a judge started again appends to its own)."""
        return [a for f in sorted(self.workdir.glob("*/alerts.jsonl")) for a in alerts_of(f)]

    def ingested(self) -> int:
        return committed_total(self.broker.bootstrap_servers, self.topic, f"{self.group}.ingest")

    def close(self) -> None:
        for one in self.stages:
            if one.proc is not None and one.proc.poll() is None:
                one.kill(signal.SIGTERM)


def _settled(judge: Stage, models: tuple[str, ...], expected: dict[str, dict[str, Any]]) -> bool:
    """Whether the judge's checks of every model are those expected (it is done)."""
    try:
        return all(
            without_fired_at(judge.verdict(m)["checks"]) == without_fired_at(expected[m]["checks"])
            for m in models
        )
    except urllib.error.HTTPError:
        return False  # a model not judged yet


def _wait(predicate: Callable[[], bool], timeout: float = 180.0) -> None:
    wait_kafka(predicate, timeout=timeout)


def test_two_ingest_replicas_and_a_judge_equal_one_process(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """6 partitions keyed by request id, 2 ingest replicas, 1 judge: one process's checks
    and alerts, and the counts of every event once."""
    tier = _Tier(broker, tmp_path)
    (traffic,) = _events(MODELS[0], 29, 50_000)
    events = traffic + _closing(traffic, MODELS[:1])
    expected, expected_alerts = _reference(DEMO_POLICY, events, MODELS[:1])
    try:
        judge = tier.stage("judge", "judge")
        tier.stage("ingest", "ingest-1")
        tier.stage("ingest", "ingest-2")
        total = tier.produce(events)
        _wait(lambda: tier.ingested() == total)
        _wait(lambda: _settled(judge, MODELS[:1], expected))
        metrics = judge.get("/metrics")
        got = judge.verdict()
    finally:
        tier.close()
    assert expected[MODELS[0]]["verdict"] == got["verdict"] == "fail"
    _same_alerts(tier.alerts(), expected_alerts)
    assert metric_sum(metrics, "shiftwatch_events_late_total") == 0
    # Both ingest replicas read partitions (the group split the 6 between them).
    for name in ("ingest-1", "ingest-2"):
        assert "restored partition state" not in (tmp_path / name / "log.txt").read_text()
        assert '"stage": "ingest"' in (tmp_path / name / "log.txt").read_text()


def test_a_killed_ingest_replicas_partitions_move_with_their_routers(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """SIGKILL one ingest replica mid-stream: the other restores its partitions' routers
    (dedupe and join tables) from the state store and goes on; what the dead one had
    handed on after its last commit is handed on again and counted once."""
    tier = _Tier(broker, tmp_path)
    first, second = _events(MODELS[0], 31, 60_000, 120_000)
    events = first + second + _closing(first + second, MODELS[:1])
    expected, expected_alerts = _reference(DEMO_POLICY, events, MODELS[:1])
    try:
        judge = tier.stage("judge", "judge")
        doomed = tier.stage("ingest", "ingest-1")
        survivor = tier.stage("ingest", "ingest-2")
        n_first = tier.produce(first)
        _wait(lambda: tier.ingested() >= n_first // 2)
        doomed.kill(signal.SIGKILL)
        total = n_first + tier.produce(second + events[len(first) + len(second) :])
        _wait(lambda: tier.ingested() == total)
        _wait(lambda: _settled(judge, MODELS[:1], expected))
        metrics = judge.get("/metrics")
    finally:
        tier.close()
    _same_alerts(tier.alerts(), expected_alerts)
    assert metric_sum(metrics, "shiftwatch_events_late_total") == 0
    assert "restored partition state" in survivor.log.read_text()


def test_a_killed_judge_restarts_from_its_store_and_delivers_each_alert_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """SIGKILL the judge mid-stream and start it again: it restores each model from its
    store, judges again what followed its last commit, and the alerts file holds every
    alert once."""
    tier = _Tier(broker, tmp_path)
    first, second = _events(MODELS[0], 37, 60_000, 120_000)
    events = first + second + _closing(first + second, MODELS[:1])
    expected, expected_alerts = _reference(DEMO_POLICY, events, MODELS[:1])
    assert expected_alerts, "the stream must raise alerts for this test to mean anything"
    try:
        judge = tier.stage("judge", "judge")
        tier.stage("ingest", "ingest-1")
        tier.stage("ingest", "ingest-2")
        total = tier.produce(first)
        _wait(lambda: len(tier.alerts()) > 0)  # past a first alert
        judge.kill(signal.SIGKILL)
        total += tier.produce(second + events[len(first) + len(second) :])
        time.sleep(2.0)  # let the ingest stage hand some of it on meanwhile
        judge = tier.stage("judge", "judge")
        _wait(lambda: tier.ingested() == total)
        _wait(lambda: _settled(judge, MODELS[:1], expected))
    finally:
        tier.close()
    _same_alerts(tier.alerts(), expected_alerts)
    assert "restored model state" in judge.log.read_text()


def test_two_models_land_on_two_judges_and_survive_a_rebalance(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Two models, partials keyed by model over 2 partitions: one judge holds both, then a
    second judge joins and takes one model over with its state (restored from the
    store on its next partial); each ends with one model, and both models' checks are
    one process's."""
    assert [(murmur2(m.encode()) & 0x7FFFFFFF) % 2 for m in MODELS] == [0, 1]
    policy = yaml.safe_load(DEMO_POLICY.read_text())
    policy["models"].append({**policy["models"][0], "name": MODELS[1]})
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    tier = _Tier(broker, tmp_path, policy_path)
    first_a, second_a = _events(MODELS[0], 41, 30_000, 60_000)
    first_b, second_b = _events(MODELS[1], 43, 30_000, 60_000)
    first, second = first_a + first_b, second_a + second_b
    events = first + second + _closing(first + second, MODELS)
    expected, expected_alerts = _reference(policy_path, events, MODELS)
    partials = {"SHIFTWATCH_SCALE__PARTIALS_PARTITIONS": "2"}
    try:
        one = tier.stage("judge", "judge-1", **partials)
        tier.stage("ingest", "ingest-1", **partials)
        n_first = tier.produce(first)
        _wait(lambda: tier.ingested() == n_first)
        _wait(lambda: _serves(one) == set(MODELS))
        two = tier.stage("judge", "judge-2", **partials)
        # The rebalance took partitions from judge 1, which withdrew their models' verdicts
        # (each is served again, by its new owner, from its next partial).
        _wait(lambda: len(_serves(one)) < 2)
        total = n_first + tier.produce(second + events[len(first) + len(second) :])
        _wait(lambda: tier.ingested() == total)
        _wait(lambda: len(_serves(one)) == len(_serves(two)) == 1)
        owner = {m: one if m in _serves(one) else two for m in MODELS}
        for model in MODELS:
            _wait(lambda m=model: _settled(owner[m], (m,), expected))  # type: ignore[misc]
    finally:
        tier.close()
    _same_alerts(tier.alerts(), expected_alerts)
    assert "restored model state" in two.log.read_text()  # the model it took over


def _serves(judge: Stage) -> set[str]:
    """The models whose verdict ``judge`` serves."""
    served = set()
    for model in MODELS:
        try:
            judge.verdict(model)
        except urllib.error.HTTPError as err:
            assert err.code == 404
            continue
        served.add(model)
    return served
