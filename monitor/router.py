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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from monitor.events import ActionEvent, Event, InferenceEvent, OutcomeEvent
from monitor.messages import SourcePosition
from monitor.policy import ModelPolicy, Policy
from monitor.streams import Stream
from monitor.tables import Deduper, Joined, JoinTable

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
#: Segment value combinations whose streams a :class:`SegmentFolder` remembers.
STREAMS_CACHE = 4096

Role = Literal["baseline", "candidate"]


class SegmentFolder:
    """Keeps the first ``cap`` values of each segment key; later ones fold into ``other``."""

    def __init__(self, keys: list[str], cap: int = 20) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1, got {cap}")
        self.keys = tuple(keys)
        self.cap = cap
        self._known: dict[str, set[str]] = {k: set() for k in self.keys}
        self._cache: dict[tuple[str | None, ...], tuple[Stream, ...]] = {}
        self.folded = 0

    def state(self) -> dict[str, list[str]]:
        return {key: sorted(values) for key, values in self._known.items()}

    def restore(self, state: dict[str, list[str]]) -> None:
        self._cache = {}
        for key, values in state.items():
            if key in self._known:
                self._known[key] = {str(v) for v in values}

    def streams(self, segments: dict[str, str]) -> tuple[Stream, ...]:
        """The streams an inference with these segments belongs to, overall first.

        The answer for values already known is remembered (at most
        :data:`STREAMS_CACHE` combinations): most inferences repeat a few.
        """
        values = tuple([segments.get(key) for key in self.keys])
        cached = self._cache.get(values)
        if cached is not None:
            return cached
        folded = self.folded
        streams = self._streams(segments)
        if self.folded == folded and len(self._cache) < STREAMS_CACHE:
            self._cache[values] = streams  # every value was known: the same answer next time
        return streams

    def _streams(self, segments: dict[str, str]) -> tuple[Stream, ...]:
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


# -- the routing stage ----------------------------------------------------------------------

#: Candidate versions watched at once per model when the policy lists none.
MAX_CANDIDATES = 8
#: Distinct (model, version) pairs whose inferences are counted for the replay summary;
#: later pairs are counted together under :data:`OTHER_VERSIONS`.
MAX_COUNTED_VERSIONS = 256
OTHER_VERSIONS = ("(other)", "(other)")


class Versions:
    """Model and version lookup of one model: which versions are baseline or candidates."""

    def __init__(self, policy: ModelPolicy) -> None:
        self.policy = policy
        self.seen: set[str] = set()

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


E = TypeVar("E", InferenceEvent, ActionEvent, OutcomeEvent)


@dataclass(slots=True)
class Routed(Generic[E]):
    """One event routed to a model: its version and streams, and the time it counts at.

    ``at`` is the time of the inference the event belongs to (for an action
    or outcome joined to its inference, that inference's time).
    """

    event: E
    version: str
    baseline: bool
    streams: tuple[Stream, ...]
    at: float
    negative: bool
    #: Set by a runner when the event's bucket was already released.
    late: bool = False
    #: Where the event was read (kept for inferences: they move event time).
    position: SourcePosition | None = None
    #: For an outcome: its negative decision's score, if the inference had one.
    score: float | None = None


@dataclass(slots=True)
class ModelWork:
    """What one batch brought for one model, in arrival order."""

    inferences: list[Routed[InferenceEvent]] = field(default_factory=list)
    actions: list[Routed[ActionEvent]] = field(default_factory=list)
    outcomes: list[Routed[OutcomeEvent]] = field(default_factory=list)
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
        #: Inferences read per (model, version), monitored or not (bounded).
        self.inferences: Counter[tuple[str, str]] = Counter()

    def route(self, events: Sequence[tuple[Event, SourcePosition]]) -> RouteResult:
        """Route valid events in order; every one is counted as processed or duplicate."""
        out = RouteResult()
        seen = self.dedupe.seen
        for event, position in events:
            kind = event.kind
            if seen(event.id):
                out.duplicates[kind] += 1
                continue
            out.processed[kind] += 1
            if event.kind == "inference":
                self._inference(event, position, out)
            elif event.kind == "action":
                self._action(event, position, out)
            else:
                self._outcome(event, position, out)
        self.joins.expire()
        return out

    @staticmethod
    def _work(out: RouteResult, model: str, position: SourcePosition) -> ModelWork:
        work = out.work.get(model)
        if work is None:
            work = out.work[model] = ModelWork()
        work.position = position
        return work

    def _role(self, model: str, version: str) -> Role | None:
        lookup = self.versions.get(model)
        return lookup.role(version) if lookup is not None else None

    def _inference(self, event: InferenceEvent, position: SourcePosition, out: RouteResult) -> None:
        model, version = event.model, event.version
        counted = self.inferences
        key = (model, version)
        counted[
            key if key in counted or len(counted) < MAX_COUNTED_VERSIONS else OTHER_VERSIONS
        ] += 1
        role = self._role(model, version)
        if role is None:
            out.unmonitored[event.kind] += 1
            return
        if role == "candidate":
            self.versions[model].seen.add(version)
        at = event.time.timestamp()
        negative = event.decision in self._negative[model]
        streams = self.folders[model].streams(event.segments)
        # The score is kept for negative decisions only: their labels calibrate scores.
        score = event.score if negative else None
        self.joins.put(event.request_id, Joined(model, version, streams, negative, at, score))
        work = self._work(out, model, position)
        routed = Routed(
            event, version, role == "baseline", streams, at, negative, position=position
        )
        work.inferences.append(routed)
        source = position.source
        if at > work.marks.get(source, -math.inf):
            work.marks[source] = at

    def _action(self, event: ActionEvent, position: SourcePosition, out: RouteResult) -> None:
        model, version = event.model, event.version
        joined = self.joins.get(event.request_id)
        if joined is None:
            out.unjoined[event.kind] += 1
        role = self._role(model, version)
        if role is None:
            out.unmonitored[event.kind] += 1
            return
        if joined is not None and (joined.model, joined.version) == (model, version):
            streams, at = joined.streams, joined.time
        else:  # its inference is unseen or expired: the overall stream, at its own time
            streams, at = ((),), event.time.timestamp()
        work = self._work(out, model, position)
        work.actions.append(Routed(event, version, role == "baseline", streams, at, False))

    def _outcome(self, event: OutcomeEvent, position: SourcePosition, out: RouteResult) -> None:
        joined = self.joins.get(event.request_id)
        if joined is None:
            out.unjoined[event.kind] += 1
            return
        work = self._work(out, joined.model, position)
        routed = Routed(
            event,
            joined.version,
            False,
            joined.streams,
            joined.time,
            joined.negative,
            score=joined.score,
        )
        work.outcomes.append(routed)

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
            "inferences": [[m, v, n] for (m, v), n in self.inferences.items()],
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
        # Absent from checkpoints of 0.2.0: the counts then start from the restore.
        self.inferences = Counter(
            {(str(m), str(v)): int(n) for m, v, n in state.get("inferences", [])}
        )
