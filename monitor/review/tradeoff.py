"""The review's sections on what the change traded and who decides: tool use and
escalations, the latency gained against the risk taken, and the sign-off."""

from __future__ import annotations

from monitor.review import plots
from monitor.review.layout import Plot, Section, Table
from monitor.review.model import ModelReview, VersionReview
from monitor.review.text import (
    DASH,
    number,
    time,
)

__all__ = ["latency_section", "signoff_section", "tools_section"]


def tools_section(m: ModelReview, v: VersionReview, with_plots: bool) -> Section:
    if not v.tools:
        return Section("Tool use and escalations", 3, ("No actions recorded in the period.",))
    rows = tuple(
        (
            t.action,
            t.tool or DASH,
            ", ".join(f for f, on in (("privileged", t.privileged), ("new", t.new)) if on) or DASH,
            number(t.baseline_per_1000),
            number(t.candidate_per_1000),
            f"{100 * t.baseline_share:.1f}%",
            f"{100 * t.candidate_share:.1f}%",
        )
        for t in v.tools
    )
    svg = plots.tool_plot(v.tools, m.baseline, v.version) if with_plots else ""
    plotted = (Plot("tools", "tool use", svg),)
    return Section(
        "Tool use and escalations",
        3,
        (
            "Per 1,000 inferences of each version, and as a share of its actions. Privileged "
            "tools, and actions the baseline never took (new), are marked.",
        ),
        (
            Table(
                (
                    "action",
                    "tool",
                    "flags",
                    f"{m.baseline} /1000",
                    f"{v.version} /1000",
                    f"{m.baseline} share",
                    f"{v.version} share",
                ),
                rows,
                frozenset(i for i, t in enumerate(v.tools) if t.privileged or t.new),
            ),
        ),
        plotted,
    )


def latency_section(v: VersionReview, with_plots: bool) -> Section:
    base = next((lat for lat in v.latency if lat.baseline), None)
    cand = next((lat for lat in v.latency if lat.version == v.version), None)
    lines = []
    if base is not None and cand is not None and base.median_ms and cand.median_ms:
        gain = 1.0 - cand.median_ms / base.median_ms
        lines.append(
            f"Median latency {number(cand.median_ms)} ms against the baseline's "
            f"{number(base.median_ms)} ms: {100 * gain:.0f}% "
            f"{'faster' if gain >= 0 else 'slower'}."
        )
    elif base is not None and cand is not None and base.mean_ms and cand.mean_ms:
        gain = 1.0 - cand.mean_ms / base.mean_ms
        lines.append(f"Mean latency {100 * abs(gain):.0f}% {'lower' if gain >= 0 else 'higher'}.")
    breaches = sum(len(t.breaches) for t in v.trends)
    rollback = sum(1 for a in v.alerts if a.action == "rollback")
    firing = sum(1 for a in v.alerts if a.outcome == "firing")
    lines.append(
        f"Against it: {len(v.alerts)} alert(s) in the period ({rollback} with action rollback, "
        f"{firing} still firing), {breaches} breach span(s) on overall streams, "
        f"{sum(1 for s in v.segments if s.breached)} segment stream(s) breached."
    )
    rows = tuple(
        (
            lat.version + (" (baseline)" if lat.baseline else ""),
            number(float(lat.count)),
            number(lat.mean_ms),
            number(lat.median_ms),
            number(lat.p95_ms),
        )
        for lat in v.latency
    )
    plotted: tuple[Plot, ...] = ()
    if v.latency:
        svg = plots.latency_plot(v.latency) if with_plots else ""
        plotted = (Plot("latency", "latency", svg),)
    return Section(
        "Latency gained, risk taken",
        3,
        tuple(lines),
        (Table(("version", "inferences", "mean ms", "median ms", "p95 ms"), rows),),
        plotted,
    )


def signoff_section(m: ModelReview, v: VersionReview) -> Section:
    latest = v.decision
    lines = [
        f"Latest decision: {latest.decision} by {latest.by} at {time(latest.at)}: {latest.note}"
        if latest is not None
        else "No decision recorded yet.",
        "Record one with: shiftwatch review sign --state DIR "
        f"--model {m.model} --version {v.version} --decision accept|rollback|retune "
        "--by NAME --note TEXT",
    ]
    tables: tuple[Table, ...] = ()
    if v.signoffs:
        tables = (
            Table(
                ("at", "decision", "by", "note"),
                tuple((time(s.at), s.decision, s.by, s.note) for s in v.signoffs),
            ),
        )
    return Section("Sign-off", 3, tuple(lines), tables)
