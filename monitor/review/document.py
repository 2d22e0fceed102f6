"""The review as a document: sections of paragraphs, tables and plots, for either format.

:func:`sections` turns a :class:`~monitor.review.model.Review` into a list of
:class:`Section`; :mod:`monitor.review.html` and :mod:`monitor.review.markdown`
only lay them out (and escape), so the two formats always say the same.
Every cell and paragraph is plain text; a row can be marked (a privileged or
new tool, a breach) and a cell can be emphasised.
"""

from __future__ import annotations

from monitor.review import plots
from monitor.review.layout import Plot, Section, Table
from monitor.review.model import ModelReview, Review, VersionReview
from monitor.review.text import (
    DASH,
    band,
    duration,
    evidence_text,
    number,
    segment,
    time,
    tolerance_text,
)
from monitor.review.tradeoff import latency_section, signoff_section, tools_section

__all__ = ["sections"]


def _overview(review: Review) -> Section:
    lines = [
        f"Period: {time(review.since)} to {time(review.until)} ({review.clock}), "
        f"{duration(review.until - review.since)}.",
        f"History: {review.source}, covering {time(review.covered[0])} to "
        f"{time(review.covered[1])}.",
        "Safe to share: this report holds aggregates, alert evidence and source offsets "
        "only, never an event payload or a request id.",
    ]
    lines += [f"Not available from this source: {gap}" for gap in review.gaps]
    return Section("Weekly review", 1, tuple(lines))


def _model_head(m: ModelReview) -> list[Section]:
    out = [
        Section(
            f"Model {m.model}",
            1,
            (
                f"Owner: {m.owner or DASH} (accountable for the residual risk). "
                f"Baseline: {m.baseline}.",
                *([f"Runbook: {m.runbook_url}"] if m.runbook_url else []),
            ),
        ),
        Section(
            "Controls",
            2,
            ("The controls this change is managed under, from the policy:",)
            if m.controls
            else ("The policy maps this model to no controls.",),
            (Table(("control",), tuple((c,) for c in m.controls)),) if m.controls else (),
        ),
    ]
    if not m.drift_sampled:
        drift = ("The history holds no baseline-drift samples for the period.",)
        tables: tuple[Table, ...] = ()
    elif not m.drift:
        drift = ("The baseline did not drift over the period: the world stayed put.",)
        tables = ()
    else:
        drift = (
            "The baseline itself drifted (the world changed under both versions). This is "
            "kept apart from the candidate's divergence below, which is measured against "
            "the baseline as it moved.",
        )
        tables = (
            Table(
                ("from", "to", "checks"),
                tuple((time(d.since), time(d.until), ", ".join(d.checks)) for d in m.drift),
            ),
        )
    out.append(Section("Did the baseline drift?", 2, drift, tables))
    return out


def _verdict(m: ModelReview, v: VersionReview) -> Section:
    lines = [
        f"Verdict at the end of the period: {v.verdict or 'none recorded'}"
        + (f" (since {time(v.verdict_since)})." if v.verdict_since is not None else "."),
        f"Watched since {time(v.first_at)} (first inference), last seen {time(v.last_at)}: "
        f"{duration(v.watched_seconds)}, {number(float(v.inferences))} inferences.",
    ]
    tables: tuple[Table, ...] = ()
    if v.verdict_changes:
        tables = (
            Table(
                ("at", "verdict", "reasons"),
                tuple(
                    (
                        time(c.at),
                        c.verdict,
                        "; ".join(
                            f"{r.get('check', '?')} {segment(str(r.get('segment', '')))} "
                            f"{r.get('state', '')}"
                            for r in c.reasons
                            if isinstance(r, dict)
                        )
                        or DASH,
                    )
                    for c in v.verdict_changes
                ),
            ),
        )
        lines.append("Verdict changes in the period:")
    return Section(f"{m.model} {v.version} against {m.baseline}", 2, tuple(lines), tables)


