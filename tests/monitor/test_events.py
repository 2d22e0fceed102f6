"""Tests of the event contract: ``decode`` accepts valid events, rejects the rest with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events import (
    KINDS,
    MAX_ID_LENGTH,
    ActionEvent,
    InferenceEvent,
    OutcomeEvent,
    Rejection,
    decode,
)

TIME = "2026-01-01T00:00:00Z"
MISSING = object()

VALID: dict[str, dict[str, Any]] = {
    "inference": {
        "kind": "inference",
        "id": "i1",
        "time": TIME,
        "request_id": "r1",
        "model": "fraud-scorer",
        "version": "v7-int8",
    },
    "action": {
        "kind": "action",
        "id": "a1",
        "time": TIME,
        "request_id": "r1",
        "model": "fraud-scorer",
        "version": "v7-int8",
        "action": "escalation",
    },
    "outcome": {
        "kind": "outcome",
        "id": "o1",
        "time": TIME,
        "request_id": "r1",
        "label": "fraud",
    },
}


def event(base: str, /, **changes: Any) -> dict[str, Any]:
    """Return a valid ``base`` event with ``changes`` applied (``MISSING`` removes a field)."""
    out = dict(VALID[base])
    for key, value in changes.items():
        if value is MISSING:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def encode(obj: Any) -> bytes:
    """Serialise like a producer would, allowing NaN/Infinity tokens through."""
    return json.dumps(obj, allow_nan=True).encode()


def rejected(raw: bytes | str) -> Rejection:
    """Decode ``raw`` and insist it was rejected."""
    result = decode(raw)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def envelope(**changes: Any) -> dict[str, Any]:
    """Return a valid CloudEvents 1.0 envelope around an action, with ``changes`` applied."""
    out: dict[str, Any] = {
        "specversion": "1.0",
        "type": "dev.shiftwatch.action",
        "source": "/agents/refunds",
        "id": "ce-1",
        "time": "2026-01-01T02:00:00+02:00",
        "datacontenttype": "application/json",
        "data": {
            "request_id": "r9",
            "model": "fraud-scorer",
            "version": "v7-int8",
            "action": "tool_call",
            "tool": "refund.issue",
        },
    }
    for key, value in changes.items():
        if value is MISSING:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# --- message-level rejections -----------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", ""], ids=["bytes", "str"])
def test_empty_message_is_rejected_as_empty(raw: bytes | str) -> None:
    """An empty message is rejected with code ``empty``."""
    rej = rejected(raw)
    assert rej.code == "empty"
    assert "empty" in rej.reason
    assert rej.kind == "unknown"


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b"{'kind': 'inference'}", b'{"kind": "inference",}', b"\xff\xfe\x00", b" "],
)
def test_invalid_json_is_rejected_as_invalid_json(raw: bytes) -> None:
    """A message that is not JSON is rejected with code ``invalid_json``."""
    rej = rejected(raw)
    assert rej.code == "invalid_json"
    assert "JSON" in rej.reason
    assert rej.kind == "unknown"


@pytest.mark.parametrize(
    ("raw", "type_name"),
    [
        (b"[1, 2]", "list"),
        (b"[]", "list"),
        (b"42", "int"),
        (b"0.5", "float"),
        (b'"inference"', "str"),
        (b"true", "bool"),
        (b"null", "NoneType"),
    ],
)
def test_non_object_json_is_rejected_as_not_object(raw: bytes, type_name: str) -> None:
    """Valid JSON that is not an object is rejected with code ``not_object`` naming its type."""
    rej = rejected(raw)
    assert rej.code == "not_object"
    assert type_name in rej.reason
    assert rej.kind == "unknown"


# --- kind -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["inference", "action", "outcome"])
def test_missing_kind_is_rejected_as_missing_field(kind: str) -> None:
    """An event without ``kind`` is rejected with code ``missing_field`` naming ``kind``."""
    rej = rejected(encode(event(kind, kind=MISSING)))
    assert rej.code == "missing_field"
    assert rej.reason.startswith("kind")
    assert rej.kind == "unknown"


def test_null_kind_is_rejected_as_missing_field() -> None:
    """A ``kind`` of JSON null counts as missing."""
    rej = rejected(encode(event("inference", kind=None)))
    assert rej.code == "missing_field"
    assert "kind" in rej.reason


@pytest.mark.parametrize("kind", ["prediction", "Inference", "INFERENCE", "", "inference "])
def test_unknown_kind_is_rejected_as_unknown_kind(kind: str) -> None:
    """A ``kind`` that is not one of the three kinds is rejected with code ``unknown_kind``."""
    rej = rejected(encode(event("inference", kind=kind)))
    assert rej.code == "unknown_kind"
    assert "kind" in rej.reason
    assert repr(kind) in rej.reason
    assert rej.kind == "unknown"


@pytest.mark.parametrize(
    ("kind", "type_name"),
    [(1, "int"), (1.5, "float"), (True, "bool"), (["inference"], "list"), ({"k": "v"}, "dict")],
)
def test_non_string_kind_is_rejected_as_unknown_kind(kind: Any, type_name: str) -> None:
    """A ``kind`` that is not a string is rejected with code ``unknown_kind`` naming its type."""
    rej = rejected(encode(event("inference", kind=kind)))
    assert rej.code == "unknown_kind"
    assert "kind" in rej.reason
    assert type_name in rej.reason
    assert rej.kind == "unknown"


def test_unknown_kind_reason_is_bounded() -> None:
    """A huge unknown ``kind`` is truncated in the reason rather than echoed in full."""
    rej = rejected(encode(event("inference", kind="x" * 10_000)))
    assert rej.code == "unknown_kind"
    assert len(rej.reason) < 200


# --- required fields --------------------------------------------------------------------------

REQUIRED = [
    ("inference", "id"),
    ("inference", "time"),
    ("inference", "request_id"),
    ("inference", "model"),
    ("inference", "version"),
    ("action", "id"),
    ("action", "time"),
    ("action", "request_id"),
    ("action", "model"),
    ("action", "version"),
    ("action", "action"),
    ("outcome", "id"),
    ("outcome", "time"),
    ("outcome", "request_id"),
    ("outcome", "label"),
]


@pytest.mark.parametrize(("kind", "field"), REQUIRED)
def test_missing_required_field_is_rejected(kind: str, field: str) -> None:
    """Each required field, when absent, is rejected as ``missing_field`` naming the field."""
    rej = rejected(encode(event(kind, **{field: MISSING})))
    assert rej.code == "missing_field"
    assert rej.reason.startswith(f"{field}:")
    assert "required" in rej.reason.lower()
    assert rej.kind == kind


def test_several_missing_fields_are_all_named() -> None:
    """When several fields are missing the reason names every one of them."""
    rej = rejected(encode(event("action", model=MISSING, version=MISSING, action=MISSING)))
    assert rej.code == "missing_field"
    for field in ("model", "version", "action"):
        assert f"{field}:" in rej.reason
    assert rej.kind == "action"


@pytest.mark.parametrize("field", ["model", "version"])
def test_outcome_may_omit_model_and_version(field: str) -> None:
    """Outcomes take model and version from the joined inference, so they are optional."""
    result = decode(encode(event("outcome", **{field: MISSING})))
    assert isinstance(result, OutcomeEvent)
    assert getattr(result, field) is None


# --- wrong types and out-of-range values ------------------------------------------------------

INVALID = [
    pytest.param("inference", "score", "0.5", id="score-as-string"),
    pytest.param("inference", "score", True, id="score-as-bool-true"),
    pytest.param("inference", "score", False, id="score-as-bool-false"),
    pytest.param("inference", "score", [0.5], id="score-as-list"),
    pytest.param("inference", "score", float("nan"), id="score-nan"),
    pytest.param("inference", "score", float("inf"), id="score-infinity"),
    pytest.param("inference", "score", float("-inf"), id="score-minus-infinity"),
    pytest.param("inference", "score", -0.1, id="score-below-0"),
    pytest.param("inference", "score", 1.5, id="score-above-1"),
    pytest.param("inference", "score", 1.0000001, id="score-just-above-1"),
    pytest.param("inference", "score", 10**400, id="score-huge-int"),
    pytest.param("inference", "decision", 1, id="decision-as-number"),
    pytest.param("inference", "decision", True, id="decision-as-bool"),
    pytest.param("inference", "decision", "", id="decision-empty"),
    pytest.param("inference", "segments", {"lang": 1}, id="segment-value-int"),
    pytest.param("inference", "segments", {"lang": None}, id="segment-value-null"),
    pytest.param("inference", "segments", {"lang": True}, id="segment-value-bool"),
    pytest.param("inference", "segments", {"lang": ["en"]}, id="segment-value-list"),
    pytest.param("inference", "segments", ["lang"], id="segments-as-list"),
    pytest.param("inference", "segments", "lang=en", id="segments-as-string"),
    pytest.param("inference", "latency_ms", -1, id="latency-negative"),
    pytest.param("inference", "latency_ms", -0.001, id="latency-slightly-negative"),
    pytest.param("inference", "latency_ms", float("nan"), id="latency-nan"),
    pytest.param("inference", "latency_ms", float("inf"), id="latency-infinity"),
    pytest.param("inference", "latency_ms", "12", id="latency-as-string"),
    pytest.param("inference", "latency_ms", True, id="latency-as-bool"),
    pytest.param("inference", "model", 7, id="model-as-number"),
    pytest.param("inference", "version", 7, id="version-as-number"),
    pytest.param("inference", "request_id", 123, id="request-id-as-number"),
    pytest.param("inference", "id", 123, id="id-as-number"),
    pytest.param("action", "privileged", 1, id="privileged-as-1"),
    pytest.param("action", "privileged", 0, id="privileged-as-0"),
    pytest.param("action", "privileged", "true", id="privileged-as-string"),
    pytest.param("action", "action", 3, id="action-as-number"),
    pytest.param("action", "tool", {"name": "x"}, id="tool-as-object"),
    pytest.param("action", "status", 200, id="status-as-number"),
    pytest.param("outcome", "label", 1, id="label-as-number"),
    pytest.param("outcome", "label", True, id="label-as-bool"),
    pytest.param("outcome", "source", 5, id="source-as-number"),
]


@pytest.mark.parametrize(("kind", "field", "value"), INVALID)
def test_invalid_value_is_rejected_naming_the_field(kind: str, field: str, value: Any) -> None:
    """A wrongly typed or out-of-range value is rejected as ``invalid_field`` naming the field."""
    rej = rejected(encode(event(kind, **{field: value})))
    assert rej.code == "invalid_field"
    assert rej.reason.startswith(field)
    assert rej.kind == kind


@pytest.mark.parametrize(
    ("literal", "reason_part"),
    [("NaN", "finite"), ("Infinity", "finite"), ("-Infinity", "finite")],
)
def test_non_finite_json_tokens_in_score_are_rejected(literal: str, reason_part: str) -> None:
    """The non-standard JSON tokens NaN and ±Infinity are not accepted as a score."""
    body = json.dumps(event("inference"))[:-1] + f', "score": {literal}}}'
    rej = rejected(body.encode())
    assert rej.code == "invalid_field"
    assert rej.reason.startswith("score")
    assert reason_part in rej.reason


def test_segment_value_error_names_the_segment_key() -> None:
    """A non-string segment value is reported under ``segments.<key>``."""
    rej = rejected(encode(event("inference", segments={"lang": "en", "tier": 3})))
    assert rej.code == "invalid_field"
    assert "segments.tier" in rej.reason


def test_mixed_missing_and_invalid_fields_are_invalid_field() -> None:
    """A message with both missing and invalid fields has code ``invalid_field`` and names both."""
    rej = rejected(encode(event("inference", score="high", model=MISSING)))
    assert rej.code == "invalid_field"
    assert "score:" in rej.reason
    assert "model:" in rej.reason


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("yesterday", id="word"),
        pytest.param("", id="empty"),
        pytest.param("2026-13-01T00:00:00Z", id="month-13"),
        pytest.param("2026-02-30T00:00:00Z", id="feb-30"),
        pytest.param("2026-01-01T25:00:00Z", id="hour-25"),
        pytest.param("20260101T000000Z", id="basic-format"),
        pytest.param("01/01/2026 00:00:00 +00:00", id="us-format"),
        pytest.param("2026-01-01T00:00:00+02", id="short-offset"),
    ],
)
def test_unparseable_time_is_rejected(value: str) -> None:
    """A ``time`` that is not a date-time is rejected as ``invalid_field`` naming ``time``."""
    rej = rejected(encode(event("inference", time=value)))
    assert rej.code == "invalid_field"
    assert rej.reason.startswith("time")


@pytest.mark.parametrize(
    "value",
    ["2026-01-01T00:00:00", "2026-01-01T00:00:00.123", "2026-01-01 00:00:00", "2026-01-01"],
)
def test_time_without_offset_is_rejected(value: str) -> None:
    """A ``time`` without a UTC offset is ambiguous and rejected, naming ``time``."""
    rej = rejected(encode(event("action", time=value)))
    assert rej.code == "invalid_field"
    assert rej.reason.startswith("time")
    assert rej.kind == "action"


@pytest.mark.parametrize("value", [1_767_225_600, 1_767_225_600.5, 0, -1])
def test_epoch_number_time_is_rejected(value: float) -> None:
    """A ``time`` given as an epoch number is not RFC 3339 and is rejected."""
    rej = rejected(encode(event("outcome", time=value)))
    assert rej.code == "invalid_field"
    assert rej.reason.startswith("time")
    assert "RFC 3339" in rej.reason


@pytest.mark.parametrize("value", ["1767225600", "1767225600.5", "0"])
def test_epoch_number_in_a_string_time_is_rejected(value: str) -> None:
    """A ``time`` that is an epoch number written as a string is not RFC 3339 and is rejected."""
    rej = rejected(encode(event("outcome", time=value)))
    assert rej.code == "invalid_field"
    assert rej.reason.startswith("time")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00+00:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-12-31T19:00:00-05:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.250Z", datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_with_offsets_are_accepted(value: str, expected: datetime) -> None:
    """RFC 3339 times with ``Z`` or a numeric offset decode to the same instant, time-zone aware."""
    result = decode(encode(event("inference", time=value)))
    assert isinstance(result, InferenceEvent)
    assert result.time == expected
    assert result.time.tzinfo is not None


# --- identifiers ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", ["id", "request_id"])
def test_empty_identifier_is_rejected(kind: str, field: str) -> None:
    """An empty ``id`` or ``request_id`` is rejected as ``invalid_field`` naming the field."""
    rej = rejected(encode(event(kind, **{field: ""})))
    assert rej.code == "invalid_field"
    assert rej.reason.startswith(field)
    assert rej.kind == kind


@pytest.mark.parametrize("field", ["id", "request_id", "model", "version"])
def test_over_long_identifier_is_rejected(field: str) -> None:
    """An identifier longer than 256 characters is rejected as ``invalid_field`` naming it."""
    rej = rejected(encode(event("inference", **{field: "x" * (MAX_ID_LENGTH + 1)})))
    assert rej.code == "invalid_field"
    assert rej.reason.startswith(field)
    assert "256" in rej.reason


def test_identifier_of_exactly_max_length_is_accepted() -> None:
    """An ``id`` of exactly 256 characters is still accepted."""
    result = decode(encode(event("inference", id="x" * MAX_ID_LENGTH)))
    assert isinstance(result, InferenceEvent)
    assert len(result.id) == MAX_ID_LENGTH


def test_rejection_reason_does_not_echo_the_input() -> None:
    """The reason names the field and the problem but not the offending payload."""
    secret = "s3cr3t-" + "x" * 300
    rej = rejected(encode(event("inference", id=secret)))
    assert secret not in rej.reason


# --- CloudEvents envelope ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"specversion": "0.3"}, "specversion", id="specversion-0.3"),
        pytest.param({"specversion": 1.0}, "specversion", id="specversion-number"),
        pytest.param({"data": MISSING}, "data", id="missing-data"),
        pytest.param({"data": [1, 2]}, "data", id="data-list"),
        pytest.param({"data": "payload"}, "data", id="data-string"),
        pytest.param({"data": None}, "data", id="data-null"),
        pytest.param({"type": MISSING}, "type", id="missing-type"),
        pytest.param({"source": MISSING}, "source", id="missing-source"),
        pytest.param({"id": MISSING}, "id", id="missing-envelope-id"),
        pytest.param({"id": ""}, "id", id="empty-envelope-id"),
        pytest.param({"time": "noon"}, "time", id="bad-envelope-time"),
    ],
)
def test_bad_cloudevents_envelope_is_rejected(changes: dict[str, Any], field: str) -> None:
    """A malformed CloudEvents envelope is rejected as ``invalid_envelope`` naming the field."""
    rej = rejected(encode(envelope(**changes)))
    assert rej.code == "invalid_envelope"
    assert "CloudEvents" in rej.reason
    assert f"{field}:" in rej.reason


def test_cloudevents_data_without_kind_id_time_takes_them_from_the_envelope() -> None:
    """Kind comes from the ``type`` suffix, ``id`` and ``time`` from the envelope."""
    result = decode(encode(envelope()))
    assert isinstance(result, ActionEvent)
    assert result.kind == "action"
    assert result.id == "ce-1"
    assert result.time == datetime(2026, 1, 1, tzinfo=UTC)
    assert result.time.utcoffset() == timedelta(hours=2)
    assert result.request_id == "r9"
    assert result.tool == "refund.issue"


@pytest.mark.parametrize("kind", KINDS)
def test_cloudevents_type_suffix_selects_each_kind(kind: str) -> None:
    """Each kind can be named by the last dotted part of the CloudEvents ``type``."""
    data = event(kind, kind=MISSING, id=MISSING, time=MISSING)
    result = decode(encode(envelope(type=f"dev.shiftwatch.{kind}", data=data)))
    assert not isinstance(result, Rejection), result
    assert result.kind == kind
    assert result.id == "ce-1"


def test_cloudevents_data_fields_win_over_the_envelope() -> None:
    """``kind``, ``id`` and ``time`` present in ``data`` are kept, not overwritten."""
    data = event("inference", id="inner", time="2025-06-01T00:00:00Z")
    result = decode(encode(envelope(data=data)))
    assert isinstance(result, InferenceEvent)
    assert result.id == "inner"
    assert result.time == datetime(2025, 6, 1, tzinfo=UTC)


def test_cloudevents_with_unknown_type_and_no_kind_is_missing_kind() -> None:
    """An envelope whose type suffix is not a kind and whose data has no kind is rejected."""
    rej = rejected(encode(envelope(type="com.example.order")))
    assert rej.code == "missing_field"
    assert "kind" in rej.reason


def test_cloudevents_without_time_anywhere_is_missing_time() -> None:
    """With no time in the envelope nor in data, the event is rejected for its missing ``time``."""
    rej = rejected(encode(envelope(time=MISSING)))
    assert rej.code == "missing_field"
    assert rej.reason.startswith("time")
    assert rej.kind == "action"


def test_cloudevents_invalid_data_is_rejected_with_the_data_kind() -> None:
    """A valid envelope carrying an invalid event is rejected for the event's field."""
    data = event("inference", kind=MISSING, id=MISSING, time=MISSING, score=2.0)
    rej = rejected(encode(envelope(type="dev.shiftwatch.inference", data=data)))
    assert rej.code == "invalid_field"
    assert rej.reason.startswith("score")
    assert rej.kind == "inference"


