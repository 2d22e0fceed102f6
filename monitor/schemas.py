"""JSON Schemas of the three contracts: the policy file, an event, an alert record.

:func:`schema` builds each from the pydantic models that validate it
(:class:`~monitor.policy.Policy`, the event kinds of :mod:`monitor.events`,
:class:`~monitor.alerts.AlertRecord`), adds a description to every field, and
states in JSON Schema what the models check in code where JSON Schema can say
it: which ``where`` fields and which tolerance each metric takes, and the
CloudEvents envelope. The generated files are committed in ``docs/schemas/``;
``python -m monitor.schemas`` writes them again after a model changes, and
``shiftwatch schema NAME`` prints one.

Examples
--------
>>> schema("policy")["title"]
'shiftwatch policy file'
>>> schema("event")["$defs"]["InferenceEvent"]["properties"]["score"]["anyOf"][0]["maximum"]
1.0
>>> schema("alert")["properties"]["status"]["enum"]
['firing', 'resolved']
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import structlog
from pydantic import Field, TypeAdapter

from monitor.alerts import AlertRecord
from monitor.events import (
    KINDS,
    MAX_ID_LENGTH,
    MAX_SEGMENT_KEYS,
    ActionEvent,
    InferenceEvent,
    OutcomeEvent,
)
from monitor.policy import DISTANCE_METRICS, RATE_METRICS, WHERE_FIELDS, Metric, Policy

__all__ = ["DIALECT", "SCHEMA_NAMES", "main", "render", "schema", "write_all"]

log = structlog.get_logger("shiftwatch.schemas")

JsonSchema = dict[str, Any]

#: The contracts with a schema, in the order ``shiftwatch schema`` lists them.
SCHEMA_NAMES: tuple[str, ...] = ("policy", "event", "alert")
#: The JSON Schema dialect pydantic generates.
DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Where the committed schemas are published (their ``$id``).
BASE_URL = "https://raw.githubusercontent.com/shiftwatch/shiftwatch/main/docs/schemas/"
#: Where ``python -m monitor.schemas`` writes, relative to the working directory.
DEFAULT_DIR = Path("docs/schemas")

#: RFC 3339 date-time with an offset, as :mod:`monitor.events` accepts it: up to 9
#: fractional digits (read to the microsecond), ``T``, ``t`` or a space between date
#: and time, ``Z``, ``z`` or ``+hh:mm``/``-hh:mm``; the date must also exist.
RFC3339_PATTERN = (
    r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)

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
            "Runbook linked from this model's alerts; default: the alert-record section of "
            "docs/runbook.md."
        ),
        "checks": "The checks, at least one; each check name at most once per model.",
    },
    "Check": {
        "name": "Name of the check, unique within its model; a label of metrics and alerts.",
        "metric": "What the check compares between candidate and baseline.",
        "where": "Which events the check counts: event field -> value, all must be equal.",
        "distance": (
            "score_distribution only: ks (default, 50 bins), js (20 bins) or wasserstein (50 bins)."
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

_EVENT_FIELDS: dict[str, str] = {
    "id": (
        f"Unique id of this event (1-{MAX_ID_LENGTH} characters), whatever its kind; a repeated "
        "id is dropped as a duplicate."
    ),
    "time": (
        "When it happened: RFC 3339 with an offset (2026-11-02T09:00:00.123Z); at most "
        "`limits.max_future_seconds` (default 300) seconds ahead of the monitor's clock."
    ),
    "request_id": (
        "The request: actions and outcomes are joined to their inference by it "
        f"(1-{MAX_ID_LENGTH} characters)."
    ),
    "kind": "The event kind: inference, action or outcome.",
    "model": "The model, as named in the policy.",
    "version": "The model version that produced the inference (baseline or candidate).",
    "score": "The model's score: a finite number in [0, 1] (score_distribution).",
    "decision": "The decision taken, e.g. allow, review, deny (decision_rate, false negatives).",
    "segments": (
        f"Segment key -> value, at most {MAX_SEGMENT_KEYS} keys; the keys the policy names are "
        "fanned out into streams of their own."
    ),
    "latency_ms": "Inference latency in milliseconds: finite, at least 0 (latency).",
    "action": "What was done, e.g. tool_call, escalation, block (action_rate).",
    "tool": "The tool called (tool_distribution, novel_tool).",
    "privileged": "Whether the tool call used privileged credentials (a `where` field).",
    "status": "Outcome of the action, e.g. ok, denied (a `where` field).",
    "label": "The true label of the inference, e.g. fraud, legit (false_negative_rate).",
    "source": "Where the label came from, e.g. chargeback, audit.",
}

_OUTCOME_FIELDS: dict[str, str] = {
    "model": "The model; not used to route (the join by request_id is), but a key for the topic.",
    "version": "The version; informational, like model.",
}

_ENVELOPE_FIELDS: dict[str, str] = {
    "specversion": "CloudEvents version: 1.0.",
    "type": (
        "Event type; when `data` has no `kind`, its last dot-separated part names it, "
        "e.g. dev.shiftwatch.inference."
    ),
    "source": "Producer of the event (CloudEvents `source`), 1-256 characters; not used.",
    "id": "The event's id, unless `data` has its own.",
    "time": "The event's time, unless `data` has its own.",
    "datacontenttype": "Media type of `data`, e.g. application/json; not checked.",
    "data": "The shiftwatch event; `id`, `time` and `kind` may come from the envelope instead.",
}

_ALERT_FIELDS: dict[str, str] = {
    "alert_id": (
        "Id of the breach: 24 hex characters of SHA-256 over (model, version, check, segment, "
        "episode). The same in the firing and the resolved record, across restarts and replays."
    ),
    "status": "firing when the check crosses its threshold; resolved when it is back inside.",
    "check": "Name of the check in the policy.",
    "metric": "The check's metric.",
    "model": "The model.",
    "version": "The candidate version that breached.",
    "baseline": "The baseline version it is compared with.",
    "segment": "The stream: {} for the overall stream, else {segment key: value}.",
    "action": "The check's action (rollback, page, ...).",
    "severity": "critical, warning or info: the check's severity or its default.",
    "observed": (
        "The candidate's value: its rate (rate checks), its distance from the baseline "
        "(distribution checks), 1 (novel_tool); in a resolved record, since the breach. "
        "null if unknown."
    ),
    "reference": "The baseline's rate (rate checks); 0 for distribution and novel_tool checks.",
    "tolerance": "The check's tolerance, as in the policy (the bounds set only).",
    "event_time": (
        "Event time of the crossing: the end of the one-second event-time bucket whose release "
        "made the detector cross its threshold (RFC 3339)."
    ),
    "fired_at": (
        "When shiftwatch raised the alert: wall-clock UTC, or event_time in a replay (RFC 3339)."
    ),
    "owner": "The model's owner in the policy.",
    "controls": "The model's control references in the policy.",
    "evidence": (
        "The detector's evidence: detector, statistic, threshold, events_seen, source "
        "{topic, partition, offset}, and per detector detector_arl0, distance, tool, "
        "baseline_rate_upper_95; in a resolved record also since_breach."
    ),
    "rollback_to": "The version to roll back to: the baseline.",
    "runbook_url": "The model's runbook_url, or the alert-record section of docs/runbook.md.",
    "resolved_at": (
        "When the alert resolved (same clock as fired_at); null or absent while firing."
    ),
}


def _describe(definition: JsonSchema, descriptions: dict[str, str]) -> None:
    """Give each property of ``definition`` a description, keeping any the model has."""
    for name, prop in definition.get("properties", {}).items():
        if name in descriptions and "description" not in prop:
            prop["description"] = descriptions[name]


def _set(field: str) -> JsonSchema:
    """A schema for: ``field`` is present and not null (the models treat null as absent)."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


