"""A live run on the broker and a replay of the same events raise the same alerts."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from monitor.broker import EmbeddedBroker, create_topics
from monitor.policy import load_policy
from monitor.replay import replay
from tests.conftest import (
    DEMO_POLICY,
    Monitor,
    committed_total,
    demo_traffic,
    produce,
    read_jsonl,
    wait_kafka,
)

pytestmark = pytest.mark.kafka


def _comparable(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without what says where and when they were made: the wall-clock
    ``fired_at`` and the source position (a topic offset live, a file line in a replay)."""
    out = []
    for alert in alerts:
        record = {k: v for k, v in alert.items() if k != "fired_at"}
        record["evidence"] = {k: v for k, v in alert["evidence"].items() if k != "source"}
        out.append(record)
    return out


def test_a_replay_of_the_events_a_live_run_read_raises_its_alerts(
    broker: EmbeddedBroker, tmp_path: Path, kafka_client: str
) -> None:
    """One partition, so both read the events in the same order: the same alert records
    (ids, checks, event times, evidence) from `shiftwatch run` and `shiftwatch replay`."""
    topic = f"same-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap_servers, {topic: 1, f"{topic}.dlq": 1})
    (events,) = demo_traffic(31, 40_000)
    total = produce(broker.bootstrap_servers, topic, events)
    group = f"live-{uuid.uuid4().hex[:6]}"
    live = Monitor(broker, topic, group, tmp_path / "live", client=kafka_client)
    live.start()
    try:
        wait_kafka(lambda: committed_total(broker.bootstrap_servers, topic, group) == total)
        wait_kafka(lambda: live.verdict()["verdict"] == "fail", timeout=30)
        live_alerts = live.alerts()
    finally:
        live.kill(signal.SIGTERM)

    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
    replayed = tmp_path / "replayed.jsonl"
    replay(lines, load_policy(DEMO_POLICY), alerts_out=replayed, show_progress=False)
    replay_alerts = read_jsonl(replayed)

    # The premise: the demo's degradation fires overall and in a segment.
    assert {(a["check"], json.dumps(a["segment"])) for a in live_alerts} >= {
        ("escalations", "{}"),
        ("escalations", '{"lang": "en"}'),
    }
    # The replay judges the tail at the end of its input; the live run only once its
    # watermark passes it. Every alert the live run raised, the replay raised alike.
    assert _comparable(live_alerts) == _comparable(replay_alerts[: len(live_alerts)])
    assert len({a["alert_id"] for a in live_alerts}) == len(live_alerts)
