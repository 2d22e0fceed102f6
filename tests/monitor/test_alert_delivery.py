"""Alert delivery with real receivers: Alertmanager, Prometheus, a signed webhook, the outbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
import yaml
from kafka import KafkaConsumer

from monitor.alerts import AlertRecord, LogAlertSink
from monitor.broker import EmbeddedBroker, create_topics
from monitor.config import KafkaSettings
from monitor.deliveries import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertmanagerDelivery,
    DeliveryError,
    KafkaDelivery,
    WebhookDelivery,
)
from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.http import HttpServer
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.outbox import Outbox
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from monitor.replay import LogDeadLetterSink
from tests.conftest import DEMO_POLICY, REPO
from tests.servers import Alertmanager, Prometheus, get_json
from tests.servers import wait_until as _wait

SECRET = b"test-secret-0123456789"


def _record(status: str = "firing", **changes: Any) -> AlertRecord:
    base = AlertRecord(
        alert_id="a1b2c3d4e5f6a1b2c3d4e5f6",
        status=status,  # type: ignore[arg-type]
        check="escalations",
        metric="action_rate",
        model="fraud-scorer",
        version="v7-int8",
        baseline="v6",
        segment={},
        action="rollback",
        severity="critical",
        observed=0.02,
        reference=0.04,
        tolerance={"max_relative_change": 0.25},
        event_time="2026-11-27T09:00:00+00:00",
        fired_at="2026-11-27T09:00:01+00:00",
        owner="risk-ml",
        controls=["SOC2-CC7.2"],
        evidence={"statistic": 9.1, "threshold": 8.7},
        rollback_to="v6",
        resolved_at="2026-11-27T10:00:00+00:00" if status == "resolved" else None,
    )
    return base.model_copy(update=changes)


# -- a receiver that records what it is sent ----------------------------------------------


class Receiver:
    """A loopback HTTP endpoint recording each POST; answers ``status`` (changeable)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# -- the signed webhook ---------------------------------------------------------------------


def test_webhook_signature_verifies_with_an_independent_hmac(receiver: Receiver) -> None:
    """A receiver recomputes HMAC-SHA256(secret, timestamp.body); a tampered body fails."""
    WebhookDelivery(receiver.url, SECRET).deliver(_record())
    ((headers, body),) = receiver.requests
    timestamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert abs(int(timestamp) - time.time()) < 60  # fresh: a receiver rejects old ones

    def expected(raw: bytes, ts: str = timestamp) -> str:
        return "v1=" + hmac.new(SECRET, ts.encode() + b"." + raw, hashlib.sha256).hexdigest()

    assert hmac.compare_digest(signature, expected(body))
    assert json.loads(body) == json.loads(_record().model_dump_json())
    assert headers["Idempotency-Key"] == "a1b2c3d4e5f6a1b2c3d4e5f6:firing"
    tampered = body.replace(b'"rollback"', b'"page"')
    assert tampered != body
    assert not hmac.compare_digest(signature, expected(tampered))
    replayed_later = str(int(timestamp) + 3600)
    assert not hmac.compare_digest(signature, expected(body, replayed_later))


def test_webhook_refusal_is_a_delivery_error(receiver: Receiver) -> None:
    receiver.status = 503
    with pytest.raises(DeliveryError, match="HTTP 503"):
        WebhookDelivery(receiver.url, SECRET).deliver(_record())


# -- the outbox ------------------------------------------------------------------------------


