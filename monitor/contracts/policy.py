"""The JSON Schema of the policy file, from :class:`~monitor.policy.Policy`.

:func:`policy_schema` takes pydantic's schema of the policy models, describes
every field, and adds what the models check in code where JSON Schema can say
it: per metric, which ``where`` keys, which tolerance bounds and which
optional fields a check takes; which tolerance bounds exclude each other; and
that a false_negative_rate check needs negative decisions and positive labels.

Examples
--------
>>> policy_schema()["title"]
'shiftwatch policy file'
>>> len(policy_schema()["$defs"]["Check"]["allOf"]) == len(Metric)
True
"""

from __future__ import annotations

from monitor.contracts.common import JsonSchema, describe, header, present
from monitor.policy import Policy
from monitor.vocabulary import DISTANCE_METRICS, SHIFT_METRICS, WHERE_FIELDS, Metric

__all__ = ["policy_schema"]

_POLICY_FIELDS: dict[str, dict[str, str]] = {
    "Policy": {
        "version": "Format version of the policy file: always 1.",
        "models": "The models watched, at least one; each model name at most once.",
    },
    "ModelPolicy": {
        "name": "The model, as named in the events' `model` field.",
        "owner": "Who is accountable for the residual risk; copied into every alert record.",
        "baseline": (
            "The version the candidates are compared with, and the one to roll back to "
            "(`rollback_to` in alert records)."
        ),
        "candidates": (
            "The versions under watch. Omitted or null: every version other than the baseline "
            "(at most 8 at a time). Must not list the baseline."
        ),
        "segments": (
            "Keys of the inferences' `segments` map to fan out: each value of each key is a "
            "stream of its own, besides the overall stream. At most 16 keys; values beyond "
            "`limits.segment_cap` (default 20) per key fold into `other`."
        ),
        "negative_decisions": (
            "Decisions counted as negative (e.g. allow). Needed, with positive_labels, by a "
            "false_negative_rate check."
        ),
        "positive_labels": (
            "Outcome labels that make a negative decision a false negative (e.g. fraud)."
        ),
        "false_alarm": "The false-alarm budget, shared by every check, segment and candidate.",
        "controls": (
            "Control references (NIST CSF, NIST AI RMF, OWASP...) copied into alert records."
        ),
        "runbook_url": (
            "Runbook linked from this model's alerts (runbook_url of the alert record and "
            "the Alertmanager annotation); default: none."
        ),
        "checks": "The checks, at least one; each check name at most once per model.",
    },
    "Check": {
        "name": "Name of the check, unique within its model; a label of metrics and alerts.",
        "metric": "What the check compares between candidate and baseline.",
        "where": "Which events the check counts: event field -> value, all must be equal.",
        "distance": (
            "score_distribution only: ks (default; up to 200 bins at the baseline's quantiles),"
            " js (up to 32 bins) or wasserstein (up to 200 bins)."
        ),
        "tolerance": "How far the candidate may move from the baseline.",
        "action": (
            "What a breach asks for. `rollback` makes the verdict fail and the alert "
            "ShiftwatchRollback; any other name (page, ticket, log) is passed on as the "
            "alert's `action` for your routing."
        ),
        "severity": "Alert severity; default critical for a rollback check, warning otherwise.",
    },
    "Tolerance": {
        "max_increase": (
            "Rate checks: largest allowed increase over the baseline's rate, in the rate's "
            "own units (0.005 = half a percentage point; actions per inference for "
            "action_rate)."
        ),
        "max_decrease": "Rate checks: largest allowed decrease below the baseline's rate.",
        "max_relative_change": (
            "Rate checks: largest allowed change relative to the baseline's rate, both ways "
            "(0.25 = 25%). Not together with max_increase or max_decrease."
        ),
        "max_distance": (
            "Distribution checks (score_distribution, latency, tool_distribution): largest "
            "allowed distance between the candidate's and the baseline's distributions, in "
            "(0, 1]. The only tolerance they take."
        ),
    },
    "FalseAlarm": {},
}


