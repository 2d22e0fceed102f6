"""The JSON Schema of an alert record, from :class:`~monitor.alerts.AlertRecord`.

:func:`alert_schema` takes pydantic's schema of the alert record and describes
every field: what identifies a breach, what the detector observed, and where
to roll back to.

Examples
--------
>>> alert_schema()["properties"]["status"]["enum"]
['firing', 'resolved']
"""

from __future__ import annotations

from monitor.alerts import AlertRecord
from monitor.contracts.common import JsonSchema, describe, header

__all__ = ["alert_schema"]

_ALERT_FIELDS: dict[str, str] = {
    "alert_id": (
        "Id of the breach: 24 hex characters of SHA-256 over (model, version, check, segment, "
        "episode). The same in the firing and the resolved record, across restarts and replays."
    ),
    "status": "firing when the check crosses its threshold; resolved when it is back inside.",
    "check": "Name of the check in the policy.",
    "metric": "The check's metric.",
    "model": "The model.",
    "version": "The candidate version that breached.",
    "baseline": "The baseline version it is compared with.",
    "segment": "The stream: {} for the overall stream, else {segment key: value}.",
    "action": "The check's action (rollback, page, ...).",
    "severity": "critical, warning or info: the check's severity or its default.",
    "observed": (
        "The candidate's value: its rate (rate checks), its distance from the baseline "
        "(distribution checks), 1 (novel_tool); in a resolved record, since the breach. "
        "null if unknown."
    ),
    "reference": "The baseline's rate (rate checks); 0 for distribution and novel_tool checks.",
    "tolerance": "The check's tolerance, as in the policy (the bounds set only).",
    "event_time": (
        "Event time of the crossing: the end of the one-second event-time bucket whose release "
        "made the detector cross its threshold (RFC 3339)."
    ),
    "fired_at": (
        "When shiftwatch raised the alert: wall-clock UTC, or event_time in a replay (RFC 3339)."
    ),
    "owner": "The model's owner in the policy.",
    "controls": "The model's control references in the policy.",
    "evidence": (
        "The detector's evidence: detector, statistic, threshold, events_seen, source "
        "{topic, partition, offset}, and per detector detector_arl0, distance, tool, "
        "baseline_rate_upper_95; in a resolved record also since_breach; baseline_drift "
        "{detected, since, last, checks} when the baseline's own stream of the check drifts."
    ),
    "rollback_to": "The version to roll back to: the baseline.",
    "runbook_url": "The model's runbook_url from the policy; empty when it names none.",
    "resolved_at": (
        "When the alert resolved (same clock as fired_at); null or absent while firing."
    ),
}


def alert_schema() -> JsonSchema:
    """The JSON Schema of an alert record.

    Returns
    -------
    dict
        The schema, with its header, built afresh from the model.
    """
    body = AlertRecord.model_json_schema()
    describe(body, _ALERT_FIELDS)
    return header(
        "alert",
        body,
        "shiftwatch alert record",
        "One breach of one check, in one segment of one candidate version: sent firing, then "
        "resolved with the same alert_id (docs/alerts.md).",
    )
