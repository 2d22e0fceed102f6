"""A history source read into a :class:`~monitor.review.model.Review`.

:func:`build_review` asks a :class:`~monitor.history.rows.HistorySource`
for the rows of the period and puts them together per model and candidate
version; the sections that compute something live in their own modules
(:mod:`~monitor.review.incidents`, :mod:`~monitor.review.ranking`,
:mod:`~monitor.review.tools`, :mod:`~monitor.review.latency`). The period's
verdict is the last verdict change at or before ``until`` (it may predate the
period: a verdict holds until it changes).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from monitor.history.rows import (
    AlertRow,
    CheckSample,
    DriftSample,
    HistorySource,
    ModelRecord,
    VersionSample,
    VersionSpan,
)
from monitor.review.incidents import alert_entries
from monitor.review.latency import quantile_from_bins
from monitor.review.model import (
    CheckTrend,
    DriftSpell,
    LatencySummary,
    ModelReview,
    Review,
    VersionReview,
)
from monitor.review.ranking import rank_segments
from monitor.review.tools import tool_mix
from monitor.suggest import did_you_mean

__all__ = ["ReviewError", "build_review", "iso"]


class ReviewError(ValueError):
    """The review cannot be built: no history, an unknown model or version, an empty period."""


def iso(at: float) -> str:
    """An epoch time as RFC 3339 UTC, to the second."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chosen_models(source: HistorySource, model: str | None) -> list[ModelRecord]:
    records = source.models()
    if not records:
        raise ReviewError("the history records no model yet (has the monitor run with --state?)")
    if model is None:
        return records
    names = [r.model for r in records]
    if model not in names:
        raise ReviewError(
            f"model {model!r} is not in the history{did_you_mean(model, names)}; "
            f"models: {', '.join(names)}"
        )
    return [r for r in records if r.model == model]


def _candidates(record: ModelRecord, spans: list[VersionSpan], version: str | None) -> list[str]:
    baseline = str(record.policy.get("baseline", ""))
    listed = record.policy.get("candidates") or []
    seen = [s.version for s in spans if not s.baseline and s.version != baseline]
    names = list(dict.fromkeys([str(v) for v in listed] + seen))
    if version is None:
        return names
    if version not in names:
        raise ReviewError(
            f"model {record.model} has no candidate version {version!r}"
            f"{did_you_mean(version, names)}; candidates: {', '.join(names) or 'none'}"
        )
    return [version]


def _breach_spans(samples: Sequence[CheckSample]) -> tuple[tuple[float, float], ...]:
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for i, s in enumerate(samples):
        if s.state == "breach" and start is None:
            start = samples[i - 1].at if i > 0 else s.at
        elif s.state != "breach" and start is not None:
            spans.append((start, s.at))
            start = None
    if start is not None:
        spans.append((start, samples[-1].at))
    return tuple(spans)


def _trends(
    checks: list[dict[str, Any]], samples: list[CheckSample], alerts: list[AlertRow]
) -> tuple[CheckTrend, ...]:
    names = [str(c.get("name")) for c in checks]
    names += sorted({s.check for s in samples} - set(names))
    by_name = {str(c.get("name")): c for c in checks}
    trends = []
    for name in names:
        policy = by_name.get(name, {})
        overall = [s for s in samples if s.check == name and not s.segment]
        tol = policy.get("tolerance") or {}
        trends.append(
            CheckTrend(
                check=name,
                metric=str(policy.get("metric", "")),
                action=str(policy.get("action", "")),
                tolerance={str(k): float(v) for k, v in tol.items() if v is not None},
                samples=tuple(overall),
                breaches=_breach_spans(overall),
                alert_times=tuple(
                    a.event_time
                    for a in alerts
                    if a.check == name and not a.segment and a.status == "firing"
                ),
            )
        )
    return tuple(trends)


def _latency(
    samples: list[VersionSample], edges: Sequence[float] | None
) -> tuple[LatencySummary, ...]:
    out = []
    for version in dict.fromkeys(s.version for s in samples):
        mine = [s for s in samples if s.version == version]
        count = sum(s.latency_count for s in mine)
        width = len(edges) + 1 if edges is not None else 0
        bins = [0] * width
        for s in mine:
            if len(s.latency_bins) == width:
                bins = [a + b for a, b in zip(bins, s.latency_bins, strict=True)]
        median = p95 = None
        if edges is not None and sum(bins) > 0:
            median = quantile_from_bins(bins, edges, 0.5)
            p95 = quantile_from_bins(bins, edges, 0.95)
        out.append(
            LatencySummary(
                version=version,
                baseline=mine[0].baseline,
                count=count,
                mean_ms=sum(s.latency_sum_ms for s in mine) / count if count else None,
                median_ms=median,
                p95_ms=p95,
                bins=tuple(bins),
            )
        )
    out.sort(key=lambda lat: (not lat.baseline, lat.version))
    return tuple(out)