# --- accepted events --------------------------------------------------------------------------


def test_minimal_inference_is_accepted_with_defaults() -> None:
    """An inference with only its required fields decodes with empty optional fields."""
    result = decode(encode(event("inference")))
    assert isinstance(result, InferenceEvent)
    assert (result.model, result.version, result.request_id) == ("fraud-scorer", "v7-int8", "r1")
    assert result.score is None
    assert result.decision is None
    assert result.segments == {}
    assert result.latency_ms is None


@pytest.mark.parametrize("score", [0, 0.0, 0.5, 1, 1.0, 1e-12])
def test_scores_in_the_unit_interval_are_accepted(score: float) -> None:
    """Scores anywhere in [0, 1], including both ends and integers, are accepted."""
    result = decode(encode(event("inference", score=score)))
    assert isinstance(result, InferenceEvent)
    assert result.score == pytest.approx(score)
    assert isinstance(result.score, float)


def test_full_inference_is_accepted() -> None:
    """An inference with every optional field decodes them all."""
    raw = encode(
        event(
            "inference",
            score=0.73,
            decision="deny",
            segments={"lang": "ga", "amount_band": "high"},
            latency_ms=12.5,
        )
    )
    result = decode(raw)
    assert isinstance(result, InferenceEvent)
    assert result.score == pytest.approx(0.73)
    assert result.decision == "deny"
    assert result.segments == {"lang": "ga", "amount_band": "high"}
    assert result.latency_ms == pytest.approx(12.5)