def _header(name: str, body: JsonSchema, title: str, description: str) -> JsonSchema:
    """``body`` with ``$schema``, ``$id``, title and description."""
    head: JsonSchema = {
        "$schema": DIALECT,
        "$id": f"{BASE_URL}{name}.schema.json",
        "title": title,
        "description": description,
    }
    return {**body, **head}


# --- policy -----------------------------------------------------------------------------


def _where_for(metric: Metric) -> JsonSchema:
    """The ``where`` keys ``metric`` understands (none: ``where`` must be empty)."""
    allowed = sorted(WHERE_FIELDS.get(metric, frozenset()))
    if not allowed:
        return {"maxProperties": 0}
    return {"propertyNames": {"enum": allowed}}


def _tolerance_for(metric: Metric) -> JsonSchema:
    """The tolerance bounds ``metric`` takes."""
    if metric in RATE_METRICS:
        shift = ["max_increase", "max_decrease", "max_relative_change"]
        return {"anyOf": [_set(f) for f in shift]}
    if metric in DISTANCE_METRICS:
        return _set("max_distance")
    fields = ["max_increase", "max_decrease", "max_relative_change", "max_distance"]
    return {"not": {"anyOf": [_set(f) for f in fields]}}


def _check_rules() -> list[JsonSchema]:
    """One if/then per metric: its ``where`` keys, tolerance, ``distance`` and calls."""
    rules: list[JsonSchema] = []
    for metric in Metric:
        then: JsonSchema = {
            "properties": {"where": _where_for(metric), "tolerance": _tolerance_for(metric)}
        }
        if metric in RATE_METRICS or metric in DISTANCE_METRICS:
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


