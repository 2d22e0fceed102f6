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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from monitor.dedupe import Deduper
from monitor.fast_events import ActionView, DecodedEvent, InferenceView, OutcomeView
from monitor.messages import Located
from monitor.policy import ModelPolicy, Policy
from monitor.streams import Stream
from monitor.tables import Joined, JoinTable
from monitor.work import GroupTable, ModelWork

__all__ = [
    "MAX_CANDIDATES",
    "OTHER",
    "Deduper",
    "JoinTable",
    "Joined",
    "ModelWork",
    "RouteResult",
    "Router",
    "SegmentFolder",
    "Stream",
    "Versions",
]

OTHER = "other"
#: Segment value combinations whose streams a :class:`SegmentFolder` remembers.
STREAMS_CACHE = 4096

Role = Literal["baseline", "candidate"]
#: The streams of an event whose inference is unknown: the overall stream only.
_OVERALL: tuple[Stream, ...] = ((),)


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
        values = tuple(map(segments.get, self.keys))
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


@dataclass(slots=True)
class RouteResult:
    """Per-model work and the accounting of one routed batch (counts by event kind)."""

    work: dict[str, ModelWork] = field(default_factory=dict)
    processed: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    unjoined: Counter[str] = field(default_factory=Counter)
    unmonitored: Counter[str] = field(default_factory=Counter)


class _Lane:
    """What the inferences of one watched (model, version) in one batch have in common."""

    __slots__ = ("codes", "model", "negative", "newest", "rows", "streams", "version", "work")

    def __init__(
        self,
        model: str,
        version: str,
        work: ModelWork,
        negative: frozenset[str],
        streams: Callable[[dict[str, str]], tuple[Stream, ...]],
    ) -> None:
        self.model, self.version, self.work = model, version, work
        self.rows = work.inferences
        self.negative = negative
        self.streams = streams
        #: Group codes by streams (the folder hands out the same tuples again).
        self.codes: dict[tuple[Stream, ...], int] = {}
        #: The newest inference time per (topic, partition), shared by the model's lanes.
        self.newest = work.newest


