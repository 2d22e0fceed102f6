"""Every alert of the period with its evidence, its time to detect, and what followed.

An alert is one ``alert_id``: its ``firing`` record and, once the candidate is
back inside its tolerance, its ``resolved`` record. What followed is

- ``resolved`` at the resolved record's ``resolved_at``;
- ``rolled back``, when it had not resolved and either a ``rollback``
  sign-off for the version was recorded after it fired (at the sign-off's
  time), or the version's verdict was ``fail`` when the candidate served its
  last inference and the baseline went on serving for at least
  :data:`ROLLBACK_QUIET_SECONDS` after it (at the candidate's last inference:
  the traffic was switched back);
- ``firing`` otherwise.

Time to detect is measured from the candidate's first inference (its
version span) to the alert's ``event_time``, in event time, and in the
candidate's inferences up to then (summed from the history's per-bucket
version samples).

Only the evidence keys in :data:`EVIDENCE_KEYS` are kept, each with the shape
documented in docs/alerts.md: a record that carries anything else (a request
id, a payload) never passes it on to the report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from monitor.history.rows import AlertRow, SignOff, VerdictChange, VersionSample, VersionSpan
from monitor.review.model import AlertEntry

__all__ = ["EVIDENCE_KEYS", "ROLLBACK_QUIET_SECONDS", "alert_entries", "safe_evidence"]

#: Evidence keys shown, each with the sub-keys kept (None: a plain number or string).
EVIDENCE_KEYS: Final[Mapping[str, tuple[str, ...] | None]] = {
    "detector": None,
    "statistic": None,
    "threshold": None,
    "detector_arl0": None,
    "distance": None,
    "tool": None,
    "baseline_rate_upper_95": None,
    "events_seen": ("baseline", "candidate"),
    "source": ("topic", "partition", "offset"),
    "since_breach": ("count", "exposure"),
}

#: How long the baseline must go on serving after the candidate's last inference
#: for a ``fail`` verdict to count as rolled back.
ROLLBACK_QUIET_SECONDS: Final = 3600.0


def _plain(value: Any) -> str | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:200]
    return None


def safe_evidence(evidence: Any) -> dict[str, Any]:
    """The alert record's evidence restricted to :data:`EVIDENCE_KEYS`, plain values only."""
    if not isinstance(evidence, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, inner in EVIDENCE_KEYS.items():
        value = evidence.get(key)
        if inner is None:
            plain = _plain(value)
            if plain is not None:
                out[key] = plain
        elif isinstance(value, Mapping):
            kept = {k: _plain(value.get(k)) for k in inner}
            kept = {k: v for k, v in kept.items() if v is not None}
            if kept:
                out[key] = kept
    return out


def _tolerance(record: Mapping[str, Any]) -> dict[str, float]:
    tol = record.get("tolerance")
    if not isinstance(tol, Mapping):
        return {}
    return {str(k): float(v) for k, v in tol.items() if isinstance(_plain(v), float)}


def _number(record: Mapping[str, Any], key: str) -> float | None:
    value = _plain(record.get(key))
    return value if isinstance(value, float) else None


def _inferences_until(samples: Iterable[VersionSample], version: str, until: float) -> int | None:
    chosen = [s.inferences for s in samples if s.version == version and s.at <= until]
    return sum(chosen) if chosen else None


def _rolled_back(
    fired: float,
    span: VersionSpan | None,
    baseline_last: float | None,
    signoffs: Iterable[SignOff],
    verdicts: list[VerdictChange],
) -> float | None:
    for s in signoffs:
        if s.decision == "rollback" and s.at >= fired:
            return s.at
    if span is None or baseline_last is None or span.last_at < fired:
        return None
    if baseline_last - span.last_at < ROLLBACK_QUIET_SECONDS:
        return None
    before = [v for v in verdicts if v.at <= span.last_at]
    return span.last_at if before and before[-1].verdict == "fail" else None


def alert_entries(
    rows: Iterable[AlertRow],
    *,
    version: str,
    span: VersionSpan | None,
    baseline_last: float | None,
    samples: Iterable[VersionSample],
    signoffs: Iterable[SignOff],
    verdicts: Iterable[VerdictChange],
) -> tuple[AlertEntry, ...]:
    """One :class:`AlertEntry` per alert id of ``version``, in order of event time.

    Parameters
    ----------
    rows
        The alert rows of the model (firing and resolved).
    version
        The candidate version reviewed.
    span
        Its version span (first and last inference), if known.
    baseline_last
        The baseline's last inference, if known.
    samples
        Version samples from the candidate's first inference on.
    signoffs, verdicts
        The version's sign-offs and verdict changes, in time order.
    """
    firing: dict[str, AlertRow] = {}
    resolved: dict[str, AlertRow] = {}
    for row in rows:
        if row.version != version:
            continue
        (resolved if row.status == "resolved" else firing).setdefault(row.alert_id, row)
    samples = list(samples)
    signoffs = [s for s in signoffs if s.version == version]
    verdicts = sorted((v for v in verdicts if v.version == version), key=lambda v: v.at)
    entries = []
    for alert_id in sorted({*firing, *resolved}):
        row = firing.get(alert_id) or resolved[alert_id]
        record = row.record if isinstance(row.record, Mapping) else {}
        done = resolved.get(alert_id)
        outcome, outcome_at = "firing", None
        if done is not None:
            outcome, outcome_at = "resolved", done.resolved_at
        else:
            back = _rolled_back(row.fired_at, span, baseline_last, signoffs, verdicts)
            if back is not None:
                outcome, outcome_at = "rolled back", back
        entries.append(
            AlertEntry(
                alert_id=alert_id,
                check=row.check,
                metric=str(record.get("metric", "")),
                segment=row.segment,
                action=row.action,
                severity=str(record.get("severity", "")),
                event_time=row.event_time,
                fired_at=row.fired_at,
                observed=_number(record, "observed"),
                reference=_number(record, "reference"),
                tolerance=_tolerance(record),
                evidence=safe_evidence(record.get("evidence")),
                detect_seconds=None if span is None else row.event_time - span.first_at,
                detect_inferences=_inferences_until(samples, version, row.event_time),
                outcome=outcome,
                outcome_at=outcome_at,
            )
        )
    entries.sort(key=lambda e: (e.event_time, e.alert_id))
    return tuple(entries)
