"""Tests of the review's data model built from a week of history held in memory."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from monitor.history.rows import SignOff
from monitor.review.build import ReviewError, build_review
from monitor.review.latency import quantile_from_bins
from monitor.review.markdown import render_markdown
from monitor.review.period import parse_duration, parse_until
from tests.monitor.review_history import DAY, EDGES, HOUR, START, week

END = START + 7 * DAY


def test_segments_rank_breach_first_then_worsening_then_rare_first() -> None:
    """lang=ga (breached) leads; fr and en tie on worsening, so the rarer fr comes first."""
    history, _ = week()
    v = build_review(history, START, END).models[0].versions[0]
    assert [(s.check, s.segment) for s in v.segments] == [
        ("deny-rate", "lang=ga"),
        ("deny-rate", "lang=fr"),
        ("deny-rate", "lang=en"),
    ]
    assert v.segments[0].breached and v.segments[0].worsening > 1.0
    assert v.segments[1].candidate_seen < v.segments[2].candidate_seen


def test_time_to_detect_counts_time_and_inferences_from_the_candidate_start() -> None:
    """The escalation alert fired 1.6 days after the candidate's first inference."""
    history, _ = week()
    v = build_review(history, START, END).models[0].versions[0]
    esc = next(a for a in v.alerts if a.alert_id == "a-esc")
    assert esc.detect_seconds == pytest.approx(1.6 * DAY)
    hours = int(1.6 * DAY // HOUR)
    assert esc.detect_inferences == 230 * hours
    assert (esc.outcome, esc.outcome_at) == ("resolved", START + 3.5 * DAY)
    ga = next(a for a in v.alerts if a.alert_id == "a-ga")
    assert ga.outcome == "firing" and ga.segment == "lang=ga"


def test_time_to_detect_counts_from_before_the_period() -> None:
    """A period that starts after the candidate did still counts its inferences from its start."""
    history, _ = week()
    v = build_review(history, START + DAY, END).models[0].versions[0]
    esc = next(a for a in v.alerts if a.alert_id == "a-esc")
    assert esc.detect_inferences == 230 * int(1.6 * DAY // HOUR)


def test_the_period_verdict_is_the_last_change_at_or_before_until() -> None:
    """At day 2 the candidate fails; at the week's end a page leaves it inconclusive."""
    history, _ = week()
    mid = build_review(history, START + 1.9 * DAY, START + 2 * DAY).models[0].versions[0]
    assert (mid.verdict, mid.verdict_since) == ("fail", START + 1.6 * DAY)
    assert mid.verdict_changes == ()
    end = build_review(history, START, END).models[0].versions[0]
    assert end.verdict == "inconclusive"
    assert [c.verdict for c in end.verdict_changes] == [
        "inconclusive",
        "pass",
        "fail",
        "pass",
        "inconclusive",
    ]


def test_latency_quantiles_from_bins_match_numpy_within_one_bin() -> None:
    """Median and p95 from the binned counts are within one bin's width ratio of numpy's."""
    history, values = week()
    latency = build_review(history, START, END, latency_edges=EDGES).models[0].versions[0].latency
    ratio = EDGES[1] / EDGES[0]
    for lat in latency:
        exact = values[lat.version]
        assert lat.count == len(exact)
        assert lat.mean_ms == pytest.approx(float(exact.mean()), rel=1e-9)
        for got, q in ((lat.median_ms, 50), (lat.p95_ms, 95)):
            want = float(np.percentile(exact, q))
            assert got is not None and want / ratio <= got <= want * ratio
    assert [lat.baseline for lat in latency] == [True, False]


def test_quantile_from_bins_edges() -> None:
    """Underflow interpolates from 0, overflow reports the last edge, a mismatch is refused."""
    assert quantile_from_bins([4, 0, 0], [10.0, 20.0], 0.5) == pytest.approx(5.0)
    assert quantile_from_bins([0, 0, 3], [10.0, 20.0], 0.5) == 20.0
    with pytest.raises(ValueError, match="3 latency bins for 3 edges"):
        quantile_from_bins([1, 2, 3], [1.0, 2.0, 3.0], 0.5)


def test_tool_mix_flags_privileged_and_new_tools() -> None:
    """iam.grant_admin is privileged and new; escalations show the candidate's drop."""
    history, _ = week()
    tools = build_review(history, START, END).models[0].versions[0].tools
    grant = next(t for t in tools if t.tool == "iam.grant_admin")
    assert grant.privileged and grant.new and grant.baseline_count == 0
    esc = next(t for t in tools if t.action == "escalation")
    assert esc.candidate_per_1000 < esc.baseline_per_1000
    assert all(t.privileged for t in tools[:2])


def test_baseline_drift_kept_apart() -> None:
    """The baseline's drift on day 4 is one spell naming its check."""
    history, _ = week()
    m = build_review(history, START, END).models[0]
    assert [(d.since, d.until, d.checks) for d in m.drift] == [
        (START + 96 * HOUR, START + 107 * HOUR, ("escalations",))
    ]


def test_signoff_is_shown_and_a_rollback_signoff_rolls_back_a_firing_alert() -> None:
    """The latest decision is in the report; a rollback after the page marks it rolled back."""
    history, _ = week()
    history.decisions.append(
        SignOff("fraud-scorer", "v7-int8", END + HOUR, "rollback", "dana", "ga denials")
    )
    review = build_review(history, START, END)
    v = review.models[0].versions[0]
    assert v.decision is not None and v.decision.by == "dana"
    ga = next(a for a in v.alerts if a.alert_id == "a-ga")
    assert (ga.outcome, ga.outcome_at) == ("rolled back", END + HOUR)
    text = render_markdown(review)
    assert "Latest decision: rollback by dana" in text and "ga denials" in text


def test_a_fail_verdict_and_stopped_traffic_is_a_rollback() -> None:
    """Still firing, verdict fail, and the baseline served on for a day: rolled back."""
    history, _ = week()
    history.verdicts = [v for v in history.verdicts if v.at <= START + 1.6 * DAY]
    history.alert_rows = [a for a in history.alert_rows if a.status == "firing"]
    stop = START + 2 * DAY
    history.spans = [replace(s, last_at=stop) if not s.baseline else s for s in history.spans]
    v = build_review(history, START, END).models[0].versions[0]
    esc = next(a for a in v.alerts if a.alert_id == "a-esc")
    assert (esc.outcome, esc.outcome_at) == ("rolled back", stop)


def test_clear_errors() -> None:
    """An unknown model gets a did-you-mean; an empty period says what the history covers."""
    history, _ = week()
    with pytest.raises(ReviewError, match="did you mean 'fraud-scorer'"):
        build_review(history, START, END, model="fraud-scorr")
    with pytest.raises(ReviewError, match=r"no candidate version 'v7-int4'.*did you mean"):
        build_review(history, START, END, version="v7-int4")
    with pytest.raises(ReviewError, match="history covers 2026-11-02T10:00:00Z to 2026-11-09"):
        build_review(history, START + 30 * DAY, START + 31 * DAY)


def test_period_parsing() -> None:
    """Durations and --until: units, 'now', RFC 3339 with an offset; anything else is refused."""
    assert parse_duration("2w") == 14 * DAY
    assert parse_until("2026-11-02T10:00:00+01:00", latest=0.0, now=0.0) == START
    for bad in ("7", "-1d", "7 days", "0h"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="RFC 3339 with an offset"):
        parse_until("2026-11-02T10:00:00", latest=0.0, now=0.0)
