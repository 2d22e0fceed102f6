"""The unit every source hands to the pipeline, and where rejected ones go."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple, Protocol

from monitor.events import Rejection
from monitor.jsonl import JsonlWriter

__all__ = [
    "DeadLetterSink",
    "JsonlDeadLetterSink",
    "Located",
    "Message",
    "SourcePosition",
    "position_of",
]


class SourcePosition(NamedTuple):
    """Where a message was read: what an alert carries instead of the message itself."""

    topic: str
    partition: int
    offset: int

    def as_dict(self) -> dict[str, object]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    @property
    def source(self) -> str:
        """The input it was read from, ``topic:partition``: each keeps its own watermark."""
        return f"{self.topic}:{self.partition}"


class Located(Protocol):
    """Anything that says where it was read: a :class:`SourcePosition` or a :class:`Message`.

    The router keeps the message itself for each inference; only the few
    positions an alert reports are turned into :class:`SourcePosition`.
    """

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


def position_of(where: Located) -> SourcePosition:
    """The :class:`SourcePosition` of a position or message."""
    if isinstance(where, SourcePosition):
        return where
    return SourcePosition(where.topic, where.partition, where.offset)


@dataclass(frozen=True, slots=True)
class Message:
    """One raw message and where it came from (a Kafka record or a file line)."""

    value: bytes
    topic: str
    partition: int
    offset: int
    key: bytes | None = None

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(self.topic, self.partition, self.offset)

    @property
    def source(self) -> str:
        """The input it came from, ``topic:partition``."""
        return f"{self.topic}:{self.partition}"


class DeadLetterSink(Protocol):
    """Keeps each rejected message with its reason. ``flush`` returns once all are durable."""

    def send(self, message: Message, rejection: Rejection) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def dead_letter_record(message: Message, rejection: Rejection) -> dict[str, object]:
    """The JSON form of a dead letter: the reason, the source position and the original bytes."""
    record: dict[str, object] = {
        "reason": rejection.reason,
        "code": rejection.code,
        "kind": rejection.kind,
        "source": {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
        },
    }
    try:
        record["value"] = message.value.decode("utf-8")
    except UnicodeDecodeError:
        record["value_base64"] = base64.b64encode(message.value).decode("ascii")
    return record


class JsonlDeadLetterSink(JsonlWriter):
    """Writes one JSON dead-letter record per line (a fresh file unless ``append``)."""

    def __init__(self, target: str | Path | IO[str], *, append: bool = False) -> None:
        super().__init__(target, append=append)

    def send(self, message: Message, rejection: Rejection) -> None:
        self.write_line(json.dumps(dead_letter_record(message, rejection)))