@pytest.mark.parametrize("latency", [0, 0.0, 3, 1e6])
def test_non_negative_latency_is_accepted(latency: float) -> None:
    """Zero and positive latencies are accepted."""
    result = decode(encode(event("inference", latency_ms=latency)))
    assert isinstance(result, InferenceEvent)
    assert result.latency_ms == pytest.approx(latency)


@pytest.mark.parametrize("privileged", [True, False, None])
def test_full_action_is_accepted(privileged: bool | None) -> None:
    """An action with tool, privileged and status decodes them all."""
    raw = encode(
        event("action", action="tool_call", tool="refund.issue", privileged=privileged, status="ok")
    )
    result = decode(raw)
    assert isinstance(result, ActionEvent)
    assert result.action == "tool_call"
    assert result.tool == "refund.issue"
    assert result.privileged is privileged
    assert result.status == "ok"


@pytest.mark.parametrize(
    "action", ["tool_call", "escalation", "access_decision", "block", "custom"]
)
def test_any_action_name_is_accepted(action: str) -> None:
    """The ``action`` field takes the listed names and any other string."""
    result = decode(encode(event("action", action=action)))
    assert isinstance(result, ActionEvent)
    assert result.action == action
    assert result.tool is None
    assert result.privileged is None


def test_full_outcome_is_accepted() -> None:
    """An outcome with source, model and version decodes them all."""
    raw = encode(event("outcome", source="chargeback", model="fraud-scorer", version="v7-fp32"))
    result = decode(raw)
    assert isinstance(result, OutcomeEvent)
    assert result.label == "fraud"
    assert result.source == "chargeback"
    assert (result.model, result.version) == ("fraud-scorer", "v7-fp32")