class FakeClock:
    """The outbox's clock, moved only by the test."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _pump_until(
    outbox: Outbox, clock: FakeClock, done: Callable[[], bool], passes: int = 30
) -> list[float]:
    """Delivery passes, the clock moved to each next due time, until ``done()``; the waits."""
    waits = [outbox.pump()]
    while not done():
        assert len(waits) < passes and waits[-1] < float("inf"), waits
        clock.advance(waits[-1])
        waits.append(outbox.pump())
    return waits


class Flaky:
    """A delivery that fails its first ``failures`` calls, then records what it gets."""

    name = "flaky"
    resend_seconds: float | None = None

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.got: list[str] = []

    def deliver(self, alert: AlertRecord) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("receiver down")
        self.got.append(alert.key)

    def close(self) -> None:
        return None


def test_outbox_retries_until_acknowledged_and_keeps_order(tmp_path: Path) -> None:
    """A receiver down for three attempts gets firing then resolved, once each."""
    metrics = Metrics()
    flaky = Flaky(failures=3)
    clock = FakeClock()
    outbox = Outbox(tmp_path / "o.db", [flaky], metrics, clock=clock)
    outbox.emit(_record())
    outbox.emit(_record("resolved"))
    outbox.flush()
    waits = _pump_until(outbox, clock, lambda: len(flaky.got) == 2)
    outbox.close()
    assert flaky.got == [_record().key, _record("resolved").key]
    # Retried after 1 s, 2 s, 4 s (each +-10% jitter); then both records in one pass.
    assert len(waits) == 4 and waits[3] == float("inf"), waits
    for wait, backoff in zip(waits, (1.0, 2.0, 4.0), strict=False):
        assert 0.9 * backoff <= wait <= 1.1 * backoff, waits
    errors = metrics.registry.get_sample_value(
        "shiftwatch_alert_deliveries_total", {"sink": "flaky", "result": "error"}
    )
    oks = metrics.registry.get_sample_value(
        "shiftwatch_alert_deliveries_total", {"sink": "flaky", "result": "ok"}
    )
    assert (errors, oks) == (3.0, 2.0)
    pending = metrics.registry.get_sample_value("shiftwatch_outbox_pending", {"sink": "flaky"})
    assert pending == 0.0


def test_outbox_backoff_doubles_up_to_max_backoff_and_waits_for_it(tmp_path: Path) -> None:
    """Retries wait 1 s doubling to max_backoff (60 s); a pass before a retry is due sends
    nothing."""
    flaky = Flaky(failures=9)
    clock = FakeClock()
    outbox = Outbox(tmp_path / "o.db", [flaky], clock=clock)
    outbox.emit(_record())
    outbox.flush()
    waits = _pump_until(outbox, clock, lambda: flaky.failures == 0)
    expected = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert len(waits) == len(expected), waits
    for wait, backoff in zip(waits, expected, strict=True):
        assert 0.9 * backoff <= wait <= 1.1 * backoff, waits
    clock.advance(waits[-1] - 0.5)
    rest = outbox.pump()
    assert rest == pytest.approx(0.5)
    assert flaky.got == [] and outbox.pending("flaky") == 1
    clock.advance(rest)
    assert outbox.pump() == float("inf")
    assert flaky.got == [_record().key] and outbox.pending("flaky") == 0
    outbox.close()


def test_outbox_survives_a_restart_without_duplicates(tmp_path: Path) -> None:
    """Rows left undelivered are sent by the next process; a delivered record is never resent."""
    path = tmp_path / "o.db"
    clock = FakeClock()
    down = Flaky(failures=10**6)
    first = Outbox(path, [down], clock=clock)
    first.emit(_record())
    first.flush()
    first.close()  # never pumped: the row stays pending on disk
    assert Outbox(path, [Flaky(0)]).pending("flaky") == 1

    up = Flaky(failures=0)
    second = Outbox(path, [up], clock=clock)
    second.pump()
    assert up.got == [_record().key]
    second.emit(_record())  # the same breach re-detected after the restart
    second.flush()
    for _ in range(3):  # passes now and after any backoff would have run out
        second.pump()
        clock.advance(120.0)
    second.close()
    assert up.got == [_record().key]


class Resending(Flaky):
    """A receiver that expires alerts unless re-sent every minute (like Alertmanager)."""

    name = "resending"
    resend_seconds: float | None = 60.0

    def __init__(self) -> None:
        super().__init__(failures=0)


@pytest.mark.parametrize("detected_again", [False, True])
def test_alert_left_firing_by_an_earlier_process_expires_unless_detected_again(
    tmp_path: Path, detected_again: bool
) -> None:
    """After a restart, re-sending stops after the grace hour unless the breach is seen again."""
    path = tmp_path / "o.db"
    clock = FakeClock()
    first = Resending()
    outbox = Outbox(path, [first], clock=clock)
    outbox.emit(_record())
    outbox.flush()
    assert outbox.pump() == 60.0
    clock.advance(60.0)
    outbox.pump()
    outbox.close()
    assert len(first.got) >= 2  # delivered, then re-sent

    def run_for(seconds: float) -> None:
        """Pass after pass, a minute apart, as the delivery thread would."""
        end = clock.now + seconds
        while clock.now < end:
            clock.advance(60.0)
            outbox.pump()

    second = Resending()
    outbox = Outbox(path, [second], clock=clock)  # restart_grace: one hour
    if detected_again:
        outbox.emit(_record())  # the same breach, re-detected: a no-op for delivery
        outbox.flush()
    run_for(2 * 3600.0)
    during = len(second.got)
    run_for(3600.0)
    after = len(second.got)
    outbox.close()
    assert during >= 2  # re-sent during the grace period
    if detected_again:
        assert after > during
    else:
        assert after == during


# -- Alertmanager ------------------------------------------------------------------------------


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    am = Alertmanager(tmp_path / "am")
    am.start()
    yield am
    am.stop()


def _ours(am: Alertmanager, alert_id: str) -> list[dict[str, Any]]:
    return [a for a in am.alerts() if a["labels"].get("alert_id") == alert_id]


def test_alertmanager_receives_the_alert_with_its_labels(alertmanager: Alertmanager) -> None:
    AlertmanagerDelivery([alertmanager.url]).deliver(_record())
    (alert,) = _ours(alertmanager, _record().alert_id)
    # The overall stream's segment is "", which Alertmanager, like Prometheus, drops.
    assert alert["labels"] == {
        "alertname": "ShiftwatchRollback",
        "severity": "critical",
        "owner": "risk-ml",
        "model": "fraud-scorer",
        "version": "v7-int8",
        "check": "escalations",
        "metric": "action_rate",
        "action": "rollback",
        "alert_id": _record().alert_id,
    }
    notes = alert["annotations"]
    assert "roll back to v6" in notes["summary"]
    assert "statistic 9.1 crossed the threshold 8.7" in notes["description"]
    assert "within ±25% of the baseline's rate" in notes["description"]
    # No runbook in the policy: no link to a page that may not exist.
    assert "runbook_url" not in notes
    assert notes["owner"] == "risk-ml" and notes["rollback_to"] == "v6"
    assert alert["status"]["state"] == "active"


def test_a_policys_runbook_is_the_alerts_runbook_url(alertmanager: Alertmanager) -> None:
    record = _record(alert_id="b1b2c3d4e5f6a1b2c3d4e5f6", runbook_url="https://wiki.example/rb")
    AlertmanagerDelivery([alertmanager.url]).deliver(record)
    (alert,) = _ours(alertmanager, record.alert_id)
    assert alert["annotations"]["runbook_url"] == "https://wiki.example/rb"


def test_alert_fired_while_alertmanager_is_down_arrives_once(
    alertmanager: Alertmanager, tmp_path: Path
) -> None:
    """Alertmanager stopped when the alert fires, started again: the outbox delivers it once."""
    alertmanager.stop()
    metrics = Metrics()
    clock = FakeClock()
    outbox = Outbox(
        tmp_path / "o.db", [AlertmanagerDelivery([alertmanager.url])], metrics, clock=clock
    )
    outbox.emit(_record())
    outbox.flush()
    errors = {"sink": "alertmanager", "result": "error"}
    _pump_until(
        outbox,
        clock,
        lambda: (
            (metrics.registry.get_sample_value("shiftwatch_alert_deliveries_total", errors) or 0)
            >= 2
        ),
    )
    assert outbox.pending("alertmanager") == 1
    alertmanager.start()
    _pump_until(outbox, clock, lambda: outbox.pending("alertmanager") == 0)
    outbox.close()
    assert len(_ours(alertmanager, _record().alert_id)) == 1


def test_resolved_record_ends_the_alert_in_alertmanager(alertmanager: Alertmanager) -> None:
    """Firing an hour ago, resolved a minute ago: Alertmanager no longer lists it as active."""
    now = datetime.now(UTC)
    fired = (now - timedelta(hours=1)).isoformat()
    delivery = AlertmanagerDelivery([alertmanager.url])
    delivery.deliver(_record(fired_at=fired))
    assert len(_ours(alertmanager, _record().alert_id)) == 1
    resolved_at = (now - timedelta(minutes=1)).isoformat()
    delivery.deliver(_record("resolved", fired_at=fired, resolved_at=resolved_at))
    _wait(lambda: not _ours(alertmanager, _record().alert_id))


# -- a breach, end to end: pipeline -> outbox -> receivers; Prometheus and the verdict ---------


@pytest.fixture(scope="module")
def breach_batches() -> list[list[Message]]:
    """The demo's degraded candidate, 60k requests in batches of 5000 messages."""
    sim = TrafficSimulator(replace(Scenario(seed=11), requests_per_second=300.0))
    events: list[bytes] = []
    while sim.requests < 60_000:
        events.extend(json.dumps(e).encode() for e in sim.next_batch(1000))
    messages = [Message(v, "events", 0, i) for i, v in enumerate(events)]
    return [messages[i : i + 5000] for i in range(0, len(messages), 5000)]


