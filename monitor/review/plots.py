"""The review's plots as inline SVG strings (matplotlib's object API:
no pyplot, no display, no global figure registry).

One plot per check trend (the candidate's observed value, the baseline's
reference, the allowed band shaded, breaches shaded red, alerts marked), one
for the tool-use mix and one for latency. The output is deterministic — a
fixed ``svg.hashsalt``, no metadata (no date, no RDF), text drawn as paths (no
font files) — so the same history gives the same file; the XML prolog and
DOCTYPE (which names an external DTD) are dropped, since the SVG is inlined
in HTML.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from matplotlib import dates as mdates
from matplotlib import rc_context
from matplotlib.figure import Figure

from monitor.review.model import CheckTrend, LatencySummary, ToolShare

__all__ = ["latency_plot", "tool_plot", "trend_plot"]

_STYLE: Any = {  # rcParams keys are typed as literals; these are checked by matplotlib
    "svg.hashsalt": "shiftwatch-review",
    "svg.fonttype": "path",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
CANDIDATE_COLOUR = "#1f5fa8"
BASELINE_COLOUR = "#777777"
BAND_COLOUR = "#cfe8cf"
BREACH_COLOUR = "#f3b7b7"
ALERT_COLOUR = "#b00020"


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with rc_context(_STYLE):
        fig.savefig(
            buffer,
            format="svg",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
            bbox_inches="tight",
        )
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _days(values: Sequence[float]) -> list[float]:
    """Epoch seconds as matplotlib date numbers (days since its epoch, 1970-01-01 UTC)."""
    return [v / 86_400.0 for v in values]


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def trend_plot(trend: CheckTrend, time_label: str = "UTC") -> str:
    """The check's overall stream over the period, as an SVG string.

    The x axis is the date and time (UTC); ``time_label`` names its clock
    (event time from the history, wall clock from Prometheus).
    """
    with rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 2.2))
        ax = fig.subplots()
        s = trend.samples
        at = _days([x.at for x in s])
        lower = [_nan(x.lower) for x in s]
        upper = [_nan(x.upper) for x in s]
        if s:
            ax.fill_between(
                at, lower, upper, color=BAND_COLOUR, step="post", label="allowed band", lw=0
            )
            ax.plot(
                at,
                [_nan(x.reference) for x in s],
                color=BASELINE_COLOUR,
                lw=1,
                ls="--",
                label="baseline",
            )
            ax.plot(
                at, [_nan(x.observed) for x in s], color=CANDIDATE_COLOUR, lw=1.4, label="candidate"
            )
        for start, end in trend.breaches:
            a, b = _days([start, end])
            ax.axvspan(a, b, color=BREACH_COLOUR, alpha=0.6, lw=0)
        for t in _days(trend.alert_times):
            ax.axvline(t, color=ALERT_COLOUR, lw=1)
            ax.annotate(
                "alert",
                (t, 1.0),
                xycoords=("data", "axes fraction"),
                color=ALERT_COLOUR,
                fontsize=7,
                ha="left",
                va="top",
            )
        ax.set_title(f"{trend.check} ({trend.metric or 'check'}), overall", loc="left")
        locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
        ax.set_xlabel(time_label)
        ax.legend(loc="upper right", fontsize=7, frameon=False, ncols=3)
        if not s:
            ax.text(0.5, 0.5, "no samples in the period", transform=ax.transAxes, ha="center")
        return _svg(fig)


def tool_plot(tools: Sequence[ToolShare], baseline: str, candidate: str) -> str:
    """Actions per 1,000 inferences of each version, as an SVG string."""
    with rc_context(_STYLE):
        height = max(1.6, 0.28 * len(tools) + 0.8)
        fig = Figure(figsize=(7.0, height))
        ax = fig.subplots()
        labels = [
            f"{t.action} {t.tool}".strip() + (" (privileged)" if t.privileged else "")
            for t in tools
        ]
        y = list(range(len(tools)))
        ax.barh(
            [v + 0.2 for v in y],
            [t.baseline_per_1000 for t in tools],
            height=0.4,
            color=BASELINE_COLOUR,
            label=baseline,
        )
        ax.barh(
            [v - 0.2 for v in y],
            [t.candidate_per_1000 for t in tools],
            height=0.4,
            color=CANDIDATE_COLOUR,
            label=candidate,
        )
        ax.set_yticks(y, labels)
        for label, t in zip(ax.get_yticklabels(), tools, strict=True):
            if t.privileged or t.new:
                label.set_color(ALERT_COLOUR)
        ax.invert_yaxis()
        ax.set_xlabel("per 1,000 inferences")
        ax.set_title("Tool use and escalations", loc="left")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
        return _svg(fig)


def latency_plot(latency: Sequence[LatencySummary]) -> str:
    """Mean, median and 95th percentile latency of each version, as an SVG string."""
    with rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 1.9))
        ax = fig.subplots()
        stats = ("mean", "median", "p95")
        width = 0.8 / max(len(latency), 1)
        for i, lat in enumerate(latency):
            values = [_nan(lat.mean_ms), _nan(lat.median_ms), _nan(lat.p95_ms)]
            xs = [k + (i - (len(latency) - 1) / 2) * width for k in range(len(stats))]
            colour = BASELINE_COLOUR if lat.baseline else CANDIDATE_COLOUR
            ax.bar(xs, values, width=width, color=colour, label=lat.version)
        ax.set_xticks(range(len(stats)), stats)
        ax.set_ylabel("ms")
        ax.set_title("Inference latency", loc="left")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
        return _svg(fig)