@pytest.mark.parametrize("kind", KINDS)
def test_decode_accepts_str_and_bytes_alike(kind: str) -> None:
    """The same JSON decodes to equal events from ``str`` and from ``bytes``."""
    text = json.dumps(event(kind))
    assert decode(text) == decode(text.encode())
    assert not isinstance(decode(text), Rejection)


@pytest.mark.parametrize("kind", KINDS)
def test_extra_unknown_fields_are_ignored(kind: str) -> None:
    """Unknown fields are dropped, not rejected, so producers can add fields safely."""
    result = decode(encode(event(kind, trace_id="abc", extra={"nested": [1, 2]}, score_v2="x")))
    assert not isinstance(result, Rejection), result
    assert result.kind == kind
    assert not hasattr(result, "trace_id")
    assert "extra" not in result.model_dump()


def test_extra_fields_meant_for_another_kind_are_ignored() -> None:
    """An outcome carrying an inference-only field such as ``score`` is still accepted."""
    result = decode(encode(event("outcome", score="not-a-number", segments=5)))
    assert isinstance(result, OutcomeEvent)
    assert result.label == "fraud"


@pytest.mark.parametrize("kind", KINDS)
def test_decoded_events_are_immutable(kind: str) -> None:
    """Decoded events are frozen so routing state cannot be changed by accident."""
    result = decode(encode(event(kind)))
    assert not isinstance(result, Rejection)
    with pytest.raises(ValueError, match="frozen"):
        result.id = "changed"  # type: ignore[misc]