#: A lane not looked up yet (None is an unwatched version's).
_UNKNOWN: Any = object()


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
        #: Per model, the (version, streams) groups its work is coded by.
        self.tables = {m.name: GroupTable(m.baseline) for m in policy.models}
        #: Inferences read per (model, version), monitored or not (bounded).
        self.inferences: Counter[tuple[str, str]] = Counter()

    def route(self, events: Sequence[tuple[DecodedEvent, Located]]) -> RouteResult:
        """Route valid events in order; every one is counted as processed or duplicate.

        Each event comes with where it was read (a :class:`SourcePosition`, or
        the :class:`~monitor.messages.Message` itself, which is kept as is).

        The loop over inferences is the hot path: what is the same for every
        inference of one (model, version) in the batch — its role, its model's
        work and columns, the segment folder — is looked up once per batch (a
        :class:`_Lane`), so an inference costs a join-table entry and a few
        appends to its columns.
        """
        out = RouteResult()
        repeated = self.dedupe.seen_many([event.id for event, _ in events])
        #: Per (model, version) of an inference in this batch: its lane, None if unwatched
        #: (a version's role cannot change within a batch: a watched candidate stays so).
        lanes: dict[tuple[str, str], _Lane | None] = {}
        #: Inferences per (model, version), counted into ``self.inferences`` at the end.
        served: list[tuple[str, str]] = []
        #: Per (model, version) of an action whose role cannot change within the batch
        #: (the baseline, or a candidate already counted among the watched): its work.
        watched: dict[tuple[str, str], ModelWork] = {}
        put = self.joins.put_parts
        processed, duplicates = out.processed, out.duplicates
        for (event, position), duplicate in zip(events, repeated, strict=True):
            kind = event.kind
            if duplicate:
                duplicates[kind] += 1
                continue
            processed[kind] += 1
            if kind != "inference":
                if kind == "action":
                    self._action(event, position, out, watched)  # type: ignore[arg-type]
                else:
                    self._outcome(event, position, out)  # type: ignore[arg-type]
                continue
            key = (cast(str, event.model), cast(str, event.version))
            served.append(key)
            lane = lanes.get(key, _UNKNOWN)
            if lane is _UNKNOWN:
                lane = lanes[key] = self._lane(key, out)
            if lane is None:
                out.unmonitored[kind] += 1
                continue
            inference = cast(InferenceView, event)
            at = inference.time.timestamp()
            decision = inference.decision
            negative = decision in lane.negative
            streams = lane.streams(inference.segments)
            score = inference.score
            # The score is kept for negative decisions only: their labels calibrate scores.
            kept = score if negative else None
            put(inference.request_id, lane.model, lane.version, streams, negative, at, kept)
            code = lane.codes.get(streams)
            if code is None:
                code = lane.codes[streams] = lane.work.table.code(lane.version, streams)
            rows = lane.rows
            rows.at.append(at)
            rows.group.append(code)
            rows.decision.append(decision)
            rows.negative.append(negative)
            rows.score.append(score)
            rows.latency_ms.append(inference.latency_ms)
            rows.position.append(position)
            lane.work.position = position
            source = (position.topic, position.partition)
            if at > lane.newest.get(source, -math.inf):
                lane.newest[source] = at
        self._count_served(served)
        for work in out.work.values():
            work.marks = {f"{t}:{p}": at for (t, p), at in work.newest.items()}
        self.joins.expire()
        return out

    def _lane(self, key: tuple[str, str], out: RouteResult) -> _Lane | None:
        """What every inference of (model, version) in this batch shares; None if unwatched."""
        model, version = key
        role = self._role(model, version)
        if role is None:
            return None
        if role == "candidate":
            self.versions[model].seen.add(version)
        work = out.work.get(model)
        if work is None:
            work = out.work[model] = ModelWork(self.tables[model])
        return _Lane(model, version, work, self._negative[model], self.folders[model].streams)

    def _count_served(self, served: list[tuple[str, str]]) -> None:
        """Add a batch's inferences per (model, version), at most
        :data:`MAX_COUNTED_VERSIONS` pairs (later ones as :data:`OTHER_VERSIONS`)."""
        counted = self.inferences
        for key, n in Counter(served).items():  # in order of first appearance
            if key in counted or len(counted) < MAX_COUNTED_VERSIONS:
                counted[key] += n
            else:
                counted[OTHER_VERSIONS] += n

    def _work(self, out: RouteResult, model: str, position: Located) -> ModelWork:
        work = out.work.get(model)
        if work is None:
            work = out.work[model] = ModelWork(self.tables[model])
        work.position = position
        return work

    def _role(self, model: str, version: str) -> Role | None:
        lookup = self.versions.get(model)
        return lookup.role(version) if lookup is not None else None

    def _action(
        self,
        event: ActionView,
        position: Located,
        out: RouteResult,
        watched: dict[tuple[str, str], ModelWork],
    ) -> None:
        model, version = event.model, event.version
        joined = self.joins.find(event.request_id)
        if joined is None:
            out.unjoined[event.kind] += 1
        work = watched.get((model, version))
        if work is None:
            role = self._role(model, version)
            if role is None:
                out.unmonitored[event.kind] += 1
                return
            work = out.work.get(model)
            if work is None:
                work = out.work[model] = ModelWork(self.tables[model])
            if role == "baseline" or version in self.versions[model].seen:
                watched[(model, version)] = work  # a role that cannot change in this batch
        if joined is not None and joined[0] == model and joined[1] == version:
            streams, at = joined[2], joined[4]
        else:  # its inference is unseen or expired: the overall stream, at its own time
            streams, at = _OVERALL, event.time.timestamp()
        work.position = position
        rows = work.actions
        rows.at.append(at)
        rows.group.append(work.table.code(version, streams))
        rows.event.append(event)
        rows.offset.append(position.offset)

    def _outcome(self, event: OutcomeView, position: Located, out: RouteResult) -> None:
        joined = self.joins.find(event.request_id)
        if joined is None:
            out.unjoined[event.kind] += 1
            return
        model, version, streams, negative, at, score = joined
        work = self._work(out, model, position)
        rows = work.outcomes
        rows.at.append(at)
        rows.group.append(work.table.code(version, streams))
        rows.label.append(event.label)
        rows.negative.append(negative)
        rows.score.append(score)
        rows.own_at.append(event.time.timestamp())
        rows.offset.append(position.offset)

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
