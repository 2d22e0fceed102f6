"""The alert record (docs/alerts.md), how it is built, and the sinks it is delivered to."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict

from detectors import Detector, Evidence
from monitor.jsonl import JsonlWriter
from monitor.messages import SourcePosition
from monitor.policy import Check, ModelPolicy
from monitor.streams import Stream

__all__ = [
    "AlertRecord",
    "AlertSink",
    "JsonlAlertSink",
    "LogAlertSink",
    "alert_id",
    "firing_record",
    "resolved_record",
]


class AlertRecord(BaseModel):
    """One breach of one check, in one segment of one candidate version.

    A breach is first sent ``firing``, then once more ``resolved`` (same
    ``alert_id``, ``resolved_at`` set) when the candidate's data show the check
    back inside its tolerance. ``rollback_to`` is the baseline version to go
    back to.
    """

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
    rollback_to: str = ""
    runbook_url: str = ""
    resolved_at: str | None = None

    @property
    def key(self) -> str:
        """Unique per delivery: the breach and its status (a firing and a resolved record)."""
        return f"{self.alert_id}:{self.status}"


def alert_id(
    model: str, version: str, check: str, segment: dict[str, str], episode: int = 0
) -> str:
    """Stable id of a breach: the same (model, version, check, segment, episode), the same id.

    ``episode`` counts the earlier breaches of the same check that resolved.

    >>> alert_id("m", "v2", "escalations", {}) == alert_id("m", "v2", "escalations", {})
    True
    >>> alert_id("m", "v2", "escalations", {}) == alert_id("m", "v2", "escalations", {}, 1)
    False
    """
    parts: list[object] = [model, version, check, sorted(segment.items())]
    if episode:
        parts.append(episode)
    key = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def firing_record(
    policy: ModelPolicy,
    check: Check,
    version: str,
    stream: Stream,
    episode: int,
    detector: Detector,
    seen: Evidence,
    *,
    event_time: datetime,
    fired_at: datetime,
    source: SourcePosition | None,
    baseline_drift: dict[str, Any] | None = None,
) -> AlertRecord:
    """The firing record of a breach: the check, the candidate, and the detector's evidence.

    ``event_time`` is the event time at which the bucket whose data made the
    detector cross its threshold became final (its end plus the action window
    or label horizon it waited for); ``source`` is where the message was read
    whose processing released that bucket; ``baseline_drift``, when the
    baseline's own stream of the check drifts then
    (:meth:`monitor.baseline_drift.BaselineDrift.evidence`).
    """
    segment = dict([stream]) if stream else {}
    evidence: dict[str, Any] = {
        "detector": type(detector).__name__,
        "statistic": detector.statistic,
        "threshold": detector.threshold,
        **seen.details,
        "events_seen": {"baseline": seen.baseline_seen, "candidate": seen.candidate_seen},
    }
    if source is not None:
        evidence["source"] = source.as_dict()
    if baseline_drift is not None:
        evidence["baseline_drift"] = baseline_drift
    return AlertRecord(
        alert_id=alert_id(policy.name, version, check.name, segment, episode),
        status="firing",
        check=check.name,
        metric=check.metric.value,
        model=policy.name,
        version=version,
        baseline=policy.baseline,
        segment=segment,
        action=check.action,
        severity=check.resolved_severity,
        observed=seen.observed,
        reference=seen.reference,
        tolerance=check.tolerance.model_dump(exclude_none=True),
        event_time=event_time.isoformat(),
        fired_at=fired_at.isoformat(),
        owner=policy.owner,
        controls=list(policy.controls),
        evidence=evidence,
        rollback_to=policy.baseline,
        runbook_url=policy.runbook_url or "",
    )


def resolved_record(
    firing: AlertRecord,
    observed: float | None,
    since_breach: dict[str, float],
    resolved_at: datetime,
    baseline_drift: dict[str, Any] | None = None,
) -> AlertRecord:
    """The resolved record of a firing alert: same id, the data since the breach.

    ``baseline_drift``: the baseline's own drift when it resolved, if it drifts
    then (replacing any the firing record had).
    """
    evidence = {**firing.evidence, "since_breach": since_breach}
    if baseline_drift is not None:
        evidence["baseline_drift"] = baseline_drift
    return firing.model_copy(
        update={
            "status": "resolved",
            "observed": observed,
            "resolved_at": resolved_at.isoformat(),
            "evidence": evidence,
        }
    )


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


class OnceJsonlAlertSink(JsonlAlertSink):
    """:class:`JsonlAlertSink` that writes each record once: a record whose
    :attr:`~AlertRecord.key` (alert id and status) the file already holds is skipped.

    For the scale tier's judge, which may judge the same partials again after a
    restart (at-least-once) and then raises the same records with the same ids.
    A torn last line (the process died while writing it) is cut off first.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self._written: set[str] = set()
        if path.exists():
            data = path.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]
            if len(whole) != len(data):
                with open(path, "r+b") as fh:
                    fh.truncate(len(whole))
            for line in whole.splitlines():
                if line.strip():
                    record = json.loads(line)
                    self._written.add(f"{record['alert_id']}:{record['status']}")
        super().__init__(path)

    def emit(self, alert: AlertRecord) -> None:
        if alert.key not in self._written:
            self._written.add(alert.key)
            super().emit(alert)


class LogAlertSink:
    """Logs each alert (no payloads: the record holds aggregates only)."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("shiftwatch.alerts")

    def emit(self, alert: AlertRecord) -> None:
        # A rollback breach is an error (something must be undone); a page, ticket or log
        # breach a warning; a resolution is news.
        if alert.status == "resolved":
            level = "info"
        else:
            level = "error" if alert.action == "rollback" else "warning"
        self._log.log(
            logging.getLevelNamesMapping()[level.upper()],
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
