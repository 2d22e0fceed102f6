"""`shiftwatch run --state`: SIGKILLed mid-stream and restarted, it ends as an unbroken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monitor.broker import EmbeddedBroker, create_topics, free_port
from monitor.demo.simulator import Scenario, TrafficSimulator
from tests.conftest import DEMO_POLICY, FAST_GROUP, committed_total, produce
from tests.servers import wait_until

pytestmark = pytest.mark.kafka


class Monitor:
    """One `shiftwatch run` process with a state file, an alerts file and an HTTP port."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        topic: str,
        group: str,
        workdir: Path,
        *,
        policy: Path = DEMO_POLICY,
        env: dict[str, str] | None = None,
    ) -> None:
        """With no ``env`` the state is a SQLite file; ``env`` may name a changelog instead."""
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        fast = {f"SHIFTWATCH_KAFKA__{k.upper()}": str(v) for k, v in FAST_GROUP.items()}
        self.env = {**os.environ, **fast, "SHIFTWATCH_STATE__CHECKPOINT_SECONDS": "0.5"}
        if env is None:
            self.env["SHIFTWATCH_STATE__PATH"] = str(workdir / "state.sqlite3")
        else:
            self.env.update(env)
        self.cmd = [
            sys.executable, "-m", "monitor.cli", "run",
            "--policy", str(policy),
            "--bootstrap-servers", broker.bootstrap_servers,
            "--topics", topic,
            "--group-id", group,
            "--dead-letter-topic", f"{topic}.dlq",
            "--http-host", "127.0.0.1",
            "--http-port", str(self.port),
            "--alerts-out", str(workdir / "alerts.jsonl"),
            "--log-format", "json",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.workdir / "log.txt").open("ab")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=log)

    def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)

    def verdict(self, model: str = "fraud-scorer") -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/verdict?model={model}&version=v7-int8"
        with urllib.request.urlopen(url, timeout=5) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    def alerts(self) -> list[dict[str, Any]]:
        path = self.workdir / "alerts.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]


def _wait(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """:func:`tests.servers.wait_until` with the patience a Kafka group needs."""
    wait_until(predicate, timeout, interval=0.2)


def _comparable(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alert records (or check views) without the wall-clock ``fired_at``."""
    return [{k: v for k, v in a.items() if k != "fired_at"} for a in alerts]


def test_sigkill_mid_stream_gives_the_state_and_alerts_of_an_unbroken_run(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Killed twice with SIGKILL and restarted: statistics, states and alerts are identical.

    One partition, so both runs read the events in the same order.
    """
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap_servers, {topic: 1, f"{topic}.dlq": 1})
    sim = TrafficSimulator(replace(Scenario(seed=29), requests_per_second=300.0))
    events: list[dict[str, object]] = []
    while sim.requests < 50_000:
        events.extend(sim.next_batch(1000))
    total = produce(broker.bootstrap_servers, topic, events)

    def committed(group: str) -> int:
        return committed_total(broker.bootstrap_servers, topic, group)

    def reached(group: str, at: float) -> Callable[[], bool]:
        return lambda: committed(group) >= at

    def run(name: str, kills: list[float]) -> Monitor:
        workdir = tmp_path / name
        group = f"{name}-{uuid.uuid4().hex[:6]}"
        mon = Monitor(broker, topic, group, workdir)
        for fraction in kills:
            mon.start()
            _wait(reached(group, fraction * total))
            mon.kill(signal.SIGKILL)
        mon.start()
        _wait(lambda: committed_total(broker.bootstrap_servers, topic, group) == total)
        _wait(lambda: mon.verdict()["verdict"] == "fail", timeout=30)
        return mon

    unbroken = run("unbroken", [])
    expected, expected_alerts = unbroken.verdict(), unbroken.alerts()
    unbroken.kill(signal.SIGTERM)

    broken = run("broken", [0.3, 0.6])
    got, got_alerts = broken.verdict(), broken.alerts()
    broken.kill(signal.SIGTERM)

    assert expected["verdict"] == "fail"
    assert _comparable(got["checks"]) == _comparable(expected["checks"])
    assert _comparable(got_alerts) == _comparable(expected_alerts)
    assert len({a["alert_id"] for a in got_alerts}) == len(got_alerts)  # none twice
    log = (tmp_path / "broken" / "log.txt").read_text()
    assert log.count("restored checkpoint") == 2