def _where_for(metric: Metric) -> JsonSchema:
    """The ``where`` keys ``metric`` understands (none: ``where`` must be empty)."""
    allowed = sorted(WHERE_FIELDS.get(metric, frozenset()))
    if not allowed:
        return {"maxProperties": 0}
    return {"propertyNames": {"enum": allowed}}


def _tolerance_for(metric: Metric) -> JsonSchema:
    """The tolerance bounds ``metric`` takes."""
    if metric in SHIFT_METRICS:
        shift = ["max_increase", "max_decrease", "max_relative_change"]
        return {"anyOf": [present(f) for f in shift]}
    if metric in DISTANCE_METRICS:
        return present("max_distance")
    fields = ["max_increase", "max_decrease", "max_relative_change", "max_distance"]
    return {"not": {"anyOf": [present(f) for f in fields]}}


def _check_rules() -> list[JsonSchema]:
    """One if/then per metric: its ``where`` keys, tolerance, ``distance`` and calls."""
    rules: list[JsonSchema] = []
    for metric in Metric:
        then: JsonSchema = {
            "properties": {"where": _where_for(metric), "tolerance": _tolerance_for(metric)}
        }
        if metric in SHIFT_METRICS or metric in DISTANCE_METRICS:
            then["required"] = ["tolerance"]
        if metric is not Metric.SCORE_DISTRIBUTION:
            then["properties"]["distance"] = {"type": "null"}
        if metric is not Metric.NOVEL_TOOL:
            then["properties"]["min_baseline_calls"] = {"type": "null"}
        when = {"required": ["metric"], "properties": {"metric": {"const": metric.value}}}
        rules.append({"if": when, "then": then})
    return rules


def _where_description() -> str:
    """The ``where`` keys of every metric, for the field's description."""
    parts = []
    for metric in Metric:
        allowed = ", ".join(sorted(WHERE_FIELDS.get(metric, frozenset()))) or "none"
        parts.append(f"{metric.value}: {allowed}")
    return f"{_POLICY_FIELDS['Check']['where']} Keys per metric: {'; '.join(parts)}."


def policy_schema() -> JsonSchema:
    """The JSON Schema of the policy file.

    Returns
    -------
    dict
        The schema, with its header, built afresh from the models.
    """
    body = Policy.model_json_schema()
    defs = body["$defs"]
    for name, descriptions in _POLICY_FIELDS.items():
        describe(body if name == "Policy" else defs[name], descriptions)
    check = defs["Check"]
    check["properties"]["where"]["description"] = _where_description()
    check["properties"]["action"]["examples"] = ["rollback", "page", "ticket", "log"]
    check["allOf"] = _check_rules()
    shift = [present(f) for f in ("max_increase", "max_decrease", "max_relative_change")]
    defs["Tolerance"]["not"] = {
        "anyOf": [
            {"allOf": [present("max_distance"), {"anyOf": shift}]},
            {"allOf": [present("max_relative_change"), {"anyOf": shift[:2]}]},
        ]
    }
    defs["ModelPolicy"]["allOf"] = [
        {
            "if": {
                "required": ["checks"],
                "properties": {
                    "checks": {
                        "contains": {"properties": {"metric": {"const": "false_negative_rate"}}}
                    }
                },
            },
            "then": {
                "required": ["negative_decisions", "positive_labels"],
                "properties": {
                    "negative_decisions": {"minItems": 1},
                    "positive_labels": {"minItems": 1},
                },
            },
        }
    ]
    return header(
        "policy",
        body,
        "shiftwatch policy file",
        "The tolerances agreed before an optimised model version shipped, per model, with "
        "owners and actions (docs/policy.md). `shiftwatch policy check FILE` also checks what "
        "JSON Schema cannot: unique model and check names, and the baseline not among the "
        "candidates.",
    )