# --- Rejection.kind ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (encode(event("inference", score=3)), "inference"),
        (encode(event("action", privileged="yes")), "action"),
        (encode(event("outcome", label=MISSING)), "outcome"),
        (encode(event("inference", kind="bogus")), "unknown"),
        (encode(event("inference", kind=MISSING)), "unknown"),
        (b"[]", "unknown"),
        (b"{", "unknown"),
        (b"", "unknown"),
        (encode(envelope(specversion="0.3")), "unknown"),
    ],
)
def test_rejection_kind_is_the_event_kind_when_it_could_be_read(raw: bytes, kind: str) -> None:
    """``Rejection.kind`` is the event's kind when known, else ``unknown``."""
    assert rejected(raw).kind == kind


def test_rejection_codes_are_a_bounded_set() -> None:
    """Every code produced across the rejection cases is one of the documented labels."""
    samples = [
        b"",
        b"{",
        b"[]",
        b"{}",
        encode(event("inference", kind="x")),
        encode(event("inference", id=MISSING)),
        encode(event("inference", score=-1)),
        encode(envelope(specversion="0.3")),
    ]
    codes = {rejected(raw).code for raw in samples}
    assert codes == {
        "empty",
        "invalid_json",
        "not_object",
        "missing_field",
        "unknown_kind",
        "invalid_field",
        "invalid_envelope",
    }


