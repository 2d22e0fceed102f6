"""Broker outage: the broker frozen with SIGSTOP past the session timeout, then resumed."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker, create_topics
from monitor.demo.simulator import Scenario, TrafficSimulator
from tests.conftest import committed_total, produce
from tests.monitor.test_crash_recovery import Monitor, _wait

pytestmark = pytest.mark.kafka

#: Longer than the test consumer's session timeout (6 s), so the group expires. CI uses
#: 20 s; SHIFTWATCH_TEST_OUTAGE_SECONDS=60 reproduces the design's 60 s outage.
PAUSE_SECONDS = float(os.environ.get("SHIFTWATCH_TEST_OUTAGE_SECONDS", "20"))


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def _sample(metrics: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def test_monitor_survives_a_frozen_broker_without_loss(tmp_path: Path) -> None:
    """Frozen past the session timeout: /metrics answers, /readyz says not ready; nothing lost."""
    sim = TrafficSimulator(replace(Scenario(seed=31), requests_per_second=300.0))
    first: list[dict[str, object]] = []
    while sim.requests < 10_000:
        first.extend(sim.next_batch(1000))
    second: list[dict[str, object]] = []
    while sim.requests < 20_000:
        second.extend(sim.next_batch(1000))
    with EmbeddedBroker() as broker:
        topic = f"outage-{uuid.uuid4().hex[:8]}"
        create_topics(broker.bootstrap_servers, {topic: 1, f"{topic}.dlq": 1})
        n1 = produce(broker.bootstrap_servers, topic, first)
        group = f"outage-{uuid.uuid4().hex[:6]}"
        mon = Monitor(broker, topic, group, tmp_path)
        base = f"http://127.0.0.1:{mon.port}"
        mon.start()
        try:
            _wait(lambda: committed_total(broker.bootstrap_servers, topic, group) == n1)
            _wait(lambda: _status(f"{base}/readyz") == 200, timeout=30)

            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            paused = time.monotonic()
            try:
                _wait(lambda: _status(f"{base}/readyz") == 503, timeout=PAUSE_SECONDS)
                assert time.monotonic() - paused < PAUSE_SECONDS
                assert _status(f"{base}/metrics") == 200
                assert mon.proc is not None and mon.proc.poll() is None
                time.sleep(max(0.0, PAUSE_SECONDS - (time.monotonic() - paused)))
                assert _status(f"{base}/metrics") == 200
            finally:
                os.kill(broker.pid, signal.SIGCONT)

            n2 = produce(broker.bootstrap_servers, topic, second)
            _wait(lambda: committed_total(broker.bootstrap_servers, topic, group) == n1 + n2)
            _wait(lambda: _status(f"{base}/readyz") == 200, timeout=60)
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
                metrics = resp.read().decode()
        finally:
            mon.kill(signal.SIGTERM)
    assert mon.proc.returncode == 0
    # Every event was processed exactly once: redeliveries, if any, were dropped as duplicates.
    processed = _sample(metrics, "shiftwatch_events_processed_total")
    consumed = _sample(metrics, "shiftwatch_events_consumed_total")
    duplicates = _sample(metrics, "shiftwatch_events_duplicate_total")
    assert processed == n1 + n2
    assert consumed == processed + duplicates
