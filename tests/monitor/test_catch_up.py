"""Event time per partition: a catch-up over uneven partitions and an idle partition.

Each assigned partition has its own watermark (the largest inference time read
from it); a model's buckets are released by the minimum over the partitions
that carry it and are not idle. A partition drained ahead of the others during
a catch-up therefore makes nothing late, and a partition that never delivers
stops holding the others back after ``limits.idle_timeout_seconds``. The same
uneven catch-up runs through the two-stage tier, where a second ingest replica
joins mid-backlog (the embedded engine is one replica per consumer group).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from monitor.alerts import JsonlAlertSink
from monitor.broker import EmbeddedBroker, create_topics
from monitor.demo.simulator import Scenario, generate
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from tests.conftest import (
    DEMO_POLICY,
    Monitor,
    committed_total,
    http_request,
    metric_sum,
    read_jsonl,
    wait_kafka,
)
from tests.monitor.scale_stages import Stage

pytestmark = pytest.mark.kafka

#: 20 minutes of event time at 15 requests per second: ~38k events. The candidate takes
#: 40% of the traffic, escalates a third as often as the baseline and calls a privileged
#: tool the baseline never calls, so `escalations` (overall, then lang=en) and
#: `new-privileged-tool` fire: in the first ten minutes and in the last ten.
SCENARIO = replace(
    Scenario(seed=29),
    requests_per_second=15.0,
    canary_share=0.4,
    escalation_factor=0.35,
    novel_privileged_tool=True,
)
REQUESTS = 15 * 20 * 60
#: Requests of the first ten minutes go to partitions 0 and 1, the rest to partition 2.
HALF = REQUESTS // 2
MAX_POLL_RECORDS = 500
LATE = "shiftwatch_events_late_total"


def _partition(event: dict[str, Any]) -> int:
    """Partition of a request's events: 0 or 1 for the first ten minutes, 2 for the last ten."""
    request = int(str(event["request_id"]).removeprefix("r-"))
    return 2 if request >= HALF else request % 2


def _produce(bootstrap: str, topic: str, placed: list[tuple[int, dict[str, Any]]]) -> None:
    """Produce each event to its partition, in list order (one request in flight: no reordering)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        batch_size=1 << 20,
        acks="all",
        max_in_flight_requests_per_connection=1,
    )
    for partition, event in placed:
        value = json.dumps(event, separators=(",", ":")).encode()
        producer.send(
            topic, value=value, key=str(event["request_id"]).encode(), partition=partition
        )
    producer.flush()
    producer.close()


def _metrics(mon: Monitor) -> str:
    status, _, body = http_request(f"http://127.0.0.1:{mon.port}/metrics")
    assert status == 200
    return body


def _settle(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether ``predicate`` holds within ``timeout`` seconds (the caller asserts what differs)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _checks(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    """The verdict's check views without the wall-clock ``fired_at``."""
    return [{k: v for k, v in c.items() if k != "fired_at"} for c in verdict["checks"]]