# --- never raises -----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)

FIELD_NAMES = st.sampled_from(
    [
        "kind",
        "id",
        "time",
        "request_id",
        "model",
        "version",
        "score",
        "decision",
        "segments",
        "latency_ms",
        "action",
        "tool",
        "privileged",
        "status",
        "label",
        "source",
        "specversion",
        "type",
        "data",
    ]
)

EVENT_LIKE = st.fixed_dictionaries(
    {"kind": st.sampled_from([*KINDS, "x"])},
    optional={"id": st.text(max_size=300), "time": st.text() | st.integers()},
).flatmap(
    lambda base: st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=8).map(
        lambda extra: {**base, **extra}
    )
)


def check_result(result: object) -> None:
    """Assert ``result`` is an event or a well-formed rejection."""
    if isinstance(result, Rejection):
        assert result.code
        assert isinstance(result.reason, str)
        assert result.reason
        assert result.kind in (*KINDS, "unknown")
    else:
        assert isinstance(result, InferenceEvent | ActionEvent | OutcomeEvent)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_decode_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    """Any byte string decodes to an event or a rejection, never an exception."""
    check_result(decode(raw))


@settings(max_examples=500, deadline=None)
@given(JSON_VALUES)
def test_decode_never_raises_on_arbitrary_json(value: object) -> None:
    """Any JSON value, including NaN and Infinity tokens, decodes to an event or a rejection.

    A value that is not an object is ``not_object``; an object without ``kind``
    (and not a CloudEvents envelope) is ``missing_field``.
    """
    text = json.dumps(value, allow_nan=True)
    for raw in (text, text.encode()):
        result = decode(raw)
        check_result(result)
        if not isinstance(value, dict):
            assert isinstance(result, Rejection) and result.code == "not_object"
        elif "kind" not in value and "specversion" not in value:
            assert isinstance(result, Rejection) and result.code == "missing_field"


@settings(max_examples=300, deadline=None)
@given(EVENT_LIKE)
def test_decode_never_raises_on_event_like_objects(value: dict[str, Any]) -> None:
    """Objects with the contract's field names but arbitrary values never make decode raise."""
    check_result(decode(json.dumps(value, allow_nan=True)))


@settings(max_examples=100, deadline=None)
@given(
    score=st.floats(min_value=0.0, max_value=1.0),
    latency=st.floats(min_value=0.0, max_value=1e9),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_valid_inferences_round_trip(score: float, latency: float, offset_minutes: int) -> None:
    """Any in-range score and latency with any UTC offset is accepted unchanged."""
    tz = timezone(timedelta(minutes=offset_minutes))
    when = datetime(2026, 3, 1, 12, 0, tzinfo=tz)
    raw = encode(event("inference", score=score, latency_ms=latency, time=when.isoformat()))
    result = decode(raw)
    assert isinstance(result, InferenceEvent)
    assert result.score == score
    assert result.latency_ms == latency
    assert result.time == when


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    """JSON nested beyond the recursion limit is rejected rather than crashing the consumer."""
    rej = rejected(b"[" * 100_000 + b"]" * 100_000)
    assert rej.code in {"invalid_json", "not_object"}
