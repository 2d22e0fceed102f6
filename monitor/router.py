"""Routing state: duplicate suppression, segment folding and the request join table.

All three are bounded: the dedupe window and the join table by entry count
(oldest evicted first) and the join table also by event-time age; segment
values beyond a per-key cap fold into ``other``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["OTHER", "Deduper", "JoinTable", "Joined", "SegmentFolder", "Stream"]

OTHER = "other"

#: A stream within one (model, version): ``()`` is the overall stream, else ``(key, value)``.
Stream = tuple[()] | tuple[str, str]


class Deduper:
    """Remembers the last ``capacity`` event ids; :meth:`seen` marks and reports repeats.

    Ids older than the window are forgotten, so a duplicate arriving after
    ``capacity`` newer events passes; the window is sized for redelivery after
    a crash or a producer retry, which are close in the log.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def seen(self, event_id: str) -> bool:
        """Return True if ``event_id`` was seen within the window; remember it otherwise."""
        ids = self._ids
        if event_id in ids:
            return True
        ids[event_id] = None
        if len(ids) > self.capacity:
            # dicts keep insertion order: the first key is the oldest.
            del ids[next(iter(ids))]
        return False

    def __len__(self) -> int:
        return len(self._ids)


class SegmentFolder:
    """Keeps the first ``cap`` values of each segment key; later ones fold into ``other``."""

    def __init__(self, keys: list[str], cap: int = 20) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1, got {cap}")
        self.keys = tuple(keys)
        self.cap = cap
        self._known: dict[str, set[str]] = {k: set() for k in self.keys}
        self.folded = 0

    def streams(self, segments: dict[str, str]) -> tuple[Stream, ...]:
        """The streams an inference with these segments belongs to, overall first."""
        out: list[Stream] = [()]
        for key in self.keys:
            value = segments.get(key)
            if value is None:
                continue
            known = self._known[key]
            if value not in known:
                if len(known) >= self.cap or value == OTHER:
                    self.folded += 1
                    value = OTHER
                else:
                    known.add(value)
            out.append((key, value))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Joined:
    """What later events need to know about an inference."""

    model: str
    version: str
    streams: tuple[Stream, ...]
    negative: bool
    time: float


class JoinTable:
    """``request_id`` -> :class:`Joined`, bounded by ``capacity`` entries and ``ttl`` seconds.

    Age is measured in event time against the newest inference time seen, so a
    replay of old data joins exactly as the live run did.
    """

    def __init__(self, capacity: int = 500_000, ttl: float = 14 * 86400.0) -> None:
        if capacity < 1 or ttl <= 0:
            raise ValueError("capacity must be >= 1 and ttl > 0")
        self.capacity = capacity
        self.ttl = ttl
        self._table: OrderedDict[str, Joined] = OrderedDict()
        self._watermark = float("-inf")
        self._out_of_order = 0
        self._swept_at = float("-inf")
        self.evicted = 0

    def put(self, request_id: str, joined: Joined) -> None:
        table = self._table
        table[request_id] = joined
        table.move_to_end(request_id)
        if joined.time > self._watermark:
            self._watermark = joined.time
        else:
            self._out_of_order += 1
        if len(table) > self.capacity:
            table.popitem(last=False)
            self.evicted += 1

    def get(self, request_id: str) -> Joined | None:
        joined = self._table.get(request_id)
        if joined is not None and joined.time < self._watermark - self.ttl:
            return None
        return joined

    def expire(self) -> int:
        """Drop entries older than the TTL; returns how many were dropped.

        Entries are kept in arrival order, so expiry pops from the head until a
        fresh entry. Entries that arrived out of time order can hide behind a
        fresh one; they are swept by a full pass, at most once per sixteenth
        of a TTL of event time, so the cost stays amortised.
        """
        cutoff = self._watermark - self.ttl
        table = self._table
        dropped = 0
        while table:
            first = next(iter(table.values()))
            if first.time >= cutoff:
                break
            table.popitem(last=False)
            dropped += 1
        if self._out_of_order and self._watermark - self._swept_at >= self.ttl / 16:
            stale = [rid for rid, j in table.items() if j.time < cutoff]
            for rid in stale:
                del table[rid]
            dropped += len(stale)
            self._out_of_order = 0
            self._swept_at = self._watermark
        self.evicted += dropped
        return dropped

    def __len__(self) -> int:
        return len(self._table)
