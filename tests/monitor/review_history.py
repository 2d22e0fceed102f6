"""A realistic week of history rows in memory, for the review's tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.history.memory import MemoryHistory
from monitor.history.rows import (
    AlertRow,
    CheckSample,
    DriftSample,
    ModelRecord,
    ToolSample,
    VerdictChange,
    VersionSample,
    VersionSpan,
)

START = 1_793_610_000.0  # 2026-11-02T09:00:00Z
HOUR = 3600.0
DAY = 86_400.0
EDGES = tuple(float(x) for x in np.geomspace(1.0, 10_000.0, 41))
REQUEST_ID = "r-secret-4711"
PAYLOAD = "card=4111111111111111"

POLICY: dict[str, Any] = {
    "name": "fraud-scorer",
    "owner": "fraud-ml-oncall",
    "baseline": "v7-fp32",
    "candidates": ["v7-int8"],
    "segments": ["lang"],
    "controls": ["NIST CSF 2.0 GV.RM-01", "NIST AI RMF GOVERN", "OWASP Agentic Top 10 A06"],
    "runbook_url": "https://runbooks.example/fraud-scorer",
    "checks": [
        {
            "name": "escalations",
            "metric": "action_rate",
            "tolerance": {"max_relative_change": 0.25},
            "action": "rollback",
        },
        {
            "name": "deny-rate",
            "metric": "decision_rate",
            "tolerance": {"max_relative_change": 0.5},
            "action": "page",
        },
    ],
}


def latency_bins(values: np.ndarray[Any, np.dtype[np.float64]]) -> tuple[int, ...]:
    """Counts of ``values`` per bin of :data:`EDGES` (underflow first, overflow last)."""
    return tuple(
        int(c)
        for c in np.bincount(np.searchsorted(EDGES, values, side="right"), minlength=len(EDGES) + 1)
    )


def alert_record(
    alert_id: str,
    status: str,
    check: str,
    segment: dict[str, str],
    at: float,
    resolved_at: float | None,
) -> dict[str, Any]:
    """An alert record as docs/alerts.md shows it, plus keys a review must never render."""
    return {
        "alert_id": alert_id,
        "status": status,
        "check": check,
        "metric": "action_rate" if check == "escalations" else "decision_rate",
        "model": "fraud-scorer",
        "version": "v7-int8",
        "segment": segment,
        "action": "rollback" if check == "escalations" else "page",
        "severity": "critical" if check == "escalations" else "warning",
        "observed": 0.057,
        "reference": 0.079,
        "tolerance": {"max_relative_change": 0.25},
        "event_time": at,
        "owner": "fraud-ml-oncall",
        "request_id": REQUEST_ID,
        "evidence": {
            "detector": "RateShiftDetector",
            "statistic": 13.4,
            "threshold": 13.3,
            "events_seen": {"baseline": 10541.0, "candidate": 4459.0, "request_id": REQUEST_ID},
            "source": {"topic": "events.jsonl", "partition": 0, "offset": 42030},
            "request_id": REQUEST_ID,
            "sample_event": {"payload": PAYLOAD},
        },
    }


def week(seed: int = 3) -> tuple[MemoryHistory, dict[str, np.ndarray[Any, np.dtype[np.float64]]]]:
    """A week of hourly rows: escalations breach days 1.6-3.5, lang=ga deny-rate from day 5.3.

    Returns the history and every latency value drawn per version (for numpy cross-checks).
    """
    rng = np.random.default_rng(seed)
    h = MemoryHistory()
    h.model_records.append(ModelRecord("fraud-scorer", START, POLICY))
    latencies: dict[str, list[float]] = {"v7-fp32": [], "v7-int8": []}
    for k in range(1, 7 * 24 + 1):
        at = START + k * HOUR
        day = k / 24
        for version, baseline, n, factor in (
            ("v7-fp32", True, 530, 1.0),
            ("v7-int8", False, 230, 0.8),
        ):
            values = np.exp(np.log(80.0 * factor) + 0.5 * rng.standard_normal(n))
            latencies[version] += values.tolist()
            h.served.append(
                VersionSample(
                    "fraud-scorer",
                    version,
                    at,
                    baseline,
                    n,
                    2 * n,
                    5,
                    n,
                    float(values.sum()),
                    latency_bins(values),
                )
            )
            esc = 0.079 * (0.5 if (not baseline and 1 <= day < 3) else 1.0)
            h.tools.append(
                ToolSample("fraud-scorer", version, at, "escalation", "", False, int(esc * n))
            )
            h.tools.append(
                ToolSample("fraud-scorer", version, at, "tool_call", "refund.issue", True, n // 20)
            )
        if k % 50 == 0:
            h.tools.append(
                ToolSample("fraud-scorer", "v7-int8", at, "tool_call", "iam.grant_admin", True, 1)
            )
        in_breach = 1.6 <= day < 3.5
        h.checks.append(
            CheckSample(
                "fraud-scorer",
                "v7-int8",
                "escalations",
                "",
                at,
                "breach" if in_breach else "ok",
                0.05 if 1 <= day < 3 else 0.078,
                0.079,
                0.059,
                0.099,
                1.0,
                13.3,
                230.0 * k,
                530.0 * k,
            )
        )
        h.checks.append(
            CheckSample(
                "fraud-scorer",
                "v7-int8",
                "deny-rate",
                "",
                at,
                "ok",
                0.021,
                0.021,
                0.0105,
                0.0315,
                0.1,
                12.0,
                230.0 * k,
                530.0 * k,
            )
        )
        ga_breach = day >= 5.3
        h.checks.append(
            CheckSample(
                "fraud-scorer",
                "v7-int8",
                "deny-rate",
                "lang=ga",
                at,
                "breach" if ga_breach else "ok",
                0.046 if day >= 3.5 else 0.02,
                0.0196,
                0.0098,
                0.0294,
                1.0,
                12.0,
                11.5 * k,
                26.5 * k,
            )
        )
        h.checks.append(
            CheckSample(
                "fraud-scorer",
                "v7-int8",
                "deny-rate",
                "lang=en",
                at,
                "ok",
                0.0255,
                0.021,
                0.0105,
                0.0315,
                0.1,
                12.0,
                150.0 * k,
                340.0 * k,
            )
        )
        h.checks.append(
            CheckSample(
                "fraud-scorer",
                "v7-int8",
                "deny-rate",
                "lang=fr",
                at,
                "ok",
                0.0255,
                0.021,
                0.0105,
                0.0315,
                0.1,
                12.0,
                30.0 * k,
                70.0 * k,
            )
        )
        h.drift.append(
            DriftSample(
                "fraud-scorer", at, 4 <= day < 4.5, ("escalations",) if 4 <= day < 4.5 else (), {}
            )
        )
    esc_at, ga_at = START + 1.6 * DAY, START + 5.3 * DAY
    resolved = START + 3.5 * DAY
    h.alert_rows += [
        AlertRow(
            "a-esc",
            "firing",
            "fraud-scorer",
            "v7-int8",
            "escalations",
            "",
            "rollback",
            esc_at,
            esc_at,
            None,
            alert_record("a-esc", "firing", "escalations", {}, esc_at, None),
        ),
        AlertRow(
            "a-esc",
            "resolved",
            "fraud-scorer",
            "v7-int8",
            "escalations",
            "",
            "rollback",
            esc_at,
            esc_at,
            resolved,
            alert_record("a-esc", "resolved", "escalations", {}, esc_at, resolved),
        ),
        AlertRow(
            "a-ga",
            "firing",
            "fraud-scorer",
            "v7-int8",
            "deny-rate",
            "lang=ga",
            "page",
            ga_at,
            ga_at,
            None,
            alert_record("a-ga", "firing", "deny-rate", {"lang": "ga"}, ga_at, None),
        ),
    ]
    h.verdicts += [
        VerdictChange("fraud-scorer", "v7-int8", START + HOUR, "inconclusive"),
        VerdictChange("fraud-scorer", "v7-int8", START + 0.5 * DAY, "pass"),
        VerdictChange(
            "fraud-scorer",
            "v7-int8",
            esc_at,
            "fail",
            ({"check": "escalations", "segment": "", "state": "breach", "request_id": REQUEST_ID},),
        ),
        VerdictChange("fraud-scorer", "v7-int8", resolved, "pass"),
        VerdictChange(
            "fraud-scorer",
            "v7-int8",
            ga_at,
            "inconclusive",
            ({"check": "deny-rate", "segment": "lang=ga", "state": "breach"},),
        ),
    ]
    last = START + 7 * DAY
    h.spans += [
        VersionSpan("fraud-scorer", "v7-fp32", True, START, last, 530 * 168),
        VersionSpan("fraud-scorer", "v7-int8", False, START, last, 230 * 168),
    ]
    return h, {v: np.asarray(x) for v, x in latencies.items()}
