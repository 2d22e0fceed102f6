"""ConfluentSource's health, read from librdkafka's statistics, and its wiring by kafka.client."""

from __future__ import annotations

import json
import time

import pytest

from monitor.broker import EmbeddedBroker
from monitor.config import KafkaSettings
from monitor.sources.clients import kafka_dead_letter_sink, kafka_source
from monitor.sources.confluent import ConfluentDeadLetterSink, ConfluentSource
from monitor.sources.kafka import KafkaDeadLetterSink, KafkaSource

pytestmark = pytest.mark.kafka

BIG = 10**12


def _stats(ts_seconds: float, rx: int, state: str = "UP") -> str:
    """librdkafka statistics as it writes them: one real broker, one bootstrap entry."""
    return json.dumps(
        {
            "ts": int(ts_seconds * 1e6),
            "brokers": {
                "127.0.0.1:9092/1": {"nodeid": 1, "state": state, "rx": rx},
                "127.0.0.1:9092/bootstrap": {"nodeid": -1, "state": "UP", "rx": 99},
            },
        }
    )


def test_health_follows_broker_responses_on_librdkafkas_clock(
    broker: EmbeddedBroker, topic: str
) -> None:
    """Healthy while responses arrive; not once a session timeout passes without one, or
    with no broker up; healthy again when they resume. Bootstrap entries do not count."""
    settings = KafkaSettings(
        client="confluent",
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"health-{topic}",
        session_timeout_ms=6_000,
    )
    source = ConfluentSource(settings)
    try:
        source.poll()
        # Counts no real reading has, so the first synthetic one always counts as news.
        source._stats(_stats(100.0, rx=BIG))
        assert source.healthy
        source._stats(_stats(105.9, rx=BIG))  # silent for less than the session timeout
        assert source.healthy
        source._stats(_stats(106.1, rx=BIG))  # silent for longer
        assert not source.healthy
        source._stats(_stats(107.0, rx=BIG + 1))
        assert source.healthy
        source._stats(_stats(108.0, rx=BIG + 2, state="DOWN"))
        assert not source.healthy
        source._stats("not json")  # ignored: the last reading stands
        assert not source.healthy
    finally:
        source.close()
    assert not source.healthy
    assert source.backlog() == {}
    source.close()  # idempotent


def test_kafka_client_picks_the_source_and_dead_letter_sink(
    broker: EmbeddedBroker, topic: str
) -> None:
    """kafka.client decides which client consumes and writes dead letters."""
    for client, source_type, sink_type in (
        ("kafka-python", KafkaSource, KafkaDeadLetterSink),
        ("confluent", ConfluentSource, ConfluentDeadLetterSink),
    ):
        settings = KafkaSettings(
            client=client,
            bootstrap_servers=broker.bootstrap_servers,
            topics=[topic],
            group_id=f"pick-{client}-{time.monotonic_ns()}",
        )
        source = kafka_source(settings)
        sink = kafka_dead_letter_sink(settings)
        try:
            assert isinstance(source, source_type)
            assert isinstance(sink, sink_type)
        finally:
            sink.close()
            source.close()
