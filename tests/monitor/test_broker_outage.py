"""Broker outage: the broker frozen with SIGSTOP past the session timeout, then resumed."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker, create_topics
from tests.conftest import (
    Monitor,
    committed_total,
    demo_traffic,
    http_request,
    metric_sum,
    produce,
    wait_kafka,
)

pytestmark = pytest.mark.kafka

#: Longer than the test consumer's session timeout (6 s), so the group expires. CI uses
#: 20 s; SHIFTWATCH_TEST_OUTAGE_SECONDS=60 reproduces the design's 60 s outage.
PAUSE_SECONDS = float(os.environ.get("SHIFTWATCH_TEST_OUTAGE_SECONDS", "20"))


def test_monitor_survives_a_frozen_broker_without_loss(tmp_path: Path, kafka_client: str) -> None:
    """Frozen past the session timeout: /metrics answers, /readyz says not ready; nothing lost."""
    first, second = demo_traffic(31, 10_000, 20_000)
    with EmbeddedBroker() as broker:
        topic = f"outage-{uuid.uuid4().hex[:8]}"
        create_topics(broker.bootstrap_servers, {topic: 1, f"{topic}.dlq": 1})
        n1 = produce(broker.bootstrap_servers, topic, first)
        group = f"outage-{uuid.uuid4().hex[:6]}"
        mon = Monitor(broker, topic, group, tmp_path, client=kafka_client)
        base = f"http://127.0.0.1:{mon.port}"
        mon.start()
        try:
            wait_kafka(lambda: committed_total(broker.bootstrap_servers, topic, group) == n1)
            wait_kafka(lambda: http_request(f"{base}/readyz")[0] == 200, timeout=30)

            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            paused = time.monotonic()
            try:
                wait_kafka(lambda: http_request(f"{base}/readyz")[0] == 503, timeout=PAUSE_SECONDS)
                assert time.monotonic() - paused < PAUSE_SECONDS
                assert http_request(f"{base}/metrics")[0] == 200
                assert mon.proc is not None and mon.proc.poll() is None
                time.sleep(max(0.0, PAUSE_SECONDS - (time.monotonic() - paused)))
                assert http_request(f"{base}/metrics")[0] == 200
            finally:
                os.kill(broker.pid, signal.SIGCONT)

            n2 = produce(broker.bootstrap_servers, topic, second)
            wait_kafka(lambda: committed_total(broker.bootstrap_servers, topic, group) == n1 + n2)
            wait_kafka(lambda: http_request(f"{base}/readyz")[0] == 200, timeout=60)
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
                metrics = resp.read().decode()
        finally:
            mon.kill(signal.SIGTERM)
    assert mon.proc.returncode == 0
    # Every event was processed exactly once: redeliveries, if any, were dropped as duplicates.
    processed = metric_sum(metrics, "shiftwatch_events_processed_total")
    consumed = metric_sum(metrics, "shiftwatch_events_consumed_total")
    duplicates = metric_sum(metrics, "shiftwatch_events_duplicate_total")
    assert processed == n1 + n2
    assert consumed == processed + duplicates
