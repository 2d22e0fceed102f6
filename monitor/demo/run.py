"""``shiftwatch demo``: embedded broker, simulated canary traffic and the monitor, no set-up.

The demo starts Tansu on a free loopback port, creates the topics, produces
traffic of a baseline and an optimised candidate in real time (the candidate
escalates to humans half as often and denies three times as often in a rare
language segment), a few malformed messages among them, and runs the same
service as ``shiftwatch run`` against the broker. It prints what it sees and
the rollback alert when it fires, then stops everything after ``duration``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO

import structlog
from kafka import KafkaProducer

from monitor.alerts import AlertRecord
from monitor.broker import EmbeddedBroker, create_topics
from monitor.config import load_settings
from monitor.http import HttpServer
from monitor.metrics import Metrics
from monitor.pipeline import BatchResult
from monitor.policy import load_policy
from monitor.run import build_service
from monitor.service import Service, install_signal_handlers

from .simulator import Scenario, TrafficSimulator

__all__ = ["run_demo"]

log = structlog.get_logger("shiftwatch.demo")

EVENTS_TOPIC = "shiftwatch.events"
DEAD_LETTER_TOPIC = "shiftwatch.dead-letter"
#: One message in this many is replaced by a malformed one, to show the dead-letter path.
MALFORMED_EVERY = 2000
_MALFORMED = (b'{"kind": "inference", "id": "broken", "score": "high"}', b"not json at all")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


class _ConsoleAlerts:
    """Prints each alert as a block a person can read, followed by the JSON record."""

    def __init__(self, out: IO[str], started: float) -> None:
        self.out = out
        self.started = started
        self.fired: list[AlertRecord] = []

    def emit(self, alert: AlertRecord) -> None:
        seg = ", ".join(f"{k}={v}" for k, v in alert.segment.items()) or "overall"
        if alert.status == "resolved":
            self.out.write(
                f"\n*** RESOLVED after {time.monotonic() - self.started:.0f}s: {alert.model} "
                f"{alert.version} check {alert.check!r} [{seg}] is back inside its tolerance\n"
            )
            self.out.flush()
            return
        self.fired.append(alert)
        verb = "ROLLBACK" if alert.action == "rollback" else alert.action.upper()
        self.out.write(
            f"\n*** {verb} ALERT after {time.monotonic() - self.started:.0f}s: "
            f"{alert.model} {alert.version} (baseline {alert.baseline}) check {alert.check!r} "
            f"[{seg}]\n"
            f"    {alert.metric}: candidate {_fmt(alert.observed)} vs baseline "
            f"{_fmt(alert.reference)},"
            f" tolerance {alert.tolerance}; owner {alert.owner}\n"
            f"    {alert.model_dump_json()}\n\n"
        )
        self.out.flush()

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        return None


class _Traffic(threading.Thread):
    """Produces the simulator's events at ``rate`` requests per second until stopped."""

    def __init__(self, bootstrap: str, scenario: Scenario, stop: threading.Event) -> None:
        super().__init__(name="shiftwatch-demo-traffic", daemon=True)
        self.sim = TrafficSimulator(scenario)
        self.rate = scenario.requests_per_second
        self.key = scenario.model.encode()
        self.stop_event = stop
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=20,
            acks="all",
            client_id="shiftwatch-demo-traffic",
        )
        self.sent = 0
        self.malformed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        tick = 0.1
        started = time.monotonic()
        try:
            while not self.stop_event.is_set():
                due = int((time.monotonic() - started) * self.rate) - self.sim.requests
                if due > 0:
                    for event in self.sim.next_batch(due):
                        self.sent += 1
                        value = json.dumps(event, separators=(",", ":")).encode()
                        if self.sent % MALFORMED_EVERY == 0:
                            value = _MALFORMED[self.malformed % len(_MALFORMED)]
                            self.malformed += 1
                        # Keyed by model, outcomes too: one model's events share a partition.
                        self.producer.send(EVENTS_TOPIC, value=value, key=self.key)
                self.stop_event.wait(tick)
            self.producer.flush()
        except BaseException as exc:  # reported by the main thread, never silently lost
            self.error = exc
        finally:
            self.producer.close()


def _states_line(service: Service) -> str:
    """Each check's state on the overall stream, from the published verdicts."""
    board = service.pipeline.verdicts
    parts = []
    for model, version in board.known():
        verdict = board.get(model, version) or {"checks": []}
        for view in verdict["checks"]:
            if view["segment"] == "":
                parts.append(f"{view['check']}={view['state']}")
    return " ".join(parts)


def _in_flight(unread: int) -> str:
    """Why fewer messages were consumed than produced: the last ones were still unread."""
    if unread <= 0:
        return ""
    return f" (the last {unread:,} were still unread when the demo stopped)"


