"""The JSON Schema of an event: the three event kinds, or a CloudEvents envelope of one.

:func:`event_schema` takes pydantic's schema of the event kinds of
:mod:`monitor.events` (discriminated by ``kind``), describes every field, adds
the RFC 3339 pattern the events' times must match, and adds the CloudEvents
1.0 structured-mode envelope the decoder also accepts, whose ``data`` may
leave ``id``, ``time`` and ``kind`` to the envelope.

Examples
--------
>>> event_schema()["$defs"]["InferenceEvent"]["properties"]["score"]["anyOf"][0]["maximum"]
1.0
>>> sorted(event_schema()["$defs"]["CloudEvent"]["required"])
['data', 'id', 'source', 'specversion', 'type']
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from monitor.contracts.common import RFC3339_PATTERN, JsonSchema, describe, header
from monitor.events import (
    KINDS,
    MAX_ID_LENGTH,
    MAX_SEGMENT_KEYS,
    ActionEvent,
    InferenceEvent,
    OutcomeEvent,
)

__all__ = ["event_schema"]

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


def event_schema() -> JsonSchema:
    """The JSON Schema of one event, plain or in a CloudEvents envelope.

    Returns
    -------
    dict
        The schema, with its header, built afresh from the models.
    """
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
            describe(definition, _OUTCOME_FIELDS)
        describe(definition, _EVENT_FIELDS)
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
    return header(
        "event",
        body,
        "shiftwatch event",
        "One Kafka message value or JSONL line: an inference, action or outcome event, or a "
        "CloudEvents 1.0 envelope carrying one (docs/events.md). Messages over "
        "`limits.max_message_bytes` (default 1 MiB) are rejected unread; unknown members are "
        "ignored.",
    )
