"""What the monitor's history holds, row by row, and the interface every history source offers.

The history is what ``shiftwatch review`` builds the weekly report from. It is
written by the running monitor (:mod:`monitor.history.recorder`, into the
SQLite file of :mod:`monitor.history.store`), or read back from a Prometheus
server that scraped it (:mod:`monitor.review.prometheus`). Both offer
:class:`HistorySource`, so the report does not care which.

Times are seconds since the epoch (UTC). ``at`` of a sample is the end of its
resolution bucket in *event time* (the model's watermark), so a replay of a
week-old file has a week-old history. Nothing here holds an event payload or a
request id: the report built from it is safe to share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "AlertRow",
    "CheckSample",
    "Decision",
    "DriftSample",
    "HistorySource",
    "ModelRecord",
    "SignOff",
    "ToolSample",
    "VerdictChange",
    "VersionSample",
    "VersionSpan",
]

#: What the model owner decides at sign-off.
Decision = Literal["accept", "rollback", "retune"]


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A model as its policy stood when it was recorded.

    ``policy`` is the model's policy as plain data
    (``ModelPolicy.model_dump(mode="json")``): owner, baseline, candidates,
    checks with their tolerances and actions, controls. ``at`` is when this
    policy was first recorded; a changed policy is recorded again.
    """

    model: str
    at: float
    policy: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckSample:
    """One check on one stream of one candidate version, at the end of a resolution bucket.

    The values are those of the verdict's check view at that moment
    (:func:`monitor.verdict.check_view`): ``segment`` is ``""`` for the overall
    stream, else ``key=value``; ``lower`` / ``upper`` the allowed band (None:
    unbounded or not known yet); ``candidate_seen`` / ``baseline_seen`` the
    observations behind each side.
    """

    model: str
    version: str
    check: str
    segment: str
    at: float
    state: str  # ok | inconclusive | breach
    observed: float | None
    reference: float | None
    lower: float | None
    upper: float | None
    statistic: float | None
    threshold: float | None
    candidate_seen: float
    baseline_seen: float


@dataclass(frozen=True, slots=True)
class VersionSample:
    """What one version (baseline or candidate) served during one resolution bucket.

    ``latency_bins`` counts the bucket's inference latencies in the fixed
    log-spaced bins of :data:`monitor.history.store.LATENCY_EDGES_MS` (plain
    sums: buckets merge by adding), so the report can give medians and tails.
    """

    model: str
    version: str
    at: float
    baseline: bool
    inferences: int
    actions: int
    outcomes: int
    latency_count: int
    latency_sum_ms: float
    latency_bins: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSample:
    """Actions of one kind (and tool) by one version during one resolution bucket."""

    model: str
    version: str
    at: float
    action: str
    tool: str  # "" when the action names no tool
    privileged: bool
    count: int


@dataclass(frozen=True, slots=True)
class VersionSpan:
    """When a version was first and last seen (inference event time) and how much it served."""

    model: str
    version: str
    baseline: bool
    first_at: float
    last_at: float
    inferences: int


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert record as delivered (firing or resolved), keyed by (alert_id, status).

    ``record`` is the full alert record (docs/alerts.md) as JSON data; the
    other fields repeat what the report filters and sorts on. Times are
    ``event_time`` and ``fired_at`` / ``resolved_at`` parsed to epoch seconds.
    """

    alert_id: str
    status: str  # firing | resolved
    model: str
    version: str
    check: str
    segment: str
    action: str
    event_time: float
    fired_at: float
    resolved_at: float | None
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VerdictChange:
    """The candidate's verdict changed at event time ``at`` (recorded on change only)."""

    model: str
    version: str
    at: float
    verdict: str  # pass | fail | inconclusive
    reasons: tuple[dict[str, Any], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class DriftSample:
    """The baseline's own drift (:mod:`monitor.baseline_drift`) at the end of a bucket."""

    model: str
    at: float
    detected: bool
    checks: tuple[str, ...]
    changes: dict[str, int]


@dataclass(frozen=True, slots=True)
class SignOff:
    """A decision recorded by ``shiftwatch review sign`` (``at``: wall-clock time of signing)."""

    model: str
    version: str
    at: float
    decision: Decision
    by: str
    note: str


class HistorySource(Protocol):
    """Where a review reads its history from: the monitor's history file, or Prometheus.

    Every ``since`` / ``until`` is inclusive, in epoch seconds; rows come in
    time order. A source that cannot know a kind of row (Prometheus has no
    per-tool counts or alert ids) returns an empty list and says so in
    :meth:`gaps`.
    """

    def span(self) -> tuple[float, float] | None:
        """The earliest and latest time recorded, or None for an empty history."""
        ...

    def models(self) -> list[ModelRecord]:
        """Each model's latest recorded policy."""
        ...

    def versions(self, model: str) -> list[VersionSpan]:
        """Every version of ``model`` seen, baseline included."""
        ...

    def check_samples(self, model: str, since: float, until: float) -> list[CheckSample]: ...

    def version_samples(self, model: str, since: float, until: float) -> list[VersionSample]: ...

    def tool_samples(self, model: str, since: float, until: float) -> list[ToolSample]: ...

    def alerts(self, model: str, since: float, until: float) -> list[AlertRow]:
        """Alert records whose ``event_time`` lies in the period, firing and resolved."""
        ...

    def verdict_changes(self, model: str, since: float, until: float) -> list[VerdictChange]: ...

    def drift_samples(self, model: str, since: float, until: float) -> list[DriftSample]: ...

    def signoffs(self, model: str) -> list[SignOff]: ...

    def gaps(self) -> list[str]:
        """What this source cannot provide, one sentence each (shown in the report)."""
        ...
