"""Event contract: the three event kinds and the CloudEvents 1.0 envelope.

Every message is decoded by :func:`decode`, which returns either a validated
event or a :class:`Rejection` carrying a short, machine-readable ``code`` (a
bounded metric label) and a precise human ``reason`` naming the field.
Validation is strict: no string-to-number or number-to-bool coercion, scores
must be finite and in [0, 1], times must be RFC 3339 with an offset.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "KINDS",
    "ActionEvent",
    "Event",
    "InferenceEvent",
    "OutcomeEvent",
    "Rejection",
    "decode",
]

KINDS: tuple[str, ...] = ("inference", "action", "outcome")

#: Upper bound on identifier lengths; longer ones are hostile or broken input.
MAX_ID_LENGTH = 256
#: Keys of an inference's ``segments`` map; a larger map is rejected, not truncated.
MAX_SEGMENT_KEYS = 32

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Milliseconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_string(value: object) -> object:
    # Events are decoded with json.loads and validated in (strict) Python mode,
    # where pydantic would otherwise also take epoch numbers (even as strings).
    if isinstance(value, datetime):
        return value  # built in Python, not decoded: AwareDatetime still checks the offset
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 string, got {type(value).__name__}")
    if not _RFC3339.fullmatch(value):
        raise ValueError(
            f"{value[:40]!r} is not RFC 3339 (e.g. 2026-11-02T09:00:00.123Z or +01:00 offset)"
        )
    return value


Timestamp = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_rfc3339_string)]


class _EventBase(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    id: Identifier
    time: Timestamp
    request_id: Identifier


class InferenceEvent(_EventBase):
    """One prediction made by one model version."""

    kind: Literal["inference"]
    model: Identifier
    version: Identifier
    score: Probability | None = None
    decision: Label | None = None
    segments: dict[Label, Label] = Field(default_factory=dict, max_length=MAX_SEGMENT_KEYS)
    latency_ms: Milliseconds | None = None


class ActionEvent(_EventBase):
    """A downstream action caused by an inference: tool call, escalation, block..."""

    kind: Literal["action"]
    model: Identifier
    version: Identifier
    action: Label
    tool: Label | None = None
    privileged: bool | None = None
    status: Label | None = None


class OutcomeEvent(_EventBase):
    """The true label of an inference, learned later (often days later)."""

    kind: Literal["outcome"]
    label: Label
    source: Label | None = None
    model: Identifier | None = None
    version: Identifier | None = None


Event: TypeAlias = InferenceEvent | ActionEvent | OutcomeEvent

_MODELS: dict[str, type[_EventBase]] = {
    "inference": InferenceEvent,
    "action": ActionEvent,
    "outcome": OutcomeEvent,
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {k: TypeAdapter(m) for k, m in _MODELS.items()}


class _CloudEvent(BaseModel):
    """CloudEvents 1.0 structured-mode envelope (JSON event format, section 3)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    specversion: Literal["1.0"]
    type: Label
    source: Label
    id: Identifier
    time: Timestamp | None = None
    datacontenttype: str | None = None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was not accepted.

    ``code`` is one of a fixed set (safe as a metric label); ``reason`` is the
    full explanation for the dead-letter record; ``kind`` is the event kind
    when it could be read, else ``"unknown"``.
    """

    code: str
    reason: str
    kind: str = "unknown"


def _format_errors(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in e["loc"]) or "(event)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _from_cloudevent(obj: dict[str, Any]) -> dict[str, Any] | Rejection:
    try:
        env = _CloudEvent.model_validate(obj)
    except ValidationError as err:
        return Rejection("invalid_envelope", f"CloudEvents envelope: {_format_errors(err)}")
    data = dict(env.data)
    if "kind" not in data:
        # A type such as "dev.shiftwatch.inference" names the kind in its last part.
        suffix = env.type.rsplit(".", 1)[-1]
        if suffix in _MODELS:
            data["kind"] = suffix
    data.setdefault("id", env.id)
    if env.time is not None:
        data.setdefault("time", env.time.isoformat())
    return data


def decode(
    raw: bytes | str, *, max_bytes: int | None = None, not_after: float | None = None
) -> Event | Rejection:
    """Decode and validate one message.

    Parameters
    ----------
    raw
        The message value: one JSON object, either a shiftwatch event or a
        CloudEvents 1.0 structured-mode envelope carrying one in ``data``.
    max_bytes
        Larger messages are rejected unread (code ``too_large``).
    not_after
        Events stamped later than this (a POSIX time: the host's clock plus
        ``limits.max_future_seconds``) are rejected (code ``future_time``): one
        such event would move event time forward and make honest events late.

    Returns
    -------
    Event or Rejection
        The validated event, or why it was rejected.

    Examples
    --------
    >>> decode(b'{"kind": "outcome", "id": "o1", "time": "2026-01-01T00:00:00Z",'
    ...        b' "request_id": "r1", "label": "fraud"}').label
    'fraud'
    >>> decode(b'{"kind": "inference"}').code
    'missing_field'
    """
    if not raw:
        return Rejection("empty", "empty message")
    if max_bytes is not None and len(raw) > max_bytes:
        return Rejection(
            "too_large",
            f"message of {len(raw)} bytes is over the {max_bytes}-byte cap "
            "(limits.max_message_bytes)",
        )
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return Rejection("invalid_json", f"not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return Rejection("not_object", f"expected a JSON object, got {type(obj).__name__}")
    if "specversion" in obj:
        converted = _from_cloudevent(obj)
        if isinstance(converted, Rejection):
            return converted
        obj = converted
    kind = obj.get("kind")
    if kind is None:
        return Rejection(
            "missing_field", "kind: Field required (one of inference, action, outcome)"
        )
    if not isinstance(kind, str) or kind not in _MODELS:
        shown = kind if isinstance(kind, str) else type(kind).__name__
        return Rejection(
            "unknown_kind", f"kind: {str(shown)[:64]!r} is not one of inference, action, outcome"
        )
    try:
        event: Event = _ADAPTERS[kind].validate_python(obj)
    except ValidationError as err:
        types = {e["type"] for e in err.errors()}
        code = "missing_field" if types == {"missing"} else "invalid_field"
        return Rejection(code, _format_errors(err), kind)
    if not_after is not None and event.time.timestamp() > not_after:
        ahead = event.time.timestamp() - time.time()
        return Rejection(
            "future_time",
            f"time: {event.time.isoformat()} is {ahead:.0f}s ahead of this host's clock "
            "(clock skew? the cap is limits.max_future_seconds)",
            event.kind,
        )
    return event