def _drift(samples: list[DriftSample]) -> tuple[DriftSpell, ...]:
    spells: list[DriftSpell] = []
    current: list[DriftSample] = []
    for s in [*samples, None]:
        if s is not None and s.detected:
            current.append(s)
            continue
        if current:
            checks = sorted({c for d in current for c in d.checks})
            spells.append(DriftSpell(current[0].at, current[-1].at, tuple(checks)))
            current = []
    return tuple(spells)


def _version_review(
    source: HistorySource,
    record: ModelRecord,
    version: str,
    spans: list[VersionSpan],
    since: float,
    until: float,
    latency_edges: Sequence[float] | None,
) -> VersionReview:
    model = record.model
    baseline = str(record.policy.get("baseline", ""))
    span = next((s for s in spans if s.version == version), None)
    base_span = next((s for s in spans if s.version == baseline or s.baseline), None)
    samples = [s for s in source.check_samples(model, since, until) if s.version == version]
    alerts = [a for a in source.alerts(model, since, until) if a.version == version]
    served = [
        s
        for s in source.version_samples(model, since, until)
        if s.version in (version, baseline) or s.baseline
    ]
    from_start = served
    if span is not None and span.first_at < since:
        from_start = source.version_samples(model, span.first_at, until)
    verdicts = [v for v in source.verdict_changes(model, -math.inf, until) if v.version == version]
    signoffs = [s for s in source.signoffs(model) if s.version == version]
    checks = [c for c in record.policy.get("checks") or [] if isinstance(c, dict)]
    return VersionReview(
        version=version,
        verdict=verdicts[-1].verdict if verdicts else None,
        verdict_since=verdicts[-1].at if verdicts else None,
        verdict_changes=tuple(v for v in verdicts if v.at >= since),
        first_at=None if span is None else span.first_at,
        last_at=None if span is None else span.last_at,
        inferences=0 if span is None else span.inferences,
        trends=_trends(checks, samples, alerts),
        alerts=alert_entries(
            alerts,
            version=version,
            span=span,
            baseline_last=None if base_span is None else base_span.last_at,
            samples=from_start,
            signoffs=signoffs,
            verdicts=verdicts,
        ),
        segments=rank_segments(samples),
        tools=tool_mix(
            source.tool_samples(model, since, until),
            served,
            baseline=baseline,
            candidate=version,
        ),
        latency=_latency(served, latency_edges),
        signoffs=tuple(signoffs),
    )


def _check_not_empty(
    source: HistorySource, records: list[ModelRecord], since: float, until: float
) -> None:
    rows: Counter[str] = Counter()
    for r in records:
        rows["checks"] += len(source.check_samples(r.model, since, until))
        rows["served"] += len(source.version_samples(r.model, since, until))
        rows["alerts"] += len(source.alerts(r.model, since, until))
    if sum(rows.values()) == 0:
        covered = source.span()
        where = (
            f"the history covers {iso(covered[0])} to {iso(covered[1])}"
            if covered is not None
            else "the history is empty"
        )
        raise ReviewError(
            f"nothing recorded between {iso(since)} and {iso(until)}: {where} "
            "(fix: widen --since or move --until)"
        )


def build_review(
    source: HistorySource,
    since: float,
    until: float,
    *,
    model: str | None = None,
    version: str | None = None,
    latency_edges: Sequence[float] | None = None,
    source_name: str = "history",
    clock: str = "event time",
) -> Review:
    """The review of the period ``[since, until]`` (epoch seconds, on ``clock``).

    Parameters
    ----------
    source
        Where the history is read from.
    since, until
        The period, inclusive.
    model, version
        Only this model (and only this candidate version of it).
    latency_edges
        The edges of the history's latency bins, for medians and tails
        (None: means only).
    source_name
        How the report names its source (a state directory, a Prometheus URL).
    clock
        The clock of the source's times: ``event time`` (the monitor's history)
        or the wall clock of Prometheus's scrapes.

    Raises
    ------
    ReviewError
        For an empty history, an unknown model or version, an empty period.
    """
    if not (math.isfinite(since) and math.isfinite(until)) or since > until:
        raise ReviewError(f"the period is empty: since {since} is after until {until}")
    covered = source.span()
    if covered is None:
        raise ReviewError("the history is empty (has the monitor run with --state?)")
    records = _chosen_models(source, model)
    _check_not_empty(source, records, since, until)
    reviews = []
    for record in records:
        spans = source.versions(record.model)
        policy = record.policy
        reviews.append(
            ModelReview(
                model=record.model,
                owner=str(policy.get("owner", "")),
                baseline=str(policy.get("baseline", "")),
                controls=tuple(str(c) for c in policy.get("controls") or []),
                runbook_url=str(policy.get("runbook_url") or ""),
                drift=_drift(source.drift_samples(record.model, since, until)),
                drift_sampled=bool(source.drift_samples(record.model, since, until)),
                versions=tuple(
                    _version_review(source, record, v, spans, since, until, latency_edges)
                    for v in _candidates(record, spans, version)
                ),
            )
        )
    return Review(
        since=since,
        until=until,
        covered=covered,
        source=source_name,
        models=tuple(reviews),
        gaps=tuple(source.gaps()),
        clock=clock,
    )
