"""How the review writes numbers, times, durations, bands and evidence, in both formats.

Examples
--------
>>> number(0.0123456), number(None), number(1234567.0)
('0.01235', '-', '1,234,567')
>>> duration(93_784.0), duration(59.0), duration(None)
('1d 2h 3m', '59s', '-')
>>> band(0.01, None)
'≥ 0.01'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from monitor.review.build import iso

__all__ = [
    "DASH",
    "band",
    "duration",
    "evidence_text",
    "number",
    "segment",
    "time",
    "tolerance_text",
]

DASH = "-"


def number(value: float | None) -> str:
    """A value to four significant figures (whole numbers with thousands separators)."""
    if value is None or not math.isfinite(value):
        return DASH
    if value == int(value) and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}"


def time(at: float | None) -> str:
    """An epoch time as RFC 3339 UTC, or a dash."""
    return DASH if at is None else iso(at)


def duration(seconds: float | None) -> str:
    """A duration in days, hours and minutes (seconds under a minute)."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return " ".join(p for p in parts if p) or "0m"


def segment(label: str) -> str:
    """A stream's segment, ``overall`` for the overall stream."""
    return label or "overall"


def band(lower: float | None, upper: float | None) -> str:
    """The allowed band as text."""
    if lower is None and upper is None:
        return DASH
    if upper is None:
        return f"≥ {number(lower)}"
    if lower is None:
        return f"≤ {number(upper)}"
    return f"{number(lower)} to {number(upper)}"


def tolerance_text(tolerance: Mapping[str, float]) -> str:
    """A check's tolerance as ``max_relative_change 0.25``."""
    return ", ".join(f"{k} {number(v)}" for k, v in sorted(tolerance.items())) or DASH


def evidence_text(evidence: Mapping[str, Any]) -> str:
    """The kept evidence in one line: statistic against threshold, events seen, source."""
    parts = []
    if "statistic" in evidence or "threshold" in evidence:
        parts.append(
            f"statistic {number(evidence.get('statistic'))} / threshold "
            f"{number(evidence.get('threshold'))}"
        )
    for key in ("detector", "distance", "tool"):
        if key in evidence:
            parts.append(f"{key} {evidence[key]}")
    seen = evidence.get("events_seen")
    if isinstance(seen, Mapping):
        parts.append(
            f"seen: baseline {number(seen.get('baseline'))}, "
            f"candidate {number(seen.get('candidate'))}"
        )
    source = evidence.get("source")
    if isinstance(source, Mapping):
        parts.append(
            "source "
            + ":".join(
                str(source[k]) if k == "topic" else number(source[k])
                for k in ("topic", "partition", "offset")
                if k in source
            )
        )
    since = evidence.get("since_breach")
    if isinstance(since, Mapping):
        parts.append(
            "since breach: " + ", ".join(f"{k} {number(v)}" for k, v in sorted(since.items()))
        )
    return "; ".join(parts) or DASH