def _pipeline(outbox: Outbox | None, metrics: Metrics) -> Pipeline:
    return Pipeline(
        load_policy(DEMO_POLICY),
        dead_letters=LogDeadLetterSink(),
        alert_sinks=[outbox] if outbox is not None else [],
        metrics=metrics,
    )


def _run_until_rollback(pipeline: Pipeline, batches: list[list[Message]]) -> None:
    for batch in batches:
        result = pipeline.process(batch)
        if any(a.action == "rollback" for a in result.alerts):
            return
    raise AssertionError("the demo scenario raised no rollback alert")


def test_restart_during_a_breach_does_not_send_the_alert_again(
    breach_batches: list[list[Message]],
    receiver: Receiver,
    alertmanager: Alertmanager,
    tmp_path: Path,
) -> None:
    """The same stream processed again by a new process (same outbox) sends nothing new."""
    path = tmp_path / "outbox.db"

    def run_once() -> None:
        deliveries = [
            AlertmanagerDelivery([alertmanager.url]),
            WebhookDelivery(receiver.url, SECRET),
        ]
        outbox = Outbox(path, deliveries, max_backoff=0.5).start()
        pipeline = _pipeline(outbox, Metrics())
        _run_until_rollback(pipeline, breach_batches)
        _wait(lambda: outbox.pending() == 0)
        pipeline.close()

    run_once()
    first = [json.loads(body)["alert_id"] for _, body in receiver.requests]
    assert first, "the webhook got no alert"
    run_once()  # a restart that re-learns the baseline and re-detects the same breach
    again = [json.loads(body)["alert_id"] for _, body in receiver.requests]
    assert again == first
    assert len(set(first)) == len(first)
    rollbacks = [
        a for a in alertmanager.alerts() if a["labels"]["alertname"] == "ShiftwatchRollback"
    ]
    assert len(rollbacks) == 1