def _checks(review: Review, v: VersionReview, with_plots: bool) -> Section:
    rows = []
    marked = set()
    for i, t in enumerate(v.trends):
        last = t.last
        if (last is not None and last.state == "breach") or t.breaches:
            marked.add(i)
        rows.append(
            (
                t.check,
                t.metric,
                t.action,
                tolerance_text(t.tolerance),
                "inconclusive" if last is None else last.state,  # no data: nothing judged
                number(None if last is None else last.observed),
                number(None if last is None else last.reference),
                DASH if last is None else band(last.lower, last.upper),
                str(len(t.breaches)),
                str(len(t.alert_times)),
            )
        )
    plotted = tuple(
        Plot(
            f"trend-{t.check}",
            f"{t.check}: trend",
            plots.trend_plot(t, f"{review.clock}, UTC") if with_plots else "",
        )
        for t in v.trends
    )
    return Section(
        "Checks against their tolerance",
        3,
        (
            "Each check's overall stream at the end of the period; the plots show the "
            "candidate (solid), the baseline (dashed), the allowed band (green), breaches "
            "(red) and alerts.",
        ),
        (
            Table(
                (
                    "check",
                    "metric",
                    "action",
                    "tolerance",
                    "state",
                    "observed",
                    "reference",
                    "allowed",
                    "breaches",
                    "alerts",
                ),
                tuple(rows),
                frozenset(marked),
            ),
        ),
        plotted,
    )


def _alerts(v: VersionReview) -> Section:
    if not v.alerts:
        return Section("Alerts", 3, ("No alert in the period.",))
    rows = tuple(
        (
            a.alert_id,
            a.check,
            segment(a.segment),
            a.action,
            time(a.event_time),
            f"{number(a.observed)} vs {number(a.reference)} ({tolerance_text(a.tolerance)})",
            evidence_text(a.evidence),
            f"{duration(a.detect_seconds)}, "
            + (f"{a.detect_inferences:,} inferences" if a.detect_inferences is not None else DASH),
            a.outcome + (f" at {time(a.outcome_at)}" if a.outcome_at is not None else ""),
        )
        for a in v.alerts
    )
    marked = frozenset(i for i, a in enumerate(v.alerts) if a.outcome == "firing")
    return Section(
        "Alerts",
        3,
        (
            "Every alert whose event time lies in the period. Time to detect runs from the "
            "candidate's first inference to the alert's event time.",
        ),
        (
            Table(
                (
                    "alert id",
                    "check",
                    "segment",
                    "action",
                    "event time",
                    "observed vs reference (tolerance)",
                    "evidence",
                    "time to detect",
                    "what followed",
                ),
                rows,
                marked,
            ),
        ),
    )


def _segments(v: VersionReview) -> Section:
    if not v.segments:
        return Section("Segments that got worse", 3, ("No segment samples in the period.",))
    rows = tuple(
        (
            str(i + 1),
            s.check,
            s.segment,
            s.state + (" (breached)" if s.breached and s.state != "breach" else ""),
            number(s.observed),
            number(s.reference),
            band(s.lower, s.upper),
            number(s.worsening),
            number(s.candidate_seen),
        )
        for i, s in enumerate(v.segments)
    )
    return Section(
        "Segments that got worse",
        3,
        (
            "Ranked: breached in the period first; then by worsening (how far the candidate "
            "moved from the baseline towards the band's edge; 1 is on the edge), in tenths; "
            "then rarer segments (fewer candidate observations) first.",
        ),
        (
            Table(
                (
                    "rank",
                    "check",
                    "segment",
                    "state",
                    "observed",
                    "reference",
                    "allowed",
                    "worsening",
                    "candidate n",
                ),
                rows,
                frozenset(i for i, s in enumerate(v.segments) if s.breached),
            ),
        ),
    )


def sections(review: Review, *, with_plots: bool) -> list[Section]:
    """The review's sections in reading order (plots drawn only when ``with_plots``)."""
    out = [_overview(review)]
    for m in review.models:
        out += _model_head(m)
        for v in m.versions:
            out += [
                _verdict(m, v),
                _checks(review, v, with_plots),
                _alerts(v),
                _segments(v),
                tools_section(m, v, with_plots),
                latency_section(v, with_plots),
                signoff_section(m, v),
            ]
    return out