def _policy() -> JsonSchema:
    body = Policy.model_json_schema()
    defs = body["$defs"]
    for name, descriptions in _POLICY_FIELDS.items():
        _describe(body if name == "Policy" else defs[name], descriptions)
    check = defs["Check"]
    check["properties"]["where"]["description"] = _where_description()
    check["properties"]["action"]["examples"] = ["rollback", "page", "ticket", "log"]
    check["allOf"] = _check_rules()
    shift = [_set(f) for f in ("max_increase", "max_decrease", "max_relative_change")]
    defs["Tolerance"]["not"] = {
        "anyOf": [
            {"allOf": [_set("max_distance"), {"anyOf": shift}]},
            {"allOf": [_set("max_relative_change"), {"anyOf": shift[:2]}]},
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
    return _header(
        "policy",
        body,
        "shiftwatch policy file",
        "The tolerances agreed before an optimised model version shipped, per model, with "
        "owners and actions (docs/policy.md). `shiftwatch policy check FILE` also checks what "
        "JSON Schema cannot: unique model and check names, and the baseline not among the "
        "candidates.",
    )


# --- events -----------------------------------------------------------------------------


def _time_schema(prop: JsonSchema) -> None:
    """Add the RFC 3339 pattern :mod:`monitor.events` enforces to a ``date-time`` string."""
    for node in [prop, *prop.get("anyOf", [])]:
        if node.get("format") == "date-time":
            node["pattern"] = RFC3339_PATTERN


def _envelope_data(kind_def: JsonSchema) -> JsonSchema:
    """An event kind as an envelope's ``data``: ``id``, ``time``, ``kind`` may be left out."""
    data = copy.deepcopy(kind_def)
    data["required"] = [f for f in data["required"] if f not in ("id", "time", "kind")]
    data["title"] = data["title"].replace("Event", "Data")
    data["description"] = (
        f"{kind_def['description']} As a CloudEvents envelope's data: id, time and kind may "
        "come from the envelope."
    )
    return data


def _envelope(data_refs: dict[str, str]) -> JsonSchema:
    """The CloudEvents 1.0 structured-mode envelope :mod:`monitor.events` accepts."""
    label = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
    time: JsonSchema = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
    _time_schema(time)
    properties: JsonSchema = {
        "specversion": {"const": "1.0", "type": "string"},
        "type": dict(label),
        "source": dict(label),
        "id": dict(label),
        "time": time,
        "datacontenttype": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "data": {"type": "object"},
    }
    for name, prop in properties.items():
        prop["description"] = _ENVELOPE_FIELDS[name]
    by_type = [
        {
            "properties": {
                "type": {"pattern": rf"(^|\.){kind}$"},
                "data": {"$ref": ref},
            }
        }
        for kind, ref in data_refs.items()
    ]
    return {
        "title": "CloudEvent",
        "description": (
            "A CloudEvents 1.0 structured-mode envelope (JSON event format) carrying one "
            "shiftwatch event in `data`. A JSON object with a `specversion` member is always "
            "read as an envelope."
        ),
        "type": "object",
        "required": ["specversion", "type", "source", "id", "data"],
        "properties": properties,
        "allOf": [
            {
                "if": {"properties": {"data": {"required": ["kind"]}}},
                "then": {
                    "properties": {"data": {"oneOf": [{"$ref": ref} for ref in data_refs.values()]}}
                },
                "else": {"anyOf": by_type},
            },
            {
                "if": {"required": ["time"], "properties": {"time": {"type": "string"}}},
                "else": {"properties": {"data": {"required": ["time"]}}},
            },
        ],
    }


def _event() -> JsonSchema:
    adapter: TypeAdapter[Any] = TypeAdapter(
        Annotated[InferenceEvent | ActionEvent | OutcomeEvent, Field(discriminator="kind")]
    )
    plain = adapter.json_schema()
    defs: JsonSchema = plain.pop("$defs")
    data_refs: dict[str, str] = {}
    for kind, model in zip(KINDS, (InferenceEvent, ActionEvent, OutcomeEvent), strict=True):
        definition = defs[model.__name__]
        _time_schema(definition["properties"]["time"])
        if kind == "outcome":
            _describe(definition, _OUTCOME_FIELDS)
        _describe(definition, _EVENT_FIELDS)
        data = _envelope_data(definition)
        defs[data["title"]] = data
        data_refs[kind] = f"#/$defs/{data['title']}"
    plain["not"] = {"required": ["specversion"]}
    plain["title"] = "Event"
    plain["description"] = "One shiftwatch event, its kind named by `kind`."
    defs["Event"] = plain
    defs["CloudEvent"] = _envelope(data_refs)
    body: JsonSchema = {
        "$defs": defs,
        "oneOf": [{"$ref": "#/$defs/Event"}, {"$ref": "#/$defs/CloudEvent"}],
    }
    return _header(
        "event",
        body,
        "shiftwatch event",
        "One Kafka message value or JSONL line: an inference, action or outcome event, or a "
        "CloudEvents 1.0 envelope carrying one (docs/events.md). Messages over "
        "`limits.max_message_bytes` (default 1 MiB) are rejected unread; unknown members are "
        "ignored.",
    )


# --- alerts -----------------------------------------------------------------------------


def _alert() -> JsonSchema:
    body = AlertRecord.model_json_schema()
    _describe(body, _ALERT_FIELDS)
    return _header(
        "alert",
        body,
        "shiftwatch alert record",
        "One breach of one check, in one segment of one candidate version: sent firing, then "
        "resolved with the same alert_id (docs/alerts.md).",
    )


_BUILDERS: dict[str, Callable[[], JsonSchema]] = {
    "policy": _policy,
    "event": _event,
    "alert": _alert,
}


def schema(name: str) -> JsonSchema:
    """The JSON Schema of one contract.

    Parameters
    ----------
    name
        ``policy``, ``event`` or ``alert``.

    Returns
    -------
    dict
        A JSON Schema (draft 2020-12), built afresh from the models.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`SCHEMA_NAMES`.
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"no schema {name!r}: choose one of {', '.join(SCHEMA_NAMES)}")
    return builder()


def render(name: str) -> str:
    """The schema ``name`` as committed: indented, keys sorted, ending with a newline.

    >>> render("alert").endswith("}\\n")
    True
    """
    return json.dumps(schema(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(directory: str | Path = DEFAULT_DIR) -> list[Path]:
    """Write ``<name>.schema.json`` for every contract into ``directory``; return the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SCHEMA_NAMES:
        path = out / f"{name}.schema.json"
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m monitor.schemas [DIR]``: regenerate the committed schemas."""
    from monitor.logging import configure_logging

    parser = argparse.ArgumentParser(
        prog="python -m monitor.schemas",
        description="Write the JSON Schemas of the policy, event and alert contracts.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=str(DEFAULT_DIR),
        help=f"where to write them (default: {DEFAULT_DIR}, from the repository's root)",
    )
    args = parser.parse_args(argv)
    configure_logging("info")
    for path in write_all(args.directory):
        log.info("schema written", path=str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