def run_demo(
    duration: float = 60.0,
    metrics_port: int = 0,
    rate: float = 1500.0,
    seed: int = 7,
    out: IO[str] = sys.stdout,
    alertmanager_urls: list[str] | None = None,
    outbox: str | None = None,
) -> int:
    """Run the demo for ``duration`` seconds; returns the process exit code.

    With ``alertmanager_urls`` the alerts also go, through the durable outbox
    (``outbox``, or a temporary file), to those Alertmanagers.
    """
    policy_ref = resources.files("monitor.demo").joinpath("policy.yaml")
    with resources.as_file(policy_ref) as policy_path:
        policy = load_policy(policy_path)
    started = time.monotonic()
    stop = threading.Event()
    install_signal_handlers(stop)
    out.write(f"shiftwatch demo: starting the embedded Kafka broker (Tansu) for {duration:.0f}s\n")
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        create_topics(broker.bootstrap_servers, {EVENTS_TOPIC: 3, DEAD_LETTER_TOPIC: 1})
        settings = load_settings(
            None,
            policy=str(policy_path),
            kafka={
                "bootstrap_servers": broker.bootstrap_servers,
                "topics": [EVENTS_TOPIC],
                "dead_letter_topic": DEAD_LETTER_TOPIC,
                "group_id": "shiftwatch-demo",
                # Tansu holds a group join until the rebalance timeout: keep it short.
                "max_poll_interval_ms": 10_000,
                "session_timeout_ms": 6_000,
                "heartbeat_interval_ms": 1_000,
                "poll_timeout_ms": 200,
            },
            http_host="127.0.0.1",
            http_port=metrics_port,
            alerting={
                "alertmanager_urls": alertmanager_urls or [],
                "outbox_path": outbox or str(Path(tmp) / "outbox.sqlite3"),
                "max_backoff_seconds": 5.0,
            },
            # Checkpoints, as a production run keeps them (to a temporary file here).
            state={"path": str(Path(tmp) / "state.sqlite3"), "checkpoint_seconds": 5.0},
        )
        metrics = Metrics()
        console = _ConsoleAlerts(out, started)
        last = [time.monotonic()]

        def on_batch(result: BatchResult) -> None:
            now = time.monotonic()
            if now - last[0] >= 5.0:
                last[0] = now
                ledger = service.pipeline.ledger
                out.write(
                    f"[{now - started:4.0f}s] produced {traffic.sent:,} "
                    f"consumed {ledger.consumed:,} "
                    f"dead-lettered {ledger.dead_lettered} | {_states_line(service)}\n"
                )
                out.flush()

        service = build_service(
            settings, policy, metrics, extra_sinks=[console], on_batch=on_batch, log_alerts=False
        )
        http = HttpServer(
            metrics.registry,
            service.readiness,
            "127.0.0.1",
            metrics_port,
            verdicts=service.pipeline.verdicts,
        ).start()
        scenario = replace(
            Scenario(seed=seed),
            requests_per_second=rate,
            start=datetime.now(UTC).replace(microsecond=0),
        )
        traffic = _Traffic(broker.bootstrap_servers, scenario, stop)
        out.write(
            f"broker {broker.bootstrap_servers}; metrics http://127.0.0.1:{http.port}/metrics; "
            f"verdict http://127.0.0.1:{http.port}/verdict?model={policy.models[0].name}"
            f"&version={scenario.candidate}\n"
            f"traffic: {rate:.0f} requests/s, {scenario.canary_share:.0%} to candidate "
            f"{scenario.candidate}, baseline {scenario.baseline}; policy checks: "
            f"{', '.join(c.name for c in policy.models[0].checks)}\n"
        )
        out.flush()
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        traffic.start()
        timer.start()
        try:
            service.run(stop)
        finally:
            stop.set()
            timer.cancel()
            traffic.join(timeout=15)
            http.stop()
    ledger = service.pipeline.ledger
    out.write(
        f"\ndemo finished after {time.monotonic() - started:.0f}s: "
        f"produced {traffic.sent:,} messages "
        f"({traffic.malformed} malformed), consumed {ledger.consumed:,}"
        f"{_in_flight(traffic.sent - ledger.consumed)}, processed "
        f"{ledger.processed:,}, dead-lettered {ledger.dead_lettered}, duplicates "
        f"{ledger.duplicates}; {len(console.fired)} alert(s)\n"
    )
    verdict = service.pipeline.verdicts.get(policy.models[0].name, scenario.candidate)
    if verdict is not None:
        reasons = "; ".join(
            f"{r['check']}{' [' + r['segment'] + ']' if r['segment'] else ''}: {r['reason']}"
            for r in verdict["reasons"]
        )
        out.write(
            f"verdict for {verdict['model']} {verdict['version']}: {verdict['verdict']}"
            f" (roll back to {verdict['rollback_to']}){': ' + reasons if reasons else ''}\n"
        )
    if traffic.error is not None:
        out.write(f"traffic generator failed: {traffic.error!r}\n")
        return 1
    if not any(a.action == "rollback" for a in console.fired):
        out.write("no rollback alert fired: run longer (--duration) or at a higher --rate\n")
    out.write("broker stopped; nothing left running\n")
    out.flush()
    return 0
