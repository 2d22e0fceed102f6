"""One batch's routed events of one model, in columns, and the groups they are coded by.

The router (:mod:`monitor.router`) hands each model's check runners a
:class:`ModelWork`: per event kind, columns in arrival order (event times,
group codes, decisions, scores, ...) instead of an object per event. A *group*
is one (version, streams) of the model — the version's overall stream and the
segment values the event belongs to — coded by a small int in the model's
:class:`GroupTable`. Runners count a batch with a few numpy operations over
these columns (:meth:`monitor.buckets.Buckets.add_columns`), so the cost per
event after routing is a handful of array elements, not Python calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.messages import Located
from monitor.streams import Stream

__all__ = [
    "OVERALL",
    "ActionColumns",
    "Columns",
    "Group",
    "GroupTable",
    "InferenceColumns",
    "ModelWork",
    "OutcomeColumns",
    "StreamKey",
    "baseline_flags",
    "every_column",
    "overall_groups",
    "spread",
]

#: One (version, stream): the key of a bucket row.
StreamKey = tuple[str, Stream]

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Flags = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Group:
    """One (version, streams) of a model: the overall stream first, then segment values."""

    version: str
    baseline: bool
    streams: tuple[Stream, ...]


class GroupTable:
    """The groups of one model and the (version, stream) keys they spread over, coded.

    Groups are few (watched versions times segment value combinations, both
    bounded), so the table is kept for the router's lifetime.

    Examples
    --------
    >>> t = GroupTable("v1")
    >>> t.code("v2", ((), ("lang", "en"))), t.code("v2", ((),)), t.code("v2", ((), ("lang", "en")))
    (0, 1, 0)
    >>> event, key = t.expand(np.array([1, 0]))
    >>> event.tolist(), [t.keys[k] for k in key.tolist()]
    ([0, 1, 1], [('v2', ()), ('v2', ()), ('v2', ('lang', 'en'))])
    """

    def __init__(self, baseline: str) -> None:
        self.baseline = baseline
        self.groups: list[Group] = []
        self._codes: dict[tuple[str, tuple[Stream, ...]], int] = {}
        #: Every (version, stream) some group spreads over, by code.
        self.keys: list[StreamKey] = []
        self._key_codes: dict[StreamKey, int] = {}
        self._matrix: Ints = np.zeros((0, 1), dtype=np.int64)

    def code(self, version: str, streams: tuple[Stream, ...]) -> int:
        """The code of (version, streams), added on first sight."""
        code = self._codes.get((version, streams))
        if code is None:
            code = self._codes[(version, streams)] = len(self.groups)
            self.groups.append(Group(version, version == self.baseline, streams))
        return code

    def matrix(self) -> Ints:
        """Per group, the codes of its (version, stream) keys, padded with -1."""
        n = len(self.groups)
        if len(self._matrix) != n:
            width = max((len(g.streams) for g in self.groups), default=1)
            matrix = np.full((n, width), -1, dtype=np.int64)
            for code, group in enumerate(self.groups):
                for j, stream in enumerate(group.streams):
                    key = (group.version, stream)
                    k = self._key_codes.get(key)
                    if k is None:
                        k = self._key_codes[key] = len(self.keys)
                        self.keys.append(key)
                    matrix[code, j] = k
            self._matrix = matrix
        return self._matrix

    def expand(self, group: Ints) -> tuple[Ints, Ints]:
        """Each event once per stream of its group: (event index, key code), event-major."""
        spread = self.matrix()[group]
        event, j = np.nonzero(spread >= 0)
        return event.astype(np.int64), spread[event, j]


@dataclass(slots=True)
class Columns:
    """Columns every event kind has: the time it counts at and its group."""

    #: Event time the event counts at (an action's or outcome's: its inference's time).
    at: list[float] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    #: Set by runners: the event's bucket was already released somewhere.
    late: Flags = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    _at: Floats | None = None
    _group: Ints | None = None

    def __len__(self) -> int:
        return len(self.at)

    def times(self) -> Floats:
        if self._at is None or len(self._at) != len(self.at):
            self._at = np.asarray(self.at, dtype=np.float64)
        return self._at

    def groups(self) -> Ints:
        if self._group is None or len(self._group) != len(self.group):
            self._group = np.asarray(self.group, dtype=np.int64)
        return self._group

    def mark_late(self, late: Flags) -> None:
        """OR ``late`` (one flag per event) into the events' late flags."""
        if len(self.late) != len(self.at):
            self.late = np.zeros(len(self.at), dtype=np.bool_)
        self.late |= late

    def late_count(self) -> int:
        return int(self.late.sum()) if len(self.late) else 0


def _floats(values: list[float | None]) -> Floats:
    return np.fromiter(
        (math.nan if v is None else v for v in values), dtype=np.float64, count=len(values)
    )


