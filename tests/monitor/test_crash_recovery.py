"""`shiftwatch run --state`: SIGKILLed mid-stream and restarted, it ends as an unbroken run."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker, create_topics
from tests.conftest import (
    Monitor,
    committed_total,
    demo_traffic,
    produce,
    wait_kafka,
    without_fired_at,
)

pytestmark = pytest.mark.kafka


def test_sigkill_mid_stream_gives_the_state_and_alerts_of_an_unbroken_run(
    broker: EmbeddedBroker, tmp_path: Path, kafka_client: str
) -> None:
    """Killed twice with SIGKILL and restarted: statistics, states and alerts are identical.

    One partition, so both runs read the events in the same order.
    """
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap_servers, {topic: 1, f"{topic}.dlq": 1})
    (events,) = demo_traffic(29, 50_000)
    total = produce(broker.bootstrap_servers, topic, events)

    def committed(group: str) -> int:
        return committed_total(broker.bootstrap_servers, topic, group)

    def reached(group: str, at: float) -> Callable[[], bool]:
        return lambda: committed(group) >= at

    def run(name: str, kills: list[float]) -> Monitor:
        workdir = tmp_path / name
        group = f"{name}-{uuid.uuid4().hex[:6]}"
        mon = Monitor(broker, topic, group, workdir, client=kafka_client)
        try:
            for fraction in kills:
                mon.start()
                wait_kafka(reached(group, fraction * total))
                mon.kill(signal.SIGKILL)
            mon.start()
            mon.serving()
            wait_kafka(lambda: committed_total(broker.bootstrap_servers, topic, group) == total)
            wait_kafka(lambda: mon.verdict()["verdict"] == "fail", timeout=30)
        except BaseException:
            if mon.proc is not None and mon.proc.poll() is None:
                mon.kill(signal.SIGKILL)  # a failed wait leaves no process behind
            raise
        return mon

    unbroken = run("unbroken", [])
    expected, expected_alerts = unbroken.verdict(), unbroken.alerts()
    unbroken.kill(signal.SIGTERM)

    broken = run("broken", [0.3, 0.6])
    got, got_alerts = broken.verdict(), broken.alerts()
    broken.kill(signal.SIGTERM)

    assert expected["verdict"] == "fail"
    assert without_fired_at(got["checks"]) == without_fired_at(expected["checks"])
    assert without_fired_at(got_alerts) == without_fired_at(expected_alerts)
    assert len({a["alert_id"] for a in got_alerts}) == len(got_alerts)  # none twice
    log = (tmp_path / "broken" / "log.txt").read_text()
    assert log.count("restored checkpoint") == 2
    assert log.count(f'"client": "{kafka_client}"') == 3  # each start, on the client under test
