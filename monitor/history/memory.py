"""A history held in memory: rows added by whoever fetched them, read as a history source.

The Prometheus reader (:mod:`monitor.review.prometheus`) fills one from the
server's range queries; tests build one row by row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

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

__all__ = ["MemoryHistory"]

R = TypeVar("R")


def _window(rows: Iterable[R], model: str, since: float, until: float, key: str = "at") -> list[R]:
    chosen = [
        r
        for r in rows
        if getattr(r, "model") == model  # noqa: B009 (rows of any kind)
        and since <= float(getattr(r, key)) <= until
    ]
    return sorted(chosen, key=lambda r: float(getattr(r, key)))


@dataclass
class MemoryHistory:
    """Every kind of history row, in lists (a :class:`~monitor.history.rows.HistorySource`)."""

    model_records: list[ModelRecord] = field(default_factory=list)
    spans: list[VersionSpan] = field(default_factory=list)
    checks: list[CheckSample] = field(default_factory=list)
    served: list[VersionSample] = field(default_factory=list)
    tools: list[ToolSample] = field(default_factory=list)
    alert_rows: list[AlertRow] = field(default_factory=list)
    verdicts: list[VerdictChange] = field(default_factory=list)
    drift: list[DriftSample] = field(default_factory=list)
    decisions: list[SignOff] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def span(self) -> tuple[float, float] | None:
        times = [
            float(r.at)
            for rows in (self.checks, self.served, self.tools, self.verdicts, self.drift)
            for r in rows
        ]
        times += [a.event_time for a in self.alert_rows]
        return (min(times), max(times)) if times else None

    def models(self) -> list[ModelRecord]:
        latest: dict[str, ModelRecord] = {}
        for record in sorted(self.model_records, key=lambda r: r.at):
            latest[record.model] = record
        return [latest[name] for name in sorted(latest)]

    def versions(self, model: str) -> list[VersionSpan]:
        return sorted((s for s in self.spans if s.model == model), key=lambda s: s.first_at)

    def check_samples(self, model: str, since: float, until: float) -> list[CheckSample]:
        return _window(self.checks, model, since, until)

    def version_samples(self, model: str, since: float, until: float) -> list[VersionSample]:
        return _window(self.served, model, since, until)

    def tool_samples(self, model: str, since: float, until: float) -> list[ToolSample]:
        return _window(self.tools, model, since, until)

    def alerts(self, model: str, since: float, until: float) -> list[AlertRow]:
        return _window(self.alert_rows, model, since, until, key="event_time")

    def verdict_changes(self, model: str, since: float, until: float) -> list[VerdictChange]:
        return _window(self.verdicts, model, since, until)

    def drift_samples(self, model: str, since: float, until: float) -> list[DriftSample]:
        return _window(self.drift, model, since, until)

    def signoffs(self, model: str) -> list[SignOff]:
        return sorted((s for s in self.decisions if s.model == model), key=lambda s: s.at)

    def gaps(self) -> list[str]:
        return list(self.missing)

    def describe(self) -> dict[str, Any]:
        """How many rows of each kind (for logs and error messages)."""
        return {
            "models": len(self.model_records),
            "check_samples": len(self.checks),
            "version_samples": len(self.served),
            "tool_samples": len(self.tools),
            "alerts": len(self.alert_rows),
            "verdict_changes": len(self.verdicts),
            "drift_samples": len(self.drift),
            "signoffs": len(self.decisions),
        }
