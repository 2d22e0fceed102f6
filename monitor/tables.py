"""The request join table, bounded, with plain-data state; the dedupe window beside it.

:class:`JoinTable` is checkpointed (:mod:`monitor.envelope`) at full capacity
every few seconds, so its :meth:`~JoinTable.state` is built for cheap
encoding: a few numpy arrays and lists of strings, never a million small
Python objects. The dedupe window, :class:`~monitor.dedupe.Deduper`, lives in
:mod:`monitor.dedupe` and is re-exported here.

:class:`JoinTable` keeps ``request_id -> Joined`` in columns, in memory as in
its state: request ids (a list of str), event times (``float64``), negative
flags (``bool``), scores (``float64``) and, per entry, a small integer code
into a table of the distinct ``(model, version, streams)`` triples, of which
there are few. An entry costs about 160 B (the request id string, a slot
number and 21 B of columns) where a :class:`Joined` of its own cost 800 B.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any, Self, cast

import numpy as np

from monitor.dedupe import ID_HASH, Deduper, id_hash
from monitor.streams import Stream

__all__ = ["ID_HASH", "Deduper", "JoinTable", "Joined", "Stream", "id_hash"]


@dataclass(frozen=True, slots=True)
class Joined:
    """What later events need to know about an inference."""

    model: str
    version: str
    streams: tuple[Stream, ...]
    negative: bool
    time: float
    #: The inference's score (``expected_false_negative_rate`` bins its labels by it).
    score: float | None = None


#: (model, version, streams): what entries of one join table have in common, coded by an int.
_Group = tuple[str, str, tuple[Stream, ...]]
#: The group under a freed code, which no entry refers to.
_FREE: _Group = ("", "", ())
_NAN = math.nan


class JoinTable:
    """``request_id`` -> :class:`Joined`, bounded by ``capacity`` entries and ``ttl`` seconds.

    Age is measured in event time against the newest inference time seen, so a
    replay of old data joins exactly as the live run did.

    An entry is a request id, one small ``int`` and a row of columns, not a
    :class:`Joined` with its own float objects: a ``dict`` maps each request id
    to its slot, and per slot ``array.array`` columns hold the request id
    (a list), the event time (``float64``; nan marks a free slot), the negative
    flag (``uint8``), the score (``float64``, nan for none) and the code of the
    entry's ``(model, version, streams)`` group (``int32``). Slots form a ring
    in insertion order, as in :class:`Deduper`: the oldest entry sits at the
    head, a put writes at the tail, so eviction at capacity and expiry pop the
    head in O(1). A re-put (the entry becomes the youngest) and the
    out-of-order sweep leave free slots inside the ring, skipped when they
    reach the head; the ring has ``capacity / 8`` spare slots, and when the
    tail meets a live head the live slots are packed to the front (O(size),
    once per ``capacity / 8`` puts at most). The dict is never iterated from
    its front, where deletions leave dummies that iteration would walk
    through. :meth:`get` builds the :class:`Joined` from the columns; a score
    put as nan comes back as None, as it always did through :meth:`state`.
    """

    def __init__(self, capacity: int = 500_000, ttl: float = 14 * 86400.0) -> None:
        if capacity < 1 or ttl <= 0:
            raise ValueError("capacity must be >= 1 and ttl > 0")
        self.capacity = capacity
        self.ttl = ttl
        self._slots: dict[str, int] = {}  # request id -> slot
        # The columns, one item per slot; they grow to _ring_size, then wrap.
        self._rids: list[str | None] = []  # None: a free slot
        self._times = array("d")  # nan: a free slot
        self._negative = array("B")
        self._scores = array("d")  # nan: no score
        self._group = array("i")
        self._ring_size = capacity + max(16, capacity // 8)
        self._head = 0  # the slot of the oldest entry, or a free slot before it
        self._tail = 0  # the slot the next put writes
        self._span = 0  # slots from head to tail, free ones included
        self._codes: dict[_Group, int] = {}
        self._groups: list[_Group] = []  # by code; _FREE: free
        self._free: list[int] = []
        self._group_limit = 4096  # past it, the codes of groups no entry uses are freed
        self._watermark = float("-inf")
        self._out_of_order = 0
        self._swept_at = float("-inf")
        self.evicted = 0

    def put(self, request_id: str, joined: Joined) -> None:
        """Keep ``joined`` under ``request_id``; a re-put replaces it and makes it the youngest."""
        self.put_parts(
            request_id,
            joined.model,
            joined.version,
            joined.streams,
            joined.negative,
            joined.time,
            joined.score,
        )

    def put_parts(
        self,
        request_id: str,
        model: str,
        version: str,
        streams: tuple[Stream, ...],
        negative: bool,
        time: float,
        score: float | None = None,
    ) -> None:
        """:meth:`put` of ``Joined(model, version, streams, negative, time, score)``, unbuilt."""
        if time != time:
            raise ValueError(f"join table: request {request_id!r} has a NaN event time")
        group = (model, version, streams)
        code = self._codes.get(group)
        if code is None:
            code = self._new_code(group)
        slots, rids, times = self._slots, self._rids, self._times
        old = slots.pop(request_id, None)
        if old is not None:  # a re-put: its old slot is freed, the entry goes to the tail
            rids[old] = None
            times[old] = _NAN
        elif len(slots) >= self.capacity:  # evict the oldest: the head's, if it is not free
            head = self._head
            oldest = rids[head]
            if oldest is None or self._span == 1:
                self._pop_oldest()
            else:
                del slots[oldest]
                rids[head] = None
                times[head] = _NAN
                self._span -= 1
                self._head = head + 1 if head + 1 < len(rids) else 0
            self.evicted += 1
        slot = self._tail
        if slot == len(rids):  # still growing (the tail is the columns' end): append
            rids.append(request_id)
            times.append(time)
            self._negative.append(negative)
            self._scores.append(_NAN if score is None else score)
            self._group.append(code)
        else:
            if self._span == len(rids):  # the tail has met the head
                self._make_room()
                slot = self._tail
            rids[slot] = request_id
            times[slot] = time
            self._negative[slot] = negative
            self._scores[slot] = _NAN if score is None else score
            self._group[slot] = code
        slots[request_id] = slot
        self._tail = slot + 1 if slot + 1 < self._ring_size else 0
        self._span += 1
        if time > self._watermark:
            self._watermark = time
        else:
            self._out_of_order += 1

    def find(
        self, request_id: str
    ) -> tuple[str, str, tuple[Stream, ...], bool, float, float | None] | None:
        """:meth:`get` as a plain tuple ``(model, version, streams, negative, time, score)``
        (the router's lookup: no :class:`Joined` built)."""
        slot = self._slots.get(request_id)
        if slot is None:
            return None
        time = self._times[slot]
        if time < self._watermark - self.ttl:
            return None
        model, version, streams = self._groups[self._group[slot]]
        score = self._scores[slot]
        return (
            model,
            version,
            streams,
            self._negative[slot] == 1,
            time,
            None if score != score else score,
        )

    def get(self, request_id: str) -> Joined | None:
        """The entry of ``request_id``, None if absent or older than the TTL."""
        found = self.find(request_id)
        return None if found is None else Joined(*found)

    def expire(self) -> int:
        """Drop entries older than the TTL; returns how many were dropped.

        Entries are kept in arrival order, so expiry pops from the head until a
        fresh entry. Entries that arrived out of time order can hide behind a
        fresh one; they are swept by a full pass, at most once per sixteenth
        of a TTL of event time, so the cost stays amortised.
        """
        cutoff = self._watermark - self.ttl
        slots, rids, times = self._slots, self._rids, self._times
        dropped = 0
        while self._span:
            head = self._head
            rid = rids[head]
            if rid is not None:
                if times[head] >= cutoff:
                    break
                del slots[rid]
                rids[head] = None
                times[head] = _NAN
                dropped += 1
            self._drop_head()
        if self._out_of_order and self._watermark - self._swept_at >= self.ttl / 16:
            column = np.frombuffer(times, dtype=np.float64)
            stale = np.flatnonzero(column < cutoff)  # free slots are nan: never below
            column[stale] = _NAN
            del column  # a live view would stop the array from growing
            for slot in stale.tolist():
                del slots[cast(str, rids[slot])]
                rids[slot] = None
            dropped += len(stale)
            self._out_of_order = 0
            self._swept_at = self._watermark
        self.evicted += dropped
        return dropped

    def __len__(self) -> int:
        return len(self._slots)

    # -- the ring ----------------------------------------------------------------------------
    def _drop_head(self) -> None:
        """Move the head past its slot (whose entry is gone)."""
        self._span -= 1
        if not self._span:
            self._head = self._tail
        else:  # while the columns grow, head + span <= tail <= len: no wrap before then
            head = self._head + 1
            self._head = head if head < len(self._rids) else 0

    def _pop_oldest(self) -> None:
        """Remove the oldest entry (there is one)."""
        rids = self._rids
        rid = None
        while rid is None:
            slot = self._head
            rid = rids[slot]
            self._drop_head()
        del self._slots[rid]
        rids[slot] = None
        self._times[slot] = _NAN

    def _make_room(self) -> None:
        """Free the slot at the tail of a full ring: skip free slots at the head, else pack."""
        rids = self._rids
        while self._span and rids[self._head] is None:
            self._drop_head()
        if self._span == len(rids):
            self._pack()

    def _live(self) -> np.ndarray[Any, np.dtype[np.intp]]:
        """The slots of the entries, oldest first."""
        size = len(self._rids)
        slots = np.arange(self._head, self._head + self._span, dtype=np.intp)
        if self._head + self._span > size:
            slots %= size
        if len(self._slots) != self._span:  # free slots inside the ring
            times = np.frombuffer(self._times, dtype=np.float64)
            slots = slots[~np.isnan(times[slots])]
        return slots

    def _pack(self) -> None:
        """Move the entries to the front of the columns, in order, freeing the rest."""
        live = self._live()
        n = len(live)
        rids = self._rids
        packed = [rids[slot] for slot in live.tolist()]
        rids[:n] = packed
        rids[n:] = [None] * (len(rids) - n)
        for column in (self._times, self._negative, self._scores, self._group):
            values = np.frombuffer(column, dtype=np.dtype(column.typecode))
            values[:n] = values[live]
            del values
        np.frombuffer(self._times, dtype=np.float64)[n:] = _NAN
        self._slots.update(zip(cast(list[str], packed), range(n), strict=True))
        self._head, self._tail, self._span = 0, n, n

    # -- groups ------------------------------------------------------------------------------
    def _new_code(self, group: _Group) -> int:
        if len(self._codes) >= self._group_limit:
            # Groups are few in practice (models x versions x folded segment values);
            # free those no entry uses any more, so the table of groups stays bounded.
            used = set(np.frombuffer(self._group, dtype=np.intc)[self._live()].tolist())
            for stale in [g for g, c in self._codes.items() if c not in used]:
                code = self._codes.pop(stale)
                self._groups[code] = _FREE
                self._free.append(code)
            self._group_limit = max(self._group_limit, 2 * len(self._codes))
        if self._free:
            code = self._free.pop()
            self._groups[code] = group
        else:
            code = len(self._groups)
            self._groups.append(group)
        self._codes[group] = code
        return code

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain data: the bounds and counters, and the entries as columns, oldest first.

        ``request_ids`` (list of str), ``times`` (``float64``), ``negative``
        (``bool``), ``scores`` (``float64``, nan for none) and ``group`` (``uint32``
        codes into ``groups``, each ``[model, version, [[], [key, value], ...]]``).
        """
        live = self._live()
        rids = self._rids
        head, end = self._head, self._head + self._span
        if len(live) != self._span:
            request_ids = [rids[slot] for slot in live.tolist()]
        elif end <= len(rids):
            request_ids = rids[head:end]
        else:
            request_ids = rids[head:] + rids[: end - len(rids)]
        times = np.frombuffer(self._times, dtype=np.float64)[live]
        negative = np.frombuffer(self._negative, dtype=np.uint8)[live].astype(np.bool_)
        scores = np.frombuffer(self._scores, dtype=np.float64)[live]
        codes = np.frombuffer(self._group, dtype=np.intc)[live]
        # Number the groups in use 0..k-1, in code order.
        in_use = np.zeros(len(self._groups), dtype=np.bool_)
        in_use[codes] = True
        used = np.flatnonzero(in_use)
        renumber = np.zeros(len(self._groups), dtype=np.uint32)
        renumber[used] = np.arange(len(used), dtype=np.uint32)
        groups = []
        for code in used.tolist():
            model, version, streams = self._groups[code]
            groups.append([model, version, [list(s) for s in streams]])
        return {
            "capacity": self.capacity,
            "ttl": self.ttl,
            "watermark": self._watermark,
            "out_of_order": self._out_of_order,
            "swept_at": self._swept_at,
            "evicted": self.evicted,
            "request_ids": request_ids,
            "times": times,
            "negative": negative,
            "scores": scores,
            "group": renumber[codes],
            "groups": groups,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """The table :meth:`state` was taken of; it answers every later call identically."""
        table = cls(int(state["capacity"]), float(state["ttl"]))
        table._watermark = float(state["watermark"])
        table._out_of_order = int(state["out_of_order"])
        table._swept_at = float(state["swept_at"])
        table.evicted = int(state["evicted"])
        groups: list[_Group] = [
            (str(model), str(version), tuple(cast(Stream, tuple(s)) for s in streams))
            for model, version, streams in state["groups"]
        ]
        rids: list[str] = list(state["request_ids"])
        n = len(rids)
        times = np.asarray(state["times"], dtype=np.float64)
        negative = np.asarray(state["negative"], dtype=np.bool_)
        # Absent from checkpoints before expected_false_negative_rate: no scores kept.
        scores = np.asarray(state.get("scores", np.full(n, np.nan)), dtype=np.float64)
        codes = np.asarray(state["group"], dtype=np.int64)
        if not n == len(times) == len(negative) == len(scores) == len(codes) <= table.capacity:
            raise ValueError("join table state: columns of different lengths, or over capacity")
        if n and not 0 <= codes.min() <= codes.max() < len(groups):
            raise ValueError("join table state: a group code outside its table of groups")
        if np.isnan(times).any():
            raise ValueError("join table state: an entry without an event time (nan)")
        table._slots = dict(zip(rids, range(n), strict=True))
        if len(table._slots) != n:
            raise ValueError("join table state: a request id held twice")
        table._groups = list(groups)
        table._codes = {group: code for code, group in enumerate(groups)}
        table._group_limit = max(table._group_limit, 2 * len(groups))
        table._rids = list[str | None](rids)
        table._times = array("d", times.tobytes())
        table._negative = array("B", negative.astype(np.uint8).tobytes())
        table._scores = array("d", scores.tobytes())
        table._group = array("i", codes.astype(np.intc).tobytes())
        table._head, table._tail, table._span = 0, n, n
        return table
