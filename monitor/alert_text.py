"""The words of an alert: a summary fit for its action, and a description a person reads.

The alert record keeps its numbers; Alertmanager's annotations and the log
line say them in sentences: a tolerance such as ``{'max_relative_change': 0.5}``
reads "within ±50% of the baseline's rate", and only a ``rollback`` alert tells
the reader to roll back.
"""

from __future__ import annotations

from monitor.alerts import AlertRecord

__all__ = ["describe_tolerance", "description", "segment_text", "summary"]

_DISTANCE_METRICS = {"score_distribution", "tool_distribution", "latency"}


def _g(x: float) -> str:
    return f"{x:.4g}"


def describe_tolerance(metric: str, tolerance: dict[str, float]) -> str:
    """The tolerance in words.

    >>> describe_tolerance("decision_rate", {"max_relative_change": 0.5})
    "within ±50% of the baseline's rate"
    >>> describe_tolerance("action_rate", {"max_increase": 0.002})
    "at most 0.002 above the baseline's rate"
    >>> describe_tolerance("score_distribution", {"max_distance": 0.1})
    "at most 0.1 away from the baseline's distribution"
    >>> describe_tolerance("novel_tool", {})
    'no tool the baseline never called'
    """
    if metric == "novel_tool":
        return "no tool the baseline never called"
    if "max_distance" in tolerance:
        what = "distribution" if metric in _DISTANCE_METRICS else "value"
        return f"at most {_g(tolerance['max_distance'])} away from the baseline's {what}"
    if "max_relative_change" in tolerance:
        return f"within ±{100 * tolerance['max_relative_change']:.4g}% of the baseline's rate"
    up, down = tolerance.get("max_increase"), tolerance.get("max_decrease")
    if up is not None and down is not None:
        return f"between {_g(down)} below and {_g(up)} above the baseline's rate"
    if up is not None:
        return f"at most {_g(up)} above the baseline's rate"
    if down is not None:
        return f"at most {_g(down)} below the baseline's rate"
    return "the baseline's behaviour"


def segment_text(segment: dict[str, str]) -> str:
    """``""`` for the overall stream, else ``" in segment lang=ga"``."""
    label = ",".join(f"{k}={v}" for k, v in sorted(segment.items()))
    return f" in segment {label}" if label else ""


def summary(alert: AlertRecord) -> str:
    """One line that says what happened and what the action asks for, and nothing more."""
    head = f"{alert.model} {alert.version}: check {alert.check} is outside its tolerance"
    head += segment_text(alert.segment)
    if alert.status == "resolved":
        return f"{alert.model} {alert.version}: check {alert.check} is back inside its tolerance"
    asks = {
        "rollback": f"roll back to {alert.rollback_to or alert.baseline}",
        "page": f"{alert.owner} to decide",
        "ticket": f"a ticket for {alert.owner}",
        "log": "recorded for the review",
    }
    return f"{head}: {asks.get(alert.action, alert.action)}"


def description(alert: AlertRecord) -> str:
    """The evidence in sentences: the value against the tolerance, the test, the data."""
    ev = alert.evidence
    tolerance = describe_tolerance(alert.metric, alert.tolerance)
    if alert.metric == "novel_tool":
        tool = ev.get("tool")
        value = f"The candidate called {tool!r}, a tool" if tool else "The candidate called a tool"
        parts = [f"{value} the baseline never called (allowed: {tolerance})."]
    elif alert.metric in _DISTANCE_METRICS:
        parts = [
            f"The {alert.metric.replace('_', ' ')} of {alert.version} is {_num(alert.observed)} "
            f"away from {alert.baseline}'s; allowed: {tolerance}."
        ]
    else:
        parts = [
            f"The {alert.metric.replace('_', ' ')} of {alert.version} is {_num(alert.observed)} "
            f"against {_num(alert.reference)} for {alert.baseline}; allowed: {tolerance}."
        ]
    statistic, threshold = ev.get("statistic"), ev.get("threshold")
    if statistic is not None and threshold is not None:
        parts.append(
            f"Evidence statistic {_num(statistic)} crossed the threshold {_num(threshold)} "
            "calibrated to the policy's false-alarm budget."
        )
    seen = ev.get("events_seen")
    if isinstance(seen, dict) and seen:
        parts.append(
            f"Seen: {_num(seen.get('candidate'))} candidate and "
            f"{_num(seen.get('baseline'))} baseline observations."
        )
    parts.append(f"First crossed at event time {alert.event_time}. Owner: {alert.owner}.")
    return " ".join(parts)


def _num(x: object) -> str:
    return _g(x) if isinstance(x, int | float) else "n/a"
