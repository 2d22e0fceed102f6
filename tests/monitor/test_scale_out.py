"""Two replicas in one group; one is killed, the other takes its partition over with its state."""

from __future__ import annotations

import signal
import urllib.error
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.partitioner.default import murmur2

from monitor.broker import EmbeddedBroker, create_topics
from tests.conftest import (
    DEMO_POLICY,
    Monitor,
    committed_total,
    demo_traffic,
    produce,
    wait_kafka,
    without_fired_at,
)

pytestmark = pytest.mark.kafka

MODELS = ("fraud-scorer", "refund-agent")  # keyed by model: partitions 0 and 1 of 2
SECRET = "changelog-secret-for-tests"


def _events(model: str, seed: int, requests: int) -> tuple[list[dict[str, Any]], ...]:
    """The demo's degraded candidate for ``model``, in two halves; outcomes carry the model."""
    halves: list[list[dict[str, Any]]] = [[], []]
    for half, events in enumerate(demo_traffic(seed, requests // 2, requests)):
        for event in events:
            event = {**event, "model": model}
            event["id"] = f"{model}/{event['id']}"
            event["request_id"] = f"{model}/{event['request_id']}"
            halves[half].append(event)
    return tuple(halves)


def test_a_killed_replicas_partition_moves_with_its_state(
    broker: EmbeddedBroker, tmp_path: Path, kafka_client: str
) -> None:
    """Replica 1 is SIGKILLed; replica 2 restores its partition from the changelog.

    At the end replica 2's checks for both models equal those of a single
    unbroken replica over the same topic, and the two replicas' alerts
    together are the unbroken replica's: none lost, none twice.
    """
    assert [(murmur2(m.encode()) & 0x7FFFFFFF) % 2 for m in MODELS] == [0, 1]
    run = uuid.uuid4().hex[:8]
    topic, changelog, reference_log = f"scale-{run}", f"state-{run}", f"state0-{run}"
    create_topics(
        broker.bootstrap_servers,
        {topic: 2, f"{topic}.dlq": 1, changelog: 1, reference_log: 1},
    )
    policy = yaml.safe_load(DEMO_POLICY.read_text())
    policy["models"].append({**policy["models"][0], "name": MODELS[1]})
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    first_a, second_a = _events(MODELS[0], 41, 40_000)
    first_b, second_b = _events(MODELS[1], 43, 40_000)

    def env(log: str) -> dict[str, str]:
        return {
            "SHIFTWATCH_STATE__CHANGELOG_TOPIC": log,
            "SHIFTWATCH_STATE__CHANGELOG_SECRET": SECRET,
        }

    def committed(group: str) -> int:
        return committed_total(broker.bootstrap_servers, topic, group)

    n_first = produce(broker.bootstrap_servers, topic, first_a + first_b)
    group = f"replicas-{run}"
    replica = {"policy": policy_path, "env": env(changelog), "client": kafka_client}
    one = Monitor(broker, topic, group, tmp_path / "one", **replica)
    two = Monitor(broker, topic, group, tmp_path / "two", **replica)
    one.start()
    two.start()
    try:
        wait_kafka(lambda: committed(group) == n_first, timeout=180)
        # Each replica owns one partition, so one model: its verdict is served there only.
        wait_kafka(lambda: _split(_owned(one), _owned(two)), timeout=90)
        taken_over = _owned(one)
        one.kill(signal.SIGKILL)
        n_second = produce(broker.bootstrap_servers, topic, second_a + second_b)
        wait_kafka(lambda: committed(group) == n_first + n_second, timeout=180)
        wait_kafka(lambda: _owned(two) == set(MODELS), timeout=60)
        got = {m: two.verdict(m) for m in MODELS}
        served = _owned(two)
    finally:
        two.kill(signal.SIGTERM)
        if one.proc is not None and one.proc.poll() is None:
            one.kill(signal.SIGKILL)

    ref = Monitor(
        broker,
        topic,
        f"unbroken-{run}",
        tmp_path / "ref",
        policy=policy_path,
        env=env(reference_log),
    )
    ref.start()
    try:
        wait_kafka(lambda: committed(f"unbroken-{run}") == n_first + n_second, timeout=180)
        expected = {m: ref.verdict(m) for m in MODELS}
    finally:
        ref.kill(signal.SIGTERM)

    for model in MODELS:
        assert expected[model]["verdict"] == "fail"
        assert without_fired_at(got[model]["checks"]) == without_fired_at(expected[model]["checks"])
    both = one.alerts() + two.alerts()
    keys = [(a["alert_id"], a["status"]) for a in both]
    assert len(keys) == len(set(keys)), "an alert was raised twice"
    assert sorted(_key(a) for a in both) == sorted(_key(a) for a in ref.alerts())
    log = (tmp_path / "two" / "log.txt").read_text()
    assert "restored partition from the changelog" in log
    assert taken_over < served  # the killed replica's model moved to replica two


def _split(a: set[str], b: set[str]) -> bool:
    """Whether two replicas own one model each, and together all."""
    return len(a) == len(b) == 1 and a | b == set(MODELS)


def _owned(replica: Monitor) -> set[str]:
    """The models whose verdict ``replica`` serves (those of the partitions it owns)."""
    owned = set()
    for model in MODELS:
        try:
            replica.verdict(model)
        except urllib.error.HTTPError as err:
            assert err.code == 404
            continue
        owned.add(model)
    return owned


def _key(alert: dict[str, Any]) -> str:
    return str(sorted((k, str(v)) for k, v in alert.items() if k != "fired_at"))
