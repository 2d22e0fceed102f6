"""The history file read back: the :class:`~monitor.history.rows.HistorySource` queries.

:class:`~monitor.history.store.HistoryStore` opens the file (for writing, or
read-only) and inherits these queries; rows come in time order.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.history.rows import (
    AlertRow,
    CheckSample,
    DriftSample,
    ModelRecord,
    SignOff,
    ToolSample,
    VerdictChange,
    VersionSample,
    VersionSpan,
)
from monitor.history.schema import TIMED_TABLES

__all__ = ["HistoryReads"]


class HistoryReads:
    """The reading half of the history file (a :class:`~monitor.history.rows.HistorySource`)."""

    path: Path
    _conn: sqlite3.Connection

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return self._conn.execute(sql, tuple(args)).fetchall()

    def span(self) -> tuple[float, float] | None:
        lows, highs = [], []
        for table, column in TIMED_TABLES:
            low, high = self._rows(f"SELECT MIN({column}), MAX({column}) FROM {table}")[0]
            if low is not None:
                lows.append(float(low))
                highs.append(float(high))
        return (min(lows), max(highs)) if lows else None

    def models(self) -> list[ModelRecord]:
        rows = self._rows(
            "SELECT model, at, policy FROM models m WHERE at = "
            "(SELECT MAX(at) FROM models WHERE model = m.model) ORDER BY model"
        )
        return [ModelRecord(m, float(at), json.loads(p)) for m, at, p in rows]

    def versions(self, model: str) -> list[VersionSpan]:
        rows = self._rows(
            "SELECT version, MAX(baseline), MIN(first_at), MAX(last_at), SUM(inferences) "
            "FROM served WHERE model = ? AND inferences > 0 GROUP BY version "
            "ORDER BY MIN(first_at), version",
            (model,),
        )
        return [
            VersionSpan(model, v, bool(b), float(first), float(last), int(n))
            for v, b, first, last, n in rows
        ]

    def check_samples(self, model: str, since: float, until: float) -> list[CheckSample]:
        rows = self._rows(
            "SELECT * FROM checks WHERE model = ? AND at BETWEEN ? AND ? "
            "ORDER BY at, version, check_name, segment",
            (model, since, until),
        )
        return [CheckSample(*row) for row in rows]

    def version_samples(self, model: str, since: float, until: float) -> list[VersionSample]:
        rows = self._rows(
            "SELECT model, version, at, baseline, inferences, actions, outcomes, latency_count, "
            "latency_sum_ms, latency_bins FROM served WHERE model = ? AND at BETWEEN ? AND ? "
            "ORDER BY at, version",
            (model, since, until),
        )
        return [
            VersionSample(m, v, at, bool(b), i, a, o, lc, ls, tuple(json.loads(bins)))
            for m, v, at, b, i, a, o, lc, ls, bins in rows
        ]

    def tool_samples(self, model: str, since: float, until: float) -> list[ToolSample]:
        rows = self._rows(
            "SELECT * FROM tools WHERE model = ? AND at BETWEEN ? AND ? "
            "ORDER BY at, version, action, tool, privileged",
            (model, since, until),
        )
        return [ToolSample(m, v, at, a, t, bool(p), n) for m, v, at, a, t, p, n in rows]

    def alerts(self, model: str, since: float, until: float) -> list[AlertRow]:
        rows = self._rows(
            "SELECT * FROM alerts WHERE model = ? AND event_time BETWEEN ? AND ? "
            "ORDER BY event_time, alert_id, status",
            (model, since, until),
        )
        return [
            AlertRow(a, s, m, v, c, seg, act, et, fa, ra, json.loads(record))
            for a, s, m, v, c, seg, act, et, fa, ra, record in rows
        ]

    def verdict_changes(self, model: str, since: float, until: float) -> list[VerdictChange]:
        rows = self._rows(
            "SELECT * FROM verdicts WHERE model = ? AND at BETWEEN ? AND ? ORDER BY at, version",
            (model, since, until),
        )
        return [VerdictChange(m, v, at, d, tuple(json.loads(r))) for m, v, at, d, r in rows]

    def drift_samples(self, model: str, since: float, until: float) -> list[DriftSample]:
        rows = self._rows(
            "SELECT * FROM drift WHERE model = ? AND at BETWEEN ? AND ? ORDER BY at",
            (model, since, until),
        )
        return [
            DriftSample(m, at, bool(d), tuple(json.loads(c)), json.loads(ch))
            for m, at, d, c, ch in rows
        ]

    def signoffs(self, model: str) -> list[SignOff]:
        rows = self._rows("SELECT * FROM signoffs WHERE model = ? ORDER BY at", (model,))
        return [SignOff(*row) for row in rows]

    def gaps(self) -> list[str]:
        return []

    def describe(self) -> dict[str, Any]:
        """How many rows of each kind, the format and the writer (for logs and errors)."""
        meta = dict(self._rows("SELECT key, value FROM meta"))
        counts = {
            name: int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])
            for name, table in (
                ("models", "models"),
                ("check_samples", "checks"),
                ("version_samples", "served"),
                ("tool_samples", "tools"),
                ("alerts", "alerts"),
                ("verdict_changes", "verdicts"),
                ("drift_samples", "drift"),
                ("signoffs", "signoffs"),
            )
        }
        return {"file": str(self.path), **meta, **counts}
