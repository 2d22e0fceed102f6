"""The decoder's fast path: msgspec for the lines it is sure of, pydantic for the rest.

:func:`monitor.events.decode` is the contract: pydantic, strict, with a
precise reason for every rejection. It costs about 5 µs a line, most of it in
``json.loads`` and pydantic's per-field validation. :func:`decode_batch`
first tries each line with msgspec (Structs that mirror the pydantic models'
constraints, decoded in C), then builds the same pydantic event from the
decoded fields without validating them a second time. A line the fast path
does not accept, or might read differently from ``json.loads`` + pydantic,
goes through :func:`~monitor.events.decode` unchanged, which gives the exact
rejection (or the event, if the fast path was merely unsure).

The fast path declines, before decoding, every line that is:

- empty or over ``max_bytes`` (the contract's own codes and wording);
- not plain ASCII, or holds a backslash: ``json.loads`` reads bytes with
  ``surrogatepass`` and ignores nothing, msgspec skips unknown members
  without checking their UTF-8, and escapes can spell a key twice
  (``"\\u006bind"``);
- a CloudEvents envelope (it has a ``"specversion"`` member), or one that
  names ``"kind"`` more than once (msgspec reads the first tag, ``json.loads``
  keeps the last member);
- nested more than :data:`MAX_BRACKETS` brackets in all (``json.loads`` and
  msgspec give up at different depths).

After decoding it declines a time that does not match :data:`FAST_TIME` (RFC
3339 as the contract takes it, minus the lower-case ``t``/``z`` that
``datetime.fromisoformat`` refuses and with offset minutes below 60, which
``fromisoformat`` alone would not check), an infinite latency, and an event
past ``not_after`` (the contract then words the ``future_time`` rejection).
Times are read with ``datetime.fromisoformat``, which, like pydantic,
truncates fractions to the microsecond (msgspec's own datetime rounds).

Equivalence is proved by a property test
(``tests/monitor/test_fast_decode.py``): on random valid and hostile lines
both paths agree on accept or reject and on every field's value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from msgspec.structs import asdict

from monitor.events import (
    MAX_ID_LENGTH,
    MAX_SEGMENT_KEYS,
    ActionEvent,
    Event,
    InferenceEvent,
    OutcomeEvent,
    Rejection,
    decode,
)

__all__ = ["FAST_TIME", "MAX_BRACKETS", "decode_batch", "decode_fast"]

#: Lines with more ``{`` and ``[`` than this in all go to the pydantic path.
MAX_BRACKETS: Final = 64

#: The times the fast path reads: RFC 3339 with ``T`` (or a space) and ``Z`` or a
#: ``+hh:mm`` offset whose minutes are below 60; a subset of what the contract takes.
FAST_TIME: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:[0-5]\d)"
)

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
_Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Milliseconds = Annotated[float, msgspec.Meta(ge=0.0)]
_Segments = Annotated[dict[_Id, _Id], msgspec.Meta(max_length=MAX_SEGMENT_KEYS)]


class _Inference(msgspec.Struct, tag_field="kind", tag="inference"):
    id: _Id
    time: str
    request_id: _Id
    model: _Id
    version: _Id
    score: _Probability | None = None
    decision: _Id | None = None
    segments: _Segments = {}
    latency_ms: _Milliseconds | None = None


class _Action(msgspec.Struct, tag_field="kind", tag="action"):
    id: _Id
    time: str
    request_id: _Id
    model: _Id
    version: _Id
    action: _Id
    tool: _Id | None = None
    privileged: bool | None = None
    status: _Id | None = None


class _Outcome(msgspec.Struct, tag_field="kind", tag="outcome"):
    id: _Id
    time: str
    request_id: _Id
    label: _Id
    source: _Id | None = None
    model: _Id | None = None
    version: _Id | None = None


_new = object.__new__
_set = object.__setattr__
_DECODER: Final = msgspec.json.Decoder(_Inference | _Action | _Outcome)

#: Per Struct: its pydantic model, the kind (the tag, not a Struct attribute) and the fields.
_FIELDS: Final[dict[type[msgspec.Struct], tuple[type[Any], str, frozenset[str]]]] = {
    struct: (model, kind, frozenset(model.model_fields))
    for struct, model, kind in (
        (_Inference, InferenceEvent, "inference"),
        (_Action, ActionEvent, "action"),
        (_Outcome, OutcomeEvent, "outcome"),
    )
}


def _event(struct: msgspec.Struct, when: datetime) -> Event:
    """The pydantic event of an already validated Struct, built without validating again.

    This is what ``BaseModel.model_construct`` does, minus its per-field default
    handling (every field is present in the Struct), at a fifth of the cost.
    """
    model, kind, fields_set = _FIELDS[type(struct)]
    values = asdict(struct)
    values["time"] = when
    values["kind"] = kind
    event = _new(model)
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", fields_set)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event  # type: ignore[no-any-return]


def decode_fast(raw: bytes, *, not_after: float | None = None) -> Event | None:
    """The event on ``raw``, if the fast path is sure of it; None sends it to the contract.

    A line accepted here is one :func:`monitor.events.decode` accepts, with the
    same field values; None says nothing about the line (see the module docstring).

    Examples
    --------
    >>> decode_fast(b'{"kind": "outcome", "id": "o1", "time": "2026-01-01T00:00:00Z",'
    ...             b' "request_id": "r1", "label": "fraud"}').label
    'fraud'
    >>> decode_fast(b'{"kind": "outcome"}') is None
    True
    """
    if (
        not raw.isascii()
        or b"\\" in raw
        or b'"specversion"' in raw
        or raw.count(b'"kind"') != 1
        or raw.count(b"{") + raw.count(b"[") > MAX_BRACKETS
    ):
        return None
    try:
        struct = _DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    stamp = struct.time
    if FAST_TIME.fullmatch(stamp) is None:
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if not_after is not None and when.timestamp() > not_after:
        return None
    if isinstance(struct, _Inference) and not (
        struct.latency_ms is None or math.isfinite(struct.latency_ms)
    ):
        return None
    return _event(struct, when)


def decode_batch(
    values: Sequence[bytes], *, max_bytes: int | None = None, not_after: float | None = None
) -> list[Event | Rejection]:
    """Decode and validate a batch of messages, in order, as :func:`~monitor.events.decode` does.

    Each value is tried on the fast path first and, if declined there, decoded
    by :func:`~monitor.events.decode`, whose result (the event, or the
    rejection with its code and reason) is the contract's.
    """
    out: list[Event | Rejection] = []
    append = out.append
    for raw in values:
        event = None
        if raw and (max_bytes is None or len(raw) <= max_bytes):
            event = decode_fast(raw, not_after=not_after)
        append(
            event if event is not None else decode(raw, max_bytes=max_bytes, not_after=not_after)
        )
    return out