@dataclass(slots=True)
class InferenceColumns(Columns):
    decision: list[str | None] = field(default_factory=list)
    negative: list[bool] = field(default_factory=list)
    score: list[float | None] = field(default_factory=list)
    latency_ms: list[float | None] = field(default_factory=list)
    #: Where each inference was read (they move event time, and locate alerts).
    position: list[Located] = field(default_factory=list)

    def scores(self) -> Floats:
        """The scores, nan where none."""
        return _floats(self.score)

    def latencies(self) -> Floats:
        """The latencies in ms, nan where none."""
        return _floats(self.latency_ms)

    def negatives(self) -> Flags:
        return np.asarray(self.negative, dtype=np.bool_)


@dataclass(slots=True)
class ActionColumns(Columns):
    #: The events themselves: checks filter actions by any of their fields (``where``).
    event: list[Any] = field(default_factory=list)
    #: Each action's input offset (the scale tier's judge drops rows it already has).
    offset: list[int] = field(default_factory=list)
    _fields: dict[str, NDArray[np.object_]] = field(default_factory=dict)

    def values(self, name: str) -> list[Any]:
        """The actions' ``name`` field (None where they have none), read once per batch."""
        return self._field(name).tolist()  # type: ignore[no-any-return]

    def _field(self, name: str) -> NDArray[np.object_]:
        column = self._fields.get(name)
        if column is None:
            column = np.empty(len(self.event), dtype=object)
            column[:] = [getattr(e, name, None) for e in self.event]
            self._fields[name] = column
        return column

    def matching(self, where: dict[str, str | bool]) -> Flags:
        """Which actions have every field value ``where`` asks for."""
        mask = np.ones(len(self.event), dtype=np.bool_)
        for name, wanted in where.items():
            mask &= np.asarray(self._field(name) == wanted, dtype=np.bool_)
        return mask

    def with_tool(self) -> Flags:
        """Which actions name a tool."""
        return np.asarray([t is not None for t in self._field("tool").tolist()], dtype=np.bool_)


@dataclass(slots=True)
class OutcomeColumns(Columns):
    label: list[str] = field(default_factory=list)
    #: Whether the labelled inference's decision was negative, and its score then.
    negative: list[bool] = field(default_factory=list)
    score: list[float | None] = field(default_factory=list)
    #: The outcome's own event time (when the label arrived).
    own_at: list[float] = field(default_factory=list)
    #: Each outcome's input offset (as for actions).
    offset: list[int] = field(default_factory=list)

    def negatives(self) -> Flags:
        return np.asarray(self.negative, dtype=np.bool_)

    def scores(self) -> Floats:
        return _floats(self.score)


@dataclass(slots=True)
class ModelWork:
    """What one batch brought for one model, in columns, in arrival order."""

    table: GroupTable
    inferences: InferenceColumns = field(default_factory=InferenceColumns)
    actions: ActionColumns = field(default_factory=ActionColumns)
    outcomes: OutcomeColumns = field(default_factory=OutcomeColumns)
    #: Source of each inference (``topic:partition``) -> the largest inference time read there.
    marks: dict[str, float] = field(default_factory=dict)
    #: Where the model's latest message in the batch was read.
    position: Located | None = None
    #: The router's working copy of ``marks``, by (topic, partition).
    newest: dict[tuple[str, int], float] = field(default_factory=dict)

    def by_kind(self) -> tuple[tuple[str, Columns], ...]:
        """Each event kind's columns, under the kind's name."""
        return (
            ("inference", self.inferences),
            ("action", self.actions),
            ("outcome", self.outcomes),
        )


#: The streams of an event counted overall only.
OVERALL: tuple[Stream, ...] = ((),)


def every_column(n_events: int, n_columns: int) -> tuple[Ints, Ints]:
    """Hits of every event in every column."""
    return (
        np.repeat(np.arange(n_events, dtype=np.int64), n_columns),
        np.tile(np.arange(n_columns, dtype=np.int64), n_events),
    )


def spread(flags: Flags | np.bool_, chosen: Ints, n: int) -> Flags:
    """Flags of the ``chosen`` of ``n`` events as flags of all ``n`` (False for the others).

    >>> spread(np.array([True, False]), np.array([3, 0]), 4).tolist()
    [False, False, False, True]
    """
    out = np.zeros(n, dtype=np.bool_)
    out[chosen] = flags
    return out


def baseline_flags(table: GroupTable, group: Ints) -> Flags:
    """Which events (by group code) are the baseline's."""
    return np.asarray([g.baseline for g in table.groups], dtype=np.bool_)[group]


def overall_groups(table: GroupTable, group: Ints) -> Ints:
    """The code of each event's (version, overall stream only) group."""
    versions = [g.version for g in table.groups]
    codes = np.asarray([table.code(v, OVERALL) for v in versions], dtype=np.int64)
    return codes[group]
