"""The alert record of DESIGN.md and the sinks it is delivered to."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict

from monitor.jsonl import JsonlWriter

__all__ = ["AlertRecord", "AlertSink", "JsonlAlertSink", "LogAlertSink", "alert_id"]


class AlertRecord(BaseModel):
    """One breach of one check, in one segment of one candidate version."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    status: Literal["firing", "resolved"]
    check: str
    metric: str
    model: str
    version: str
    baseline: str
    segment: dict[str, str]
    action: str
    severity: str
    observed: float | None
    reference: float | None
    tolerance: dict[str, float]
    event_time: str
    fired_at: str
    owner: str
    controls: list[str]
    evidence: dict[str, Any]


def alert_id(model: str, version: str, check: str, segment: dict[str, str]) -> str:
    """Stable id of a breach: the same (model, version, check, segment) gives the same id.

    >>> alert_id("m", "v2", "escalations", {}) == alert_id("m", "v2", "escalations", {})
    True
    """
    key = json.dumps([model, version, check, sorted(segment.items())], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


class AlertSink(Protocol):
    """Where alerts go. ``emit`` must not lose an alert it returned from."""

    def emit(self, alert: AlertRecord) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class JsonlAlertSink(JsonlWriter):
    """Appends one alert record per line to a file (or a stream such as stdout)."""

    def __init__(self, target: str | Path | IO[str], *, append: bool = True) -> None:
        super().__init__(target, append=append)

    def emit(self, alert: AlertRecord) -> None:
        self.write_line(alert.model_dump_json())


class LogAlertSink:
    """Logs each alert (no payloads: the record holds aggregates only)."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("shiftwatch.alerts")

    def emit(self, alert: AlertRecord) -> None:
        self._log.warning(
            "alert",
            alert_id=alert.alert_id,
            status=alert.status,
            model=alert.model,
            version=alert.version,
            check=alert.check,
            segment=alert.segment,
            action=alert.action,
            observed=alert.observed,
            reference=alert.reference,
            owner=alert.owner,
        )

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
