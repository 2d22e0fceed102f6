"""The routing stage: decoded events in, per-model work and its accounting out.

:class:`Router` drops duplicates by id, joins actions and outcomes to their
inference by ``request_id``, looks up each event's model and the role of its
version (baseline, a watched candidate, or nobody's), and folds segment
values into streams. All its state is bounded: the dedupe window and the join
table by entry count (oldest evicted first) and the join table also by
event-time age; segment values beyond a per-key cap fold into ``other``; at
most :data:`MAX_CANDIDATES` candidate versions per model when the policy
lists none.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.events import ActionEvent, Event, InferenceEvent, OutcomeEvent
from monitor.messages import Message, SourcePosition
from monitor.policy import ModelPolicy, Policy
from monitor.streams import Stream

__all__ = [
    "MAX_CANDIDATES",
    "OTHER",
    "Deduper",
    "JoinTable",
    "Joined",
    "ModelWork",
    "RouteResult",
    "Routed",
    "Router",
    "SegmentFolder",
    "Stream",
    "Versions",
]

OTHER = "other"

Role = Literal["baseline", "candidate"]


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

    def state(self) -> dict[str, list[str]]:
        return {key: sorted(values) for key, values in self._known.items()}

    def restore(self, state: dict[str, list[str]]) -> None:
        for key, values in state.items():
            if key in self._known:
                self._known[key] = {str(v) for v in values}

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


# -- the routing stage ----------------------------------------------------------------------

#: Candidate versions watched at once per model when the policy lists none.
MAX_CANDIDATES = 8


class Versions:
    """Model and version lookup of one model: which versions are baseline or candidates."""

    def __init__(self, policy: ModelPolicy) -> None:
        self.policy = policy
        self.seen: set[str] = set()

    @property
    def candidates(self) -> set[str]:
        """Candidate versions seen so far, plus those the policy lists."""
        return self.seen | set(self.policy.candidates or ())

    def role(self, version: str) -> Role | None:
        """``"baseline"``, ``"candidate"`` or None for a version nobody watches."""
        if version == self.policy.baseline:
            return "baseline"
        if not self.policy.watches(version):
            return None
        if version not in self.seen and len(self.seen) >= MAX_CANDIDATES:
            # With `candidates` omitted every version is watched: cap them, so that a
            # flood of version strings cannot multiply detectors and metric labels.
            return None
        return "candidate"


@dataclass(slots=True)
class Routed:
    """One event routed to a model: its version and streams, and the time it counts at.

    ``at`` is the time of the inference the event belongs to (for an action
    or outcome joined to its inference, that inference's time).
    """

    event: Event
    version: str
    baseline: bool
    streams: tuple[Stream, ...]
    at: float
    negative: bool
    #: Set by a runner when the event's bucket was already released.
    late: bool = False


@dataclass(slots=True)
class ModelWork:
    """What one batch brought for one model, in arrival order."""

    inferences: list[Routed] = field(default_factory=list)
    actions: list[Routed] = field(default_factory=list)
    outcomes: list[Routed] = field(default_factory=list)
    #: Source of each inference (``topic:partition``) -> the largest inference time read there.
    marks: dict[str, float] = field(default_factory=dict)
    #: Where the model's latest message in the batch was read.
    position: SourcePosition | None = None


@dataclass(slots=True)
class RouteResult:
    """Per-model work and the accounting of one routed batch (counts by event kind)."""

    work: dict[str, ModelWork] = field(default_factory=dict)
    processed: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    unjoined: Counter[str] = field(default_factory=Counter)
    unmonitored: Counter[str] = field(default_factory=Counter)


class Router:
    """Dedupe, join, look up model and version, fold segments: events -> per-model work."""

    def __init__(
        self,
        policy: Policy,
        *,
        dedupe_window: int = 1_000_000,
        join_capacity: int = 500_000,
        join_ttl_seconds: float = 14 * 86400.0,
        segment_cap: int = 20,
    ) -> None:
        self.dedupe = Deduper(dedupe_window)
        self.joins = JoinTable(join_capacity, join_ttl_seconds)
        self.models = {m.name: m for m in policy.models}
        self.versions = {m.name: Versions(m) for m in policy.models}
        self.folders = {m.name: SegmentFolder(m.segments, cap=segment_cap) for m in policy.models}
        self._negative = {m.name: frozenset(m.negative_decisions) for m in policy.models}

    def route(self, events: Sequence[tuple[Event, Message]]) -> RouteResult:
        """Route valid events in order; every one is counted as processed or duplicate."""
        out = RouteResult()
        seen, joins, versions = self.dedupe.seen, self.joins, self.versions
        for event, message in events:
            kind = event.kind
            if seen(event.id):
                out.duplicates[kind] += 1
                continue
            out.processed[kind] += 1
            if isinstance(event, OutcomeEvent):
                joined = joins.get(event.request_id)
                if joined is None:
                    out.unjoined[kind] += 1
                    continue
                model, version = joined.model, joined.version
                routed = Routed(event, version, False, joined.streams, joined.time, joined.negative)
            else:
                model, version = event.model, event.version
                lookup = versions.get(model)
                role = lookup.role(version) if lookup is not None else None
                if isinstance(event, ActionEvent):
                    joined = joins.get(event.request_id)
                    if joined is None:
                        out.unjoined[kind] += 1
                    if role is None:
                        out.unmonitored[kind] += 1
                        continue
                    if joined is not None and (joined.model, joined.version) == (model, version):
                        streams, at = joined.streams, joined.time
                    else:  # its inference is unseen or expired: overall stream, its own time
                        streams, at = ((),), event.time.timestamp()
                    routed = Routed(event, version, role == "baseline", streams, at, False)
                else:
                    if role is None or lookup is None:
                        out.unmonitored[kind] += 1
                        continue
                    if role == "candidate":
                        lookup.seen.add(version)
                    at = event.time.timestamp()
                    negative = event.decision in self._negative[model]
                    streams = self.folders[model].streams(event.segments)
                    routed = Routed(event, version, role == "baseline", streams, at, negative)
                    joins.put(event.request_id, Joined(model, version, streams, negative, at))
            work = out.work.get(model)
            if work is None:
                work = out.work[model] = ModelWork()
            work.position = message.position
            if isinstance(event, InferenceEvent):
                work.inferences.append(routed)
                source = message.source
                if routed.at > work.marks.get(source, -math.inf):
                    work.marks[source] = routed.at
            elif isinstance(event, ActionEvent):
                work.actions.append(routed)
            else:
                work.outcomes.append(routed)
        joins.expire()
        return out

    def drain_folded(self) -> dict[str, int]:
        """Segment values folded into ``other`` per model since the last call."""
        out = {}
        for name, folder in self.folders.items():
            if folder.folded:
                out[name], folder.folded = folder.folded, 0
        return out

    # -- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "dedupe": self.dedupe.state(),
            "joins": self.joins.state(),
            "candidates": {name: sorted(v.seen) for name, v in self.versions.items()},
            "segments": {name: f.state() for name, f in self.folders.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.dedupe = Deduper.from_state(state["dedupe"])
        self.joins = JoinTable.from_state(state["joins"])
        for name, seen in state["candidates"].items():
            if name in self.versions:
                self.versions[name].seen = {str(v) for v in seen}
        for name, folder_state in state["segments"].items():
            if name in self.folders:
                self.folders[name].restore(folder_state)
