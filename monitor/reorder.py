"""Put a replayed file's lines in event-time order, within a bounded window.

``shiftwatch replay --reorder-window SECONDS`` reads lines through a
:class:`ReorderBuffer`: each line waits in a min-heap keyed by its event
``time`` until the newest time read is ``window`` seconds past it, so lines at
most ``window`` seconds out of order reach the pipeline in time order (and an
outcome or action read before its inference is joined). A line further behind
is passed on at once and counted late by the pipeline, as it would be from
Kafka; a line that does not decode is passed on at once, to be dead-lettered.
Memory is bounded by the lines within one window.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from typing import TypeVar

from monitor.events import Rejection, decode
from monitor.messages import Message

__all__ = ["ReorderBuffer", "reordered"]

P = TypeVar("P")


class ReorderBuffer:
    """Holds messages until event time has moved ``window`` seconds past them.

    >>> def line(i, t):
    ...     raw = ('{"kind": "outcome", "id": "o%d", "request_id": "r", "label": "x",'
    ...            ' "time": "2026-01-01T00:00:%02dZ"}' % (i, t)).encode()
    ...     return Message(raw, "f", 0, i)
    >>> buf = ReorderBuffer(5.0)
    >>> [m.offset for m in buf.push([line(1, 3), line(2, 1), line(3, 9)])]
    [2, 1]
    >>> [m.offset for m in buf.drain()]
    [3]
    """

    def __init__(self, window: float) -> None:
        if not window > 0:
            raise ValueError(f"the reorder window must be > 0 seconds, got {window}")
        self.window = window
        self._heap: list[tuple[float, int, Message]] = []
        self._newest = -math.inf
        self._released = -math.inf
        self._seq = 0

    def push(self, messages: Iterable[Message]) -> list[Message]:
        """Add messages; return those now due, in event-time order (then read order)."""
        out: list[Message] = []
        for message in messages:
            event = decode(message.value)
            if isinstance(event, Rejection):
                out.append(message)
                continue
            at = event.time.timestamp()
            if at < self._released:
                out.append(message)  # too late to be put in order: the pipeline judges it
                continue
            self._newest = max(self._newest, at)
            heapq.heappush(self._heap, (at, self._seq, message))
            self._seq += 1
        horizon = self._newest - self.window
        while self._heap and self._heap[0][0] <= horizon:
            at, _, message = heapq.heappop(self._heap)
            self._released = at
            out.append(message)
        return out

    def drain(self) -> list[Message]:
        """The messages still held, in order (the end of the input)."""
        out = [m for _, _, m in sorted(self._heap)]
        self._heap = []
        return out

    def __len__(self) -> int:
        return len(self._heap)


def reordered(
    batches: Iterable[tuple[list[Message], P]], window: float
) -> Iterator[tuple[list[Message], P]]:
    """The batches' messages in event-time order within ``window`` seconds, each with the
    position (read so far) of the batch that released it."""
    buffer = ReorderBuffer(window)
    position: P | None = None
    for batch, position in batches:
        due = buffer.push(batch)
        if due:
            yield due, position
    rest = buffer.drain()
    if rest and position is not None:
        yield rest, position
