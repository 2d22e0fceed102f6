"""The monitor against a real Kafka-protocol broker (Tansu), end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from monitor.alerts import AlertRecord
from monitor.broker import EmbeddedBroker
from monitor.config import Settings, load_settings
from monitor.demo.simulator import Scenario, generate
from monitor.metrics import Metrics
from monitor.pipeline import BatchResult
from monitor.policy import load_policy
from monitor.run import build_service
from tests.conftest import (
    DEMO_POLICY,
    FAST_GROUP,
    committed_total,
    http_request,
    metric_sum,
    produce,
)

pytestmark = pytest.mark.kafka


class _Captured:
    """An alert sink that keeps what it is given."""

    def __init__(self) -> None:
        self.alerts: list[AlertRecord] = []

    def emit(self, alert: AlertRecord) -> None:
        self.alerts.append(alert)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def _settings(
    broker: EmbeddedBroker, topic: str, group: str, client: str = "kafka-python"
) -> Settings:
    return load_settings(
        None,
        policy=str(DEMO_POLICY),
        kafka={
            "client": client,
            "bootstrap_servers": broker.bootstrap_servers,
            "topics": [topic],
            "dead_letter_topic": f"{topic}.dlq",
            "group_id": group,
            **FAST_GROUP,
        },
        http_port=0,
    )


def _consume_all(
    settings: Settings, expected: int, timeout: float = 90.0
) -> tuple[int, list[AlertRecord]]:
    """Run the service in-process until ``expected`` messages were consumed."""
    captured = _Captured()
    stop = threading.Event()

    def on_batch(result: BatchResult) -> None:
        if service.pipeline.ledger.consumed >= expected:
            stop.set()

    service = build_service(
        settings,
        load_policy(settings.policy),
        Metrics(),
        extra_sinks=[captured],
        on_batch=on_batch,
        log_alerts=False,
    )
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        service.run(stop)
    finally:
        timer.cancel()
    ledger = service.pipeline.ledger
    assert ledger.balanced(), ledger
    return ledger.consumed, captured.alerts


def test_processes_every_event_and_commits(
    broker: EmbeddedBroker, topic: str, kafka_client: str
) -> None:
    """Every produced event is processed and the group's committed offsets cover all of them."""
    n = produce(broker.bootstrap_servers, topic, generate(Scenario.identical(seed=3), 5_000))
    consumed, alerts = _consume_all(_settings(broker, topic, "g-all", kafka_client), n)
    assert consumed == n
    assert alerts == []
    assert committed_total(broker.bootstrap_servers, topic, "g-all") == n


def test_dead_letters_carry_reason_source_and_original_bytes(
    broker: EmbeddedBroker, topic: str, kafka_client: str
) -> None:
    """Malformed messages land in the dead-letter topic with their reason and position."""
    good = list(generate(Scenario.identical(seed=4), 500))
    bad = [b"not json", b'{"kind": "inference", "id": "x"}', b'{"kind": "teleport"}', b"\xff\xfe"]
    values: list[bytes | dict[str, object]] = [*good[:100], *bad, *good[100:]]
    n = produce(broker.bootstrap_servers, topic, values)
    settings = _settings(broker, topic, "g-dlq", kafka_client)
    consumed, _ = _consume_all(settings, n)
    assert consumed == n

    consumer = KafkaConsumer(
        f"{topic}.dlq",
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
        enable_auto_commit=False,
    )
    letters = list(consumer)
    consumer.close()
    assert sorted(m.value for m in letters) == sorted(bad)
    for m in letters:
        headers = {k: v.decode() for k, v in m.headers}
        assert headers["shiftwatch.source.topic"] == topic
        assert int(headers["shiftwatch.source.offset"]) >= 0
        assert headers["shiftwatch.reason"]
    codes = {m.value: dict(m.headers)["shiftwatch.code"].decode() for m in letters}
    assert codes[b"not json"] == "invalid_json"
    assert codes[b'{"kind": "teleport"}'] == "unknown_kind"
    assert codes[b'{"kind": "inference", "id": "x"}'] == "missing_field"


def test_rate_shift_beyond_tolerance_alerts(broker: EmbeddedBroker, topic: str) -> None:
    """A candidate that halves escalations raises the escalations rollback alert."""
    scenario = replace(Scenario(seed=5), rare_lang_deny_factor=1.0)
    n = produce(broker.bootstrap_servers, topic, generate(scenario, 60_000))
    consumed, alerts = _consume_all(_settings(broker, topic, "g-shift"), n)
    assert consumed == n
    overall = [a for a in alerts if a.check == "escalations" and a.segment == {}]
    assert len(overall) == 1
    alert = overall[0]
    assert alert.action == "rollback" and alert.baseline == "v7-fp32" and alert.version == "v7-int8"
    assert alert.observed is not None and alert.reference is not None
    assert alert.observed < 0.75 * alert.reference
    assert alert.evidence["source"]["topic"] == topic
    assert alert.evidence["statistic"] >= alert.evidence["threshold"]