def _argo_query(template: Path, **args: str) -> tuple[str, dict[str, Any]]:
    """The PromQL of the AnalysisTemplate's prometheus metric, with ``{{args.x}}`` filled in."""
    doc = yaml.safe_load(template.read_text())
    (metric,) = [m for m in doc["spec"]["metrics"] if "prometheus" in m["provider"]]
    return _fill(metric["provider"]["prometheus"]["query"], **args), metric


def _fill(text: str, **args: str) -> str:
    """Argo's ``{{args.name}}`` substitution."""
    for name, value in args.items():
        text = re.sub(r"\{\{\s*args\." + re.escape(name) + r"\s*\}\}", value, text)
    assert "{{" not in text, text
    return text


def _json_path(path: str, doc: Any) -> Any:
    """Argo's ``{$.a.b}`` JSONPath (the dotted subset the template uses)."""
    match = re.fullmatch(r"\{\$((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}", path)
    assert match is not None, f"unsupported jsonPath {path!r}"
    for part in match.group(1).split(".")[1:]:
        doc = doc[part]
    return doc


def test_prometheus_and_the_verdict_show_the_breach(
    breach_batches: list[list[Message]], tmp_path: Path
) -> None:
    """During a breach: the Argo prometheus query returns 1, and the web verdict is ``fail``."""
    metrics = Metrics()
    pipeline = _pipeline(None, metrics)
    http = HttpServer(metrics.registry, lambda: (True, "ok"), verdicts=pipeline.verdicts).start()
    try:
        # From the first scrape, before any data: every child exists, the verdict waits.
        early = get_json(f"http://127.0.0.1:{http.port}/verdict?model=fraud-scorer&version=v7-int8")
        assert early["verdict"] == "inconclusive"
        assert (
            metrics.registry.get_sample_value(
                "shiftwatch_rollback_required", {"model": "fraud-scorer", "version": "v7-int8"}
            )
            == 0.0
        )
        _run_until_rollback(pipeline, breach_batches)

        workdir = tmp_path / "prom"
        rules = REPO / "deploy" / "prometheus" / "shiftwatch-rules.yaml"
        with Prometheus(workdir, [f"127.0.0.1:{http.port}"], [rules]) as prom:
            query, metric = _argo_query(
                REPO / "deploy" / "argo-rollouts" / "analysis-template-prometheus.yaml",
                model="fraud-scorer",
                version="v7-int8",
            )
            _wait(lambda: bool(prom.query(query)))
            (sample,) = prom.query(query)
            assert float(sample["value"][1]) == 1.0
            assert "failureCondition" in metric
            _wait(
                lambda: any(
                    a["labels"]["alertname"] == "ShiftwatchRollbackRequired"
                    for a in get_json(f"{prom.url}/api/v1/alerts")["data"]["alerts"]
                )
            )

        web = yaml.safe_load(
            (REPO / "deploy" / "argo-rollouts" / "analysis-template-web.yaml").read_text()
        )
        (wmetric,) = [m for m in web["spec"]["metrics"] if "web" in m["provider"]]
        url = _fill(
            wmetric["provider"]["web"]["url"],
            model="fraud-scorer",
            version="v7-int8",
            **{"shiftwatch-address": f"http://127.0.0.1:{http.port}"},
        )
        body = get_json(url)
        result = _json_path(wmetric["provider"]["web"]["jsonPath"], body)
        assert result == "fail"
        assert wmetric["failureCondition"].replace(" ", "") in ('result=="fail"', "result=='fail'")
        assert body["rollback_to"] == "v7-fp32"
        (reason,) = [r for r in body["reasons"] if r["check"] == "escalations"]
        assert reason["state"] == "breach" and reason["observed"] < reason["reference"]
    finally:
        http.stop()


