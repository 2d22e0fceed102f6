"""The events the decoder's fast path hands out: msgspec Structs read like the contract's.

:func:`monitor.fast_decode.decode_batch` returns, for a line its fast path
accepts, one of the Structs below rather than the pydantic event of
:mod:`monitor.events`: building a pydantic object per line cost about a
sixth of the decode stage. A Struct reads like its pydantic twin. Every
contract field is an attribute of the same name and value (``segments`` an
empty dict when absent, the optional fields None); ``kind`` is a class
attribute holding the tag; ``time`` is the aware :class:`~datetime.datetime`
the line's RFC 3339 text names, read with ``datetime.fromisoformat`` as the
contract reads it. That text stays in ``time_text``. A Struct has nothing
else of pydantic's: no ``model_dump``, no validation on assignment, and it
does not compare equal to the pydantic event.

Readers that take either kind of event type it as a :data:`EventView`, the
union of :class:`InferenceView`, :class:`ActionView` and
:class:`OutcomeView`. Those protocols list the guaranteed attributes; both
the pydantic events and these Structs satisfy them, and mypy checks that
here. Branch on ``event.kind``, not ``isinstance``, which narrows the union
for mypy too.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Final, Literal, Protocol, TypeAlias

import msgspec

from monitor.events import MAX_ID_LENGTH, MAX_SEGMENT_KEYS, Event

__all__ = [
    "ActionView",
    "DecodedEvent",
    "EventView",
    "FastAction",
    "FastEvent",
    "FastInference",
    "FastOutcome",
    "InferenceView",
    "OutcomeView",
]

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
_Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# The upper bound refuses infinity (msgspec 0.23 never decodes one, but says so here).
_Milliseconds = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
_Segments = Annotated[dict[_Id, _Id], msgspec.Meta(max_length=MAX_SEGMENT_KEYS)]

#: ``time`` until the decoder sets it; never handed out.
UNREAD: Final = datetime.min.replace(tzinfo=UTC)
# The member ``time`` would be read from, were a line to have one: no event does, and
# one that did would be read as a datetime and then overwritten (or declined, if not one).
_PARSED: Final = "time (parsed)"


class FastInference(msgspec.Struct, tag_field="kind", tag="inference", gc=False):
    """An inference event as the fast path decodes it (the fields of ``InferenceEvent``)."""

    kind: ClassVar[Literal["inference"]] = "inference"
    id: _Id
    time_text: str = msgspec.field(name="time")
    request_id: _Id
    model: _Id
    version: _Id
    score: _Probability | None = None
    decision: _Id | None = None
    segments: _Segments = {}
    latency_ms: _Milliseconds | None = None
    time: datetime = msgspec.field(default=UNREAD, name=_PARSED)


class FastAction(msgspec.Struct, tag_field="kind", tag="action", gc=False):
    """An action event as the fast path decodes it (the fields of ``ActionEvent``)."""

    kind: ClassVar[Literal["action"]] = "action"
    id: _Id
    time_text: str = msgspec.field(name="time")
    request_id: _Id
    model: _Id
    version: _Id
    action: _Id
    tool: _Id | None = None
    privileged: bool | None = None
    status: _Id | None = None
    time: datetime = msgspec.field(default=UNREAD, name=_PARSED)


class FastOutcome(msgspec.Struct, tag_field="kind", tag="outcome", gc=False):
    """An outcome event as the fast path decodes it (the fields of ``OutcomeEvent``)."""

    kind: ClassVar[Literal["outcome"]] = "outcome"
    id: _Id
    time_text: str = msgspec.field(name="time")
    request_id: _Id
    label: _Id
    source: _Id | None = None
    model: _Id | None = None
    version: _Id | None = None
    time: datetime = msgspec.field(default=UNREAD, name=_PARSED)


FastEvent: TypeAlias = FastInference | FastAction | FastOutcome


class _View(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def request_id(self) -> str: ...


class InferenceView(_View, Protocol):
    """What every inference event has, pydantic or Struct."""

    @property
    def kind(self) -> Literal["inference"]: ...
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def score(self) -> float | None: ...
    @property
    def decision(self) -> str | None: ...
    @property
    def segments(self) -> dict[str, str]: ...
    @property
    def latency_ms(self) -> float | None: ...


class ActionView(_View, Protocol):
    """What every action event has, pydantic or Struct."""

    @property
    def kind(self) -> Literal["action"]: ...
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def tool(self) -> str | None: ...
    @property
    def privileged(self) -> bool | None: ...
    @property
    def status(self) -> str | None: ...


class OutcomeView(_View, Protocol):
    """What every outcome event has, pydantic or Struct."""

    @property
    def kind(self) -> Literal["outcome"]: ...
    @property
    def label(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def version(self) -> str | None: ...


EventView: TypeAlias = InferenceView | ActionView | OutcomeView
#: What :func:`~monitor.fast_decode.decode_batch` hands out for a valid line.
DecodedEvent: TypeAlias = Event | FastEvent


def _both_are_views(event: DecodedEvent) -> EventView:
    """Never called: mypy checks here that both kinds of event satisfy the protocols."""
    return event