def test_clean_stream_does_not_alert(broker: EmbeddedBroker, topic: str) -> None:
    """A candidate identical to the baseline raises nothing."""
    n = produce(broker.bootstrap_servers, topic, generate(Scenario.identical(seed=6), 60_000))
    consumed, alerts = _consume_all(_settings(broker, topic, "g-clean"), n)
    assert consumed == n
    assert alerts == []


_POLL_THEN_HANG = """
import sys, time
from monitor.config import load_settings
from monitor.sources.clients import kafka_source
s = load_settings(None, policy=sys.argv[1], kafka={"bootstrap_servers": sys.argv[2],
    "topics": [sys.argv[3]], "group_id": sys.argv[4], "max_poll_records": 50,
    "max_poll_interval_ms": 10000, "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
    "client": sys.argv[5]})
src = kafka_source(s.kafka)
while True:
    batch = src.poll()
    if batch:
        print(len(batch), flush=True)
        time.sleep(600)
"""


def test_crash_between_poll_and_commit_loses_nothing(
    broker: EmbeddedBroker, topic: str, kafka_client: str
) -> None:
    """A monitor SIGKILLed after poll, before commit: the restarted one re-reads that batch."""
    n = produce(broker.bootstrap_servers, topic, generate(Scenario.identical(seed=8), 300))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _POLL_THEN_HANG,
            str(DEMO_POLICY),
            broker.bootstrap_servers,
            topic,
            "g-crash",
            kafka_client,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        polled = int(proc.stdout.readline())
        assert polled > 0
    finally:
        proc.kill()
        proc.wait()
    assert committed_total(broker.bootstrap_servers, topic, "g-crash") == 0
    consumed, _ = _consume_all(_settings(broker, topic, "g-crash", kafka_client), n)
    assert consumed == n
    assert committed_total(broker.bootstrap_servers, topic, "g-crash") == n


def test_sigterm_finishes_the_batch_and_commits(
    broker: EmbeddedBroker, topic: str, tmp_path: Path, kafka_client: str
) -> None:
    """`shiftwatch run` stops on SIGTERM mid-stream with exactly its processed events committed."""
    n = produce(broker.bootstrap_servers, topic, generate(Scenario.identical(seed=9), 60_000))
    port_file = tmp_path / "config.yaml"
    port_file.write_text(
        json.dumps(
            {
                "policy": str(DEMO_POLICY),
                "http_host": "127.0.0.1",
                "kafka": {
                    "client": kafka_client,
                    "bootstrap_servers": broker.bootstrap_servers,
                    "topics": [topic],
                    "group_id": "g-term",
                    "max_poll_records": 500,
                    **FAST_GROUP,
                },
            }
        )
    )
    from monitor.broker import free_port

    port = free_port()
    env = {**os.environ, "SHIFTWATCH_HTTP_PORT": str(port), "SHIFTWATCH_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(port_file)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        consumed = 0.0
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                _, _, body = http_request(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                continue
            consumed = metric_sum(body, "shiftwatch_events_consumed_total")
            if consumed > 0:
                break
        if consumed == 0:
            proc.kill()
            assert proc.stderr is not None
            pytest.fail(f"nothing consumed; service log:\n{proc.stderr.read()[-3000:]}")
        assert consumed < n, f"stop must arrive mid-stream (consumed {consumed} of {n})"
        assert http_request(f"http://127.0.0.1:{port}/livez")[0] == 200
        assert http_request(f"http://127.0.0.1:{port}/readyz")[0] == 200
        assert http_request(f"http://127.0.0.1:{port}/nope")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    lines = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    stopped = [line for line in lines if line.get("event") == "stopped"]
    assert len(stopped) == 1
    final = stopped[0]["consumed"]
    assert 0 < final < n
    assert committed_total(broker.bootstrap_servers, topic, "g-term") == final


def test_backlog_reports_messages_waiting_per_partition(
    broker: EmbeddedBroker, topic: str, kafka_client: str
) -> None:
    """The source reports each assigned partition's backlog: > 0 mid-way, 0 once drained."""
    from monitor.sources.clients import kafka_source

    values = [json.dumps({"kind": "outcome", "n": i, "model": "m"}).encode() for i in range(60)]
    produce(broker.bootstrap_servers, topic, values)  # one key: one partition holds all 60
    settings = load_settings(
        None,
        policy=str(DEMO_POLICY),
        kafka={
            "client": kafka_client,
            "bootstrap_servers": broker.bootstrap_servers,
            "topics": [topic],
            "group_id": f"backlog-{topic}",
            "max_poll_records": 10,
            **FAST_GROUP,
        },
    )
    source = kafka_source(settings.kafka)
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 60
        while len(seen) < 60 and time.monotonic() < deadline:
            batch = source.poll()
            seen += [m.offset for m in batch]
            if batch and len(seen) < 60:
                lag = source.backlog()[f"{topic}:{batch[0].partition}"]
                assert lag is not None and lag == 60 - len(seen)
        assert len(seen) == 60
        backlog = source.backlog()
        assert set(backlog) == {f"{topic}:{p}" for p in range(3)}
        assert all(waiting == 0 for waiting in backlog.values() if waiting is not None)
    finally:
        source.close()