# -- the Kafka alert topic ----------------------------------------------------------------------


@pytest.mark.kafka
def test_kafka_alert_topic_is_keyed_by_model(broker: EmbeddedBroker) -> None:
    """Records arrive on the alert topic keyed by model, with the id and status as headers."""
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap_servers, {topic: 1})
    delivery = KafkaDelivery(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), topic)
    try:
        delivery.deliver(_record())
        delivery.deliver(_record("resolved"))
    finally:
        delivery.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    try:
        got = [m for _, m in zip(range(2), consumer, strict=False)]
    finally:
        consumer.close()
    assert [m.key for m in got] == [b"fraud-scorer", b"fraud-scorer"]
    assert [json.loads(m.value)["status"] for m in got] == ["firing", "resolved"]
    assert json.loads(got[0].value) == json.loads(_record().model_dump_json())
    assert dict(got[0].headers) == {"alert_id": _record().alert_id.encode(), "status": b"firing"}


@pytest.mark.parametrize(
    ("status", "action", "level"),
    [
        ("firing", "rollback", "error"),
        ("firing", "page", "warning"),
        ("firing", "log", "warning"),
        ("resolved", "rollback", "info"),
    ],
)
def test_the_log_sink_logs_a_rollback_breach_as_an_error(
    status: str, action: str, level: str
) -> None:
    """A rollback breach is logged at ``error``, so log-based alerting sees it; others lower."""
    with structlog.testing.capture_logs() as logs:
        LogAlertSink().emit(_record(status, action=action))
    assert [(e["event"], e["log_level"], e["action"]) for e in logs] == [("alert", level, action)]
