"""One breach pages once: the shipped Alertmanager configuration, a real Alertmanager and a
real Prometheus with the shipped rules, a monitor under the demo's degraded traffic, and a
webhook receiver counting notifications."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alerts import AlertRecord
from monitor.deliveries import AlertmanagerDelivery
from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.http import HttpServer
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from monitor.replay import LogDeadLetterSink
from tests.conftest import DEMO_POLICY, REPO
from tests.servers import Alertmanager, Prometheus, get_json, wait_until

SHIPPED = REPO / "deploy" / "compose" / "alertmanager.yml"
RULES = REPO / "deploy" / "prometheus" / "shiftwatch-rules.yaml"
#: The rule alerts that duplicate a direct push; their `for` is cut to 0s here only.
TWINS = ("ShiftwatchRollbackRequired", "ShiftwatchCheckBreached")


class Hook:
    """A loopback webhook receiver keeping every Alertmanager notification it gets."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.notifications.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def _shipped_config(hook_url: str) -> str:
    """The shipped configuration with the test's webhook as the on-call receiver, and
    short group timers so the test does not wait 10 s per group."""
    config = yaml.safe_load(SHIPPED.read_text())
    (on_call,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    on_call["webhook_configs"] = [{"url": hook_url, "send_resolved": False}]
    config["route"].update(group_wait="2s", group_interval="2s")
    return yaml.safe_dump(config)


def _fast_rules(path: Path) -> Path:
    """The shipped rules with `for` of the twins cut to 0s (nothing else changes)."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in TWINS:
                rule["for"] = "0s"
    path.write_text(yaml.safe_dump(rules))
    return path


def _breach(pipeline: Pipeline) -> list[AlertRecord]:
    """Feed the demo's degraded candidate until a rollback fires; the alerts raised."""
    sim = TrafficSimulator(replace(Scenario(seed=11), requests_per_second=300.0))
    alerts: list[AlertRecord] = []
    offset = 0
    while sim.requests < 80_000:
        events = sim.next_batch(5000)
        batch = [
            Message(json.dumps(e).encode(), "events", 0, offset + i) for i, e in enumerate(events)
        ]
        offset += len(batch)
        alerts.extend(pipeline.process(batch).alerts)
        if any(a.action == "rollback" for a in alerts):
            return alerts
    raise AssertionError("the demo scenario raised no rollback alert")


def _alertnames(am: Alertmanager) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for alert in am.alerts():
        out.setdefault(alert["labels"]["alertname"], []).append(alert)
    return out


def test_one_demo_breach_gives_one_notification(hook: Hook, tmp_path: Path) -> None:
    """Direct push and rule alerts both reach Alertmanager; each breach notifies once,
    with the direct alert (labels owner, model, severity; a generatorURL)."""
    metrics = Metrics()
    pipeline = Pipeline(
        load_policy(DEMO_POLICY), dead_letters=LogDeadLetterSink(), metrics=metrics, quiet=True
    )
    http = HttpServer(metrics.registry, lambda: (True, "ok"), verdicts=pipeline.verdicts).start()
    monitor_url = f"http://127.0.0.1:{http.port}"
    with Alertmanager(tmp_path / "am", _shipped_config(hook.url)) as am:
        assert isinstance(am, Alertmanager)
        try:
            fired = [a for a in _breach(pipeline) if a.status == "firing"]
            push = AlertmanagerDelivery([am.url], generator_base_url=monitor_url)
            for alert in fired:
                push.deliver(alert)
            rules = _fast_rules(tmp_path / "rules.yaml")
            address = am.url.removeprefix("http://")
            with Prometheus(tmp_path / "prom", [address.replace(str(am.port), str(http.port))],
                            [rules], alertmanagers=[address]):  # fmt: skip
                # Every twin of every breach has arrived, and is muted.
                def twins_arrived() -> bool:
                    names = _alertnames(am)
                    breached = {
                        (a["labels"]["check"]) for a in names.get("ShiftwatchCheckBreached", [])
                    }
                    return "ShiftwatchRollbackRequired" in names and breached >= {
                        a.check for a in fired
                    }

                wait_until(twins_arrived, timeout=60)
                time.sleep(6)  # three group intervals: time for any extra notification
                held = _alertnames(am)
            verdict = get_json(f"{monitor_url}/verdict?model=fraud-scorer&version=v7-int8")
        finally:
            http.stop()
    for name in TWINS:
        for alert in held[name]:
            assert alert["status"]["state"] == "suppressed", alert
            assert alert["status"]["inhibitedBy"], alert
    notified = [a for n in hook.notifications for a in n["alerts"]]
    assert len(hook.notifications) == len(fired) == len(notified)
    assert sorted(a["labels"]["alert_id"] for a in notified) == sorted(a.alert_id for a in fired)
    rollback = next(a for a in notified if a["labels"]["alertname"] == "ShiftwatchRollback")
    labels = rollback["labels"]
    assert (labels["owner"], labels["model"], labels["severity"]) == (
        "fraud-ml-oncall",
        "fraud-scorer",
        "critical",
    )
    assert rollback["generatorURL"] == f"{monitor_url}/verdict?model=fraud-scorer&version=v7-int8"
    assert verdict["verdict"] == "fail"
    assert "roll back to v7-fp32" in rollback["annotations"]["summary"]
    for alert in notified:
        text = alert["annotations"]["summary"] + alert["annotations"]["description"]
        assert not re.search(r"\{'", text), text  # no Python dict in the words
        if alert["labels"]["action"] != "rollback":
            assert "roll back" not in alert["annotations"]["summary"]
