"""The weekly review as plain data: what :func:`monitor.review.build.build_review` returns.

Every value here is derived from the history's rows: aggregates, times,
names from the policy, and the alert records' evidence restricted to
:data:`monitor.review.incidents.EVIDENCE_KEYS`. No event payload and no
request id can reach it, so whatever renders it is safe to share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.history.rows import CheckSample, SignOff, VerdictChange

__all__ = [
    "AlertEntry",
    "CheckTrend",
    "DriftSpell",
    "LatencySummary",
    "ModelReview",
    "Review",
    "SegmentRank",
    "ToolShare",
    "VersionReview",
]


@dataclass(frozen=True, slots=True)
class CheckTrend:
    """One check's overall stream over the period, against its band.

    ``breaches`` are the ``(from, to)`` spans of consecutive samples in
    ``breach``; ``alert_times`` the event times of the check's overall alerts.
    """

    check: str
    metric: str
    action: str
    tolerance: dict[str, float]
    samples: tuple[CheckSample, ...]
    breaches: tuple[tuple[float, float], ...]
    alert_times: tuple[float, ...]

    @property
    def last(self) -> CheckSample | None:
        """The latest sample of the period, or None when there is none."""
        return self.samples[-1] if self.samples else None


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """One alert (one ``alert_id``) with its evidence, time to detect and what followed.

    ``outcome`` is ``resolved``, ``rolled back`` or ``firing``; ``outcome_at``
    the time of the resolution or rollback. ``detect_seconds`` is from the
    candidate's first inference to ``event_time``; ``detect_inferences`` the
    candidate's inferences up to then (None when the history lacks them).
    """

    alert_id: str
    check: str
    metric: str
    segment: str
    action: str
    severity: str
    event_time: float
    fired_at: float
    observed: float | None
    reference: float | None
    tolerance: dict[str, float]
    evidence: dict[str, Any]
    detect_seconds: float | None
    detect_inferences: int | None
    outcome: str
    outcome_at: float | None


@dataclass(frozen=True, slots=True)
class SegmentRank:
    """A segment stream of one check and how much worse it got (:mod:`monitor.review.ranking`)."""

    check: str
    segment: str
    state: str
    breached: bool
    worsening: float
    observed: float
    reference: float | None
    lower: float | None
    upper: float | None
    candidate_seen: float


@dataclass(frozen=True, slots=True)
class ToolShare:
    """One action (and tool), per 1,000 inferences of each version, and its share of the actions."""

    action: str
    tool: str
    privileged: bool
    baseline_per_1000: float
    candidate_per_1000: float
    baseline_share: float
    candidate_share: float
    baseline_count: int
    candidate_count: int

    @property
    def new(self) -> bool:
        """The candidate took it and the baseline never did, in the period."""
        return self.candidate_count > 0 and self.baseline_count == 0


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """One version's inference latency over the period, from its binned counts."""

    version: str
    baseline: bool
    count: int
    mean_ms: float | None
    median_ms: float | None
    p95_ms: float | None
    bins: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DriftSpell:
    """Consecutive samples in which the baseline's own stream drifted."""

    since: float
    until: float
    checks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VersionReview:
    """The review of one candidate version against its baseline."""

    version: str
    verdict: str | None
    verdict_since: float | None
    verdict_changes: tuple[VerdictChange, ...]
    first_at: float | None
    last_at: float | None
    inferences: int
    trends: tuple[CheckTrend, ...]
    alerts: tuple[AlertEntry, ...]
    segments: tuple[SegmentRank, ...]
    tools: tuple[ToolShare, ...]
    latency: tuple[LatencySummary, ...]
    signoffs: tuple[SignOff, ...]

    @property
    def watched_seconds(self) -> float | None:
        """How long the candidate has been watched: its first to its last inference."""
        if self.first_at is None or self.last_at is None:
            return None
        return self.last_at - self.first_at

    @property
    def decision(self) -> SignOff | None:
        """The latest sign-off, or None."""
        return self.signoffs[-1] if self.signoffs else None


@dataclass(frozen=True, slots=True)
class ModelReview:
    """One model: its owner, controls, baseline drift and each candidate's review."""

    model: str
    owner: str
    baseline: str
    controls: tuple[str, ...]
    runbook_url: str
    drift: tuple[DriftSpell, ...]
    drift_sampled: bool
    versions: tuple[VersionReview, ...]


@dataclass(frozen=True, slots=True)
class Review:
    """The whole report: the period, each model, and what the history source could not give."""

    since: float
    until: float
    covered: tuple[float, float]
    source: str
    models: tuple[ModelReview, ...]
    gaps: tuple[str, ...] = field(default=())
    #: The clock of every time in the report: the events' own (a history), or the
    #: scrapes' (Prometheus).
    clock: str = "event time"