def _record(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert record without ``fired_at`` (wall clock) and ``evidence.source`` (the message
    whose processing released the bucket: it depends on the partition layout by construction)."""
    out = {k: v for k, v in alert.items() if k != "fired_at"}
    out["evidence"] = {k: v for k, v in alert["evidence"].items() if k != "source"}
    return out


def _records(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Comparable records, once each, sorted; one record per (alert_id, status)."""
    unique = {json.dumps(_record(a), sort_keys=True) for a in alerts}
    records = sorted((json.loads(r) for r in unique), key=lambda r: (r["alert_id"], r["status"]))
    keys = [(r["alert_id"], r["status"]) for r in records]
    assert len(keys) == len(set(keys)), f"one (alert_id, status), different records: {records}"
    return records


def _group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """The group's state and member count, as the broker reports them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    # Tansu reports authorized_operations bits that kafka-python 3.0 cannot map to its
    # ACLOperation enum; the group description does not need them.
    admin._process_acl_operations = lambda obj: obj
    try:
        group_info = admin.describe_groups([group])[group]
        return str(group_info["group_state"]), len(group_info["members"])
    finally:
        admin.close()


def test_uneven_catch_up_counts_nothing_late_and_matches_a_single_partition_run(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A backlog whose partition 2 runs ten minutes of event time ahead of partitions 0 and 1,
    caught up by one monitor SIGKILLed at 40% and restarted, counts no event late and ends with
    the checks and alerts of one monitor reading the same events in time order from one partition.
    """
    bootstrap = broker.bootstrap_servers
    events = list(generate(SCENARIO, REQUESTS))
    placed = [(_partition(e), e) for e in events]
    # Under a single watermark per model, the first message of partition 2 to be processed
    # would make every inference of partitions 0 and 1 not yet processed late.
    inference_times = {
        p: [str(e["time"]) for q, e in placed if q == p and e["kind"] == "inference"]
        for p in range(3)
    }
    assert min(inference_times[2]) > max(inference_times[0] + inference_times[1])
    total = len(events)

    run = uuid.uuid4().hex[:8]
    single, spread = f"catch-up-1p-{run}", f"catch-up-3p-{run}"
    create_topics(bootstrap, {single: 1, f"{single}.dlq": 1, spread: 3, f"{spread}.dlq": 1})
    _produce(bootstrap, single, [(0, e) for e in events])  # in time order
    _produce(bootstrap, spread, placed)  # in time order within each partition

    # The reference: every event in time order from one partition.
    ref = Monitor(broker, single, f"ref-{run}", tmp_path / "ref")
    ref.start()
    try:
        wait_kafka(lambda: committed_total(bootstrap, single, f"ref-{run}") == total, timeout=180)
        expected, expected_alerts = ref.verdict(), ref.alerts()
        late_ref = metric_sum(_metrics(ref), LATE)
    finally:
        ref.kill(signal.SIGTERM)
    assert expected["verdict"] == "fail"
    assert {a["check"] for a in expected_alerts} >= {"escalations", "new-privileged-tool"}
    assert late_ref == 0

    # The subject: the three partitions' backlog, caught up in polls of 500 messages.
    group = f"subject-{run}"

    def committed() -> int:
        return committed_total(bootstrap, spread, group)

    def monitor(name: str) -> Monitor:
        workdir = tmp_path / name
        env = {
            "SHIFTWATCH_STATE__PATH": str(workdir / "state.sqlite3"),
            "SHIFTWATCH_KAFKA__MAX_POLL_RECORDS": str(MAX_POLL_RECORDS),
        }
        return Monitor(broker, spread, group, workdir, env=env)

    first = monitor("first")
    late: dict[str, float] = {}
    try:
        first.start()
        wait_kafka(lambda: committed() >= 0.4 * total, timeout=180)
        late["first, before SIGKILL"] = metric_sum(_metrics(first), LATE)
        first.kill(signal.SIGKILL)
        at_kill = committed()
        first.start()
        wait_kafka(lambda: committed() == total, timeout=180)
        # The last buckets of partition 2 wait until partitions 0 and 1, drained, go idle.
        _settle(lambda: _checks(first.verdict()) == _checks(expected), timeout=90)
        caught_up = first.verdict()
        late["first, restarted, caught up"] = metric_sum(_metrics(first), LATE)
    finally:
        if first.proc is not None and first.proc.poll() is None:
            first.kill(signal.SIGTERM)

    assert 0.4 * total <= at_kill < total, "the SIGKILL did not land mid-catch-up"
    assert "restored checkpoint" in (tmp_path / "first" / "log.txt").read_text()
    assert late == dict.fromkeys(late, 0.0)
    assert _checks(caught_up) == _checks(expected)
    assert _records(first.alerts()) == _records(expected_alerts)


def _closing(events: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """One baseline inference per partition, a day after the last event: the tier's judge
    releases a bucket when every partition has passed it (it sees no idleness between
    partials), so these release every bucket of the traffic."""
    last = max(datetime.fromisoformat(str(e["time"]).replace("Z", "+00:00")) for e in events)
    at = (last + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    return [
        (
            p,
            {
                "kind": "inference",
                "id": f"closing-{p}",
                "time": at,
                "request_id": f"closing-{p}",
                "model": "fraud-scorer",
                "version": "v7-fp32",
                "score": 0.5,
                "decision": "allow",
            },
        )
        for p in range(3)
    ]


class _NoDeadLetters:
    """The traffic has no bad event: a dead letter fails the test."""

    def send(self, message: Message, rejection: object) -> None:
        raise AssertionError(f"dead letter in the reference run: {rejection}")

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def _one_process(
    events: list[dict[str, Any]], alerts: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """One monitor over ``events`` in order: its verdict, its alert records, its late count."""
    sink = JsonlAlertSink(alerts)
    pipeline = Pipeline(
        load_policy(DEMO_POLICY), dead_letters=_NoDeadLetters(), alert_sinks=[sink], quiet=True
    )
    messages = [Message(json.dumps(e).encode(), "ref", 0, i) for i, e in enumerate(events)]
    for start in range(0, len(messages), MAX_POLL_RECORDS):
        pipeline.process(messages[start : start + MAX_POLL_RECORDS])
    verdict = pipeline.verdicts.get("fraud-scorer", "v7-int8")
    assert verdict is not None
    late = pipeline.ledger.late
    pipeline.close()  # and its sinks
    return json.loads(json.dumps(verdict)), read_jsonl(alerts), late


def test_an_ingest_replica_joining_the_tier_mid_catch_up_makes_nothing_late(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The same uneven backlog through the two-stage tier: one ingest replica catches up
    40% of every partition, a second one joins (a rebalance hands it partitions with their
    routers), and the two catch up the rest. No process counts an event late, and the
    judge ends with the checks and alerts of one monitor over the same events in time order.
    """
    bootstrap = broker.bootstrap_servers
    events = list(generate(SCENARIO, REQUESTS))
    closing = _closing(events)
    expected, expected_alerts, late_ref = _one_process(
        events + [e for _, e in closing], tmp_path / "reference.jsonl"
    )
    assert expected["verdict"] == "fail" and late_ref == 0
    assert {a["check"] for a in expected_alerts} >= {"escalations", "new-privileged-tool"}

    # 40% of each partition's events (partition 2 ten minutes ahead already), then the rest.
    placed = [(_partition(e), e) for e in events]
    head: list[tuple[int, dict[str, Any]]] = []
    rest: list[tuple[int, dict[str, Any]]] = []
    for p in range(3):
        mine = [pe for pe in placed if pe[0] == p]
        cut = int(0.4 * len(mine))
        head += mine[:cut]
        rest += mine[cut:]
    run = uuid.uuid4().hex[:8]
    topic = group = f"catch-up-tier-{run}"
    create_topics(bootstrap, {topic: 3, f"{topic}.dlq": 1})

    def stage(kind: str, name: str) -> Stage:
        alerts = tmp_path / name / "alerts.jsonl" if kind == "judge" else None
        return Stage(broker, kind, topic, group, tmp_path / name, alerts=alerts)

    def ingested() -> int:
        return committed_total(bootstrap, topic, f"{group}.ingest")

    judge, first, second = stage("judge", "judge"), stage("ingest", "ingest-1"), None
    stages = [judge, first]
    try:
        judge.start()
        first.start()
        _produce(bootstrap, topic, head)
        wait_kafka(lambda: ingested() == len(head), timeout=120)
        second = stage("ingest", "ingest-2")
        stages.append(second.start())
        wait_kafka(lambda: _group_members(bootstrap, f"{group}.ingest") == ("Stable", 2), 120)
        _produce(bootstrap, topic, rest + closing)
        wait_kafka(lambda: ingested() == len(placed) + len(closing), timeout=120)
        _settle(lambda: _judged(judge) == _checks(expected), timeout=90)
        got = judge.verdict()
        late = {one.workdir.name: metric_sum(one.get("/metrics"), LATE) for one in stages}
        consumed = metric_sum(second.get("/metrics"), "shiftwatch_events_consumed_total")
    finally:
        for one in stages:
            if one.proc is not None and one.proc.poll() is None:
                one.kill(signal.SIGTERM)

    assert late == {"judge": 0.0, "ingest-1": 0.0, "ingest-2": 0.0}
    assert consumed > 0, "the second ingest replica was given no partition"
    assert "restored partition state" in second.log.read_text()
    assert _checks(got) == _checks(expected)
    alerts = read_jsonl(tmp_path / "judge" / "alerts.jsonl")
    assert len(alerts) == len(_records(alerts)), "an alert was delivered twice"
    assert _records(alerts) == _records(expected_alerts)


def _judged(judge: Stage) -> list[dict[str, Any]] | None:
    """The judge's checks, or None while it does not serve the model yet."""
    try:
        return _checks(judge.verdict())
    except OSError:  # 404 until its first partial, 503 while starting
        return None


def _trickle(
    bootstrap: str, topic: str, events: list[dict[str, Any]], stop: threading.Event
) -> None:
    """Produce each event to partition 0 once the wall clock reaches its time."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_in_flight_requests_per_connection=1
    )
    try:
        i = 0
        while i < len(events) and not stop.is_set():
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            while i < len(events) and str(events[i]["time"]) <= now:
                value = json.dumps(events[i], separators=(",", ":")).encode()
                producer.send(topic, value=value, partition=0)
                i += 1
            producer.flush()
            stop.wait(0.2)
    finally:
        producer.close()


def test_an_idle_partition_does_not_stall_releases(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    """Partitions 1 and 2 of the topic never deliver; after the idle timeout the checks follow
    partition 0's event time, and no event is late."""
    idle = 3.0
    margin = 2.0  # polls (200 ms), the checkpoint interval (500 ms), our own 200 ms sampling
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
    scenario = replace(Scenario(seed=37), requests_per_second=50.0, start=start)
    # 90 s of event time: the 20 s before now, produced before the monitor starts, then a
    # steady trickle of the events whose time has come.
    events = sorted(generate(scenario, 50 * 90), key=lambda e: str(e["time"]))

    stop = threading.Event()
    producer = threading.Thread(
        target=_trickle, args=(broker.bootstrap_servers, topic, events, stop), daemon=True
    )
    producer.start()
    mon = Monitor(
        broker,
        topic,
        f"idle-{uuid.uuid4().hex[:6]}",
        tmp_path,
        env={
            "SHIFTWATCH_STATE__PATH": str(tmp_path / "state.sqlite3"),
            "SHIFTWATCH_LIMITS__IDLE_TIMEOUT_SECONDS": str(idle),
        },
    )
    first_consumed: float | None = None
    releases: list[float] = []  # wall times at which the verdict's statistics changed
    try:
        time.sleep(1.0)  # the backlog before now is on partition 0
        mon.start()
        wait_kafka(lambda: _reachable(mon), timeout=30)
        seen: object = None
        until = time.monotonic() + 35.0
        while time.monotonic() < until:
            now = time.monotonic()
            consumed = metric_sum(_metrics(mon), "shiftwatch_events_consumed_total")
            if first_consumed is None and consumed > 0:
                first_consumed = now
            signature = [
                (c["check"], c["segment"], c["statistic"], c["observed"], c["reference"])
                for c in mon.verdict()["checks"]
            ]
            if signature != seen:
                if signature:
                    releases.append(now)
                seen = signature
            time.sleep(0.2)
        observed_until = time.monotonic()
        late = metric_sum(_metrics(mon), LATE)
        consumed = metric_sum(_metrics(mon), "shiftwatch_events_consumed_total")
    finally:
        stop.set()
        producer.join(timeout=10)
        if mon.proc is not None and mon.proc.poll() is None:
            mon.kill(signal.SIGTERM)

    assert first_consumed is not None and consumed > 0
    assert releases, "no bucket released: partitions 1 and 2 stall the checks"
    # Partitions 1 and 2, assigned with partition 0 but silent, hold the checks back at most
    # until they are idle.
    held = releases[0] - first_consumed
    assert held <= idle + margin, f"first release {held:.1f} s after the first events"
    # Then the checks follow partition 0: a bucket of its event time a second, about.
    gaps = [b - a for a, b in zip(releases, [*releases[1:], observed_until], strict=True)]
    assert max(gaps) <= idle + margin, f"the releases stalled: gaps {gaps}"
    assert late == 0


def _reachable(mon: Monitor) -> bool:
    """The monitor answers /metrics, and /verdict (503 until it has connected to Kafka)."""
    try:
        _metrics(mon)
        mon.verdict()
    except OSError:  # refused, or an HTTP error such as the 503 of a monitor still starting
        return False
    return True
