"""Where alerts are delivered: Alertmanager, a signed webhook, a Kafka topic, a JSONL file.

Each delivery sends one :class:`~monitor.alerts.AlertRecord` and returns only
once the receiver acknowledged it; any failure raises :class:`DeliveryError`,
and the :mod:`monitor.outbox` retries with backoff. Deliveries are called from
the outbox's thread only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor import alert_text
from monitor.alerts import AlertRecord, JsonlAlertSink
from monitor.config import KafkaSettings

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertmanagerDelivery",
    "Delivery",
    "DeliveryError",
    "JsonlDelivery",
    "KafkaDelivery",
    "WebhookDelivery",
    "sign",
]

#: Headers of a signed webhook: seconds since the epoch, and ``v1=<hex HMAC-SHA256>``.
TIMESTAMP_HEADER = "X-Shiftwatch-Timestamp"
SIGNATURE_HEADER = "X-Shiftwatch-Signature"


class DeliveryError(RuntimeError):
    """The receiver did not acknowledge the alert; the outbox will retry."""


class Delivery(Protocol):
    """One receiver of alerts. ``name`` is its metric label."""

    name: str
    #: Re-send a firing alert this often while it fires (None: send once).
    resend_seconds: float | None

    def deliver(self, alert: AlertRecord) -> None: ...

    def close(self) -> None: ...


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace")
        raise DeliveryError(f"{url} answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"{url} unreachable: {exc}") from exc


class AlertmanagerDelivery:
    """Posts to Alertmanager's v2 API (``POST /api/v2/alerts``), to every URL given.

    Labels identify the breach (``alertname``, ``severity``, ``owner``, ``model``,
    ``version``, ``check``, ``segment``, ``metric``, ``action``,
    ``alert_id``); annotations explain it (``summary``, ``description``,
    ``runbook_url``, controls, rollback target), in sentences
    (:mod:`monitor.alert_text`). ``owner`` is a label too, for routing to the
    owning team. ``generatorURL`` is the candidate's ``/verdict`` under
    ``generator_base_url`` (the monitor's address as Alertmanager's users reach
    it), when one is given. A firing alert is
    sent again every ``resend_seconds`` with ``endsAt`` a few intervals ahead,
    as Prometheus does, so Alertmanager keeps it active while it fires and
    lets it expire if shiftwatch disappears; the resolved record sets
    ``endsAt`` to the resolution time.
    """

    name = "alertmanager"

    def __init__(
        self,
        urls: list[str],
        *,
        resend_seconds: float = 60.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        generator_base_url: str | None = None,
    ) -> None:
        if not urls:
            raise ValueError("AlertmanagerDelivery needs at least one Alertmanager URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.generator_base_url = generator_base_url.rstrip("/") if generator_base_url else None
        self.resend_seconds: float | None = resend_seconds
        self.timeout = timeout
        self._clock = clock

    def payload(self, alert: AlertRecord) -> list[dict[str, Any]]:
        """The JSON body: a list with one alert in Alertmanager's v2 format."""
        segment = ",".join(f"{k}={v}" for k, v in sorted(alert.segment.items()))
        labels = {
            "alertname": "ShiftwatchRollback" if alert.action == "rollback" else "ShiftwatchBreach",
            "severity": alert.severity,
            "owner": alert.owner,
            "model": alert.model,
            "version": alert.version,
            "check": alert.check,
            "segment": segment,
            "metric": alert.metric,
            "action": alert.action,
            "alert_id": alert.alert_id,
        }
        annotations = {
            "summary": alert_text.summary(alert),
            "description": alert_text.description(alert),
            "owner": alert.owner,  # kept from before it was a label, for existing templates
            "controls": ", ".join(alert.controls),
            "rollback_to": alert.rollback_to,
        }
        if alert.runbook_url:
            annotations["runbook_url"] = alert.runbook_url
        item: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": alert.fired_at,
        }
        if self.generator_base_url:
            query = urllib.parse.urlencode({"model": alert.model, "version": alert.version})
            item["generatorURL"] = f"{self.generator_base_url}/verdict?{query}"
        # Alertmanager refuses endsAt before startsAt: event-time stamps (a replay) may be
        # in the past or, on a skewed clock, in the future.
        starts = datetime.fromisoformat(alert.fired_at).timestamp()
        if alert.status == "resolved":
            ends = datetime.fromisoformat(alert.resolved_at or alert.fired_at).timestamp()
            item["endsAt"] = _iso(max(ends, starts))
        else:
            ahead = 4 * (self.resend_seconds or 60.0)
            item["endsAt"] = _iso(max(self._clock(), starts) + ahead)
        return [item]

    def deliver(self, alert: AlertRecord) -> None:
        body = json.dumps(self.payload(alert)).encode()
        headers = {"Content-Type": "application/json"}
        for url in self.urls:  # every replica of an HA pair gets it; they gossip and dedupe
            _post(f"{url}/api/v2/alerts", body, headers, self.timeout)

    def close(self) -> None:
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``.

    >>> sign(b"k", "1700000000", b"{}")[:11]
    'v1=c6ef4734'
    """
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class WebhookDelivery:
    """POSTs the alert record as JSON, signed with HMAC-SHA256 over timestamp and body.

    Headers: ``X-Shiftwatch-Timestamp`` (seconds since the epoch, at sending)
    and ``X-Shiftwatch-Signature: v1=<hex>``, the HMAC-SHA256 under the shared
    secret of ``<timestamp>.<body>``. A receiver recomputes it over the raw
    body, compares in constant time, and rejects a timestamp older than a few
    minutes: a captured request cannot be replayed later. ``Idempotency-Key``
    carries the record's key (``alert_id:status``): a retried delivery can be
    recognised and dropped.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the webhook secret is empty")
        self.url = url
        self.resend_seconds: float | None = None
        self._secret = secret
        self.timeout = timeout
        self._clock = clock

    def deliver(self, alert: AlertRecord) -> None:
        body = alert.model_dump_json().encode()
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            "Idempotency-Key": alert.key,
        }
        _post(self.url, body, headers, self.timeout)

    def close(self) -> None:
        return None


class KafkaDelivery:
    """Produces the alert record to a Kafka topic, keyed by model, and waits for the ack."""

    name = "kafka"

    def __init__(self, settings: KafkaSettings, topic: str, *, timeout: float = 30.0) -> None:
        self.topic = topic
        self.resend_seconds: float | None = None
        self.timeout = timeout
        self._producer = KafkaProducer(**settings.client_config(), acks="all", linger_ms=0)

    def deliver(self, alert: AlertRecord) -> None:
        headers = [("alert_id", alert.alert_id.encode()), ("status", alert.status.encode())]
        try:
            future = self._producer.send(
                self.topic,
                key=alert.model.encode(),
                value=alert.model_dump_json().encode(),
                headers=headers,
            )
            future.get(timeout=self.timeout)
        except KafkaError as exc:
            raise DeliveryError(f"kafka topic {self.topic}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._producer.close(timeout=5)


class JsonlDelivery:
    """Appends the record to a JSONL file (the weekly review's alert log)."""

    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.resend_seconds: float | None = None
        self._sink = JsonlAlertSink(path)

    def deliver(self, alert: AlertRecord) -> None:
        try:
            self._sink.emit(alert)
            self._sink.flush()
        except OSError as exc:
            raise DeliveryError(f"alert log: {exc}") from exc

    def close(self) -> None:
        self._sink.close()
