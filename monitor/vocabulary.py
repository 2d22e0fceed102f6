"""What a policy can name: the metrics a check compares, the actions a breach asks for,
and the ``where`` fields (with their types) each metric filters on."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DEFAULT_AGE_DIVISORS",
    "DISTANCE_METRICS",
    "LABEL_METRICS",
    "MAX_LABEL_AGES",
    "RATE_METRICS",
    "SHIFT_METRICS",
    "WHERE_FIELDS",
    "WHERE_TYPES",
    "Action",
    "Metric",
]


class Metric(StrEnum):
    """What a check compares between candidate and baseline (docs/policy.md, "Metrics")."""

    SCORE_DISTRIBUTION = "score_distribution"
    DECISION_RATE = "decision_rate"
    FALSE_NEGATIVE_RATE = "false_negative_rate"
    ACTION_RATE = "action_rate"
    TOOL_DISTRIBUTION = "tool_distribution"
    NOVEL_TOOL = "novel_tool"
    LATENCY = "latency"
    EXPECTED_FALSE_NEGATIVE_RATE = "expected_false_negative_rate"


#: Label ages judged by default: the horizon divided by these (1 h and 9 h of 3 days).
DEFAULT_AGE_DIVISORS = (72.0, 8.0)
#: At most this many label ages per model (each one takes a share of the false-alarm budget).
MAX_LABEL_AGES = 4

RATE_METRICS = frozenset({Metric.DECISION_RATE, Metric.FALSE_NEGATIVE_RATE, Metric.ACTION_RATE})
DISTANCE_METRICS = frozenset({Metric.SCORE_DISTRIBUTION, Metric.TOOL_DISTRIBUTION, Metric.LATENCY})
#: Metrics whose tolerance bounds a rate's shift: the rate checks and the label-free proxy.
SHIFT_METRICS = RATE_METRICS | {Metric.EXPECTED_FALSE_NEGATIVE_RATE}
#: Metrics that need negative_decisions and positive_labels.
LABEL_METRICS = frozenset({Metric.FALSE_NEGATIVE_RATE, Metric.EXPECTED_FALSE_NEGATIVE_RATE})


class Action(StrEnum):
    """What a breach asks for (docs/policy.md, "Actions and severity")."""

    ROLLBACK = "rollback"
    PAGE = "page"
    TICKET = "ticket"
    LOG = "log"


#: Fields of ``where`` each metric understands.
WHERE_FIELDS: dict[Metric, frozenset[str]] = {
    Metric.DECISION_RATE: frozenset({"decision"}),
    Metric.ACTION_RATE: frozenset({"action", "tool", "privileged", "status"}),
    Metric.NOVEL_TOOL: frozenset({"privileged", "action", "status"}),
    Metric.TOOL_DISTRIBUTION: frozenset({"privileged", "status"}),
}
#: The type of each ``where`` field, as events carry it (docs/events.md, strict types).
WHERE_TYPES: dict[str, type] = {
    "decision": str,
    "action": str,
    "tool": str,
    "status": str,
    "privileged": bool,
}
