"""The dedupe window and the request join table: bounded, with plain-data state.

Both tables are checkpointed (:mod:`monitor.envelope`) at full capacity every
few seconds, so their :meth:`state` is built for cheap encoding: a few numpy
arrays and lists of strings, never a million small Python objects.

:class:`Deduper` keeps a 64-bit keyed hash of each event id (BLAKE2b,
``digest_size=8``, a fixed key) instead of the id itself: its state is one
``uint64`` array in insertion order, and a window of a million ids holds a
million ints instead of a million strings. Two different ids share a hash with
probability 2^-64, so an event is wrongly dropped as a duplicate with
probability about ``capacity / 2^64`` (5.4e-14 at the default million ids),
far below any other loss in the system. The key is fixed (it is not a secret:
it separates these hashes from any other use of BLAKE2b), so the hashes, and
hence checkpoints, are the same in every process.

:class:`JoinTable` keeps ``request_id -> Joined`` as today; its state is in
columns: request ids (a list of str), event times (``float64``), negative
flags (``bool``) and, per entry, a small integer code into a table of the
distinct ``(model, version, streams)`` triples, of which there are few.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Self, cast

import numpy as np

__all__ = ["ID_HASH", "Deduper", "JoinTable", "Joined", "Stream", "id_hash"]

#: A stream within one (model, version): ``()`` is the overall stream, else ``(key, value)``.
Stream = tuple[()] | tuple[str, str]

#: Names the id hash in the dedupe state, so that another hash is never mixed with it.
ID_HASH = "blake2b-64/shiftwatch.dedupe.v1"
_HASHER = hashlib.blake2b(digest_size=8, key=b"shiftwatch.dedupe.v1")


def id_hash(event_id: str) -> int:
    """The 64-bit keyed hash the dedupe window keeps for ``event_id`` (stable across processes).

    >>> id_hash("e1") == id_hash("e1") != id_hash("e2")
    True
    """
    h = _HASHER.copy()  # a copy of the keyed state is cheaper than keying a new hasher
    h.update(event_id.encode("utf-8", "surrogatepass"))  # JSON allows lone surrogates
    return int.from_bytes(h.digest(), "little")


class Deduper:
    """Remembers the last ``capacity`` event ids; :meth:`seen` marks and reports repeats.

    Ids older than the window are forgotten, so a duplicate arriving after
    ``capacity`` newer events passes; the window is sized for redelivery after
    a crash or a producer retry, which are close in the log. Ids are kept as
    64-bit keyed hashes (see the module's docstring for the false-duplicate
    probability, about ``capacity / 2^64`` per event): a set for lookups and a
    ring of the same hashes in insertion order, whose oldest slot is the next
    to be overwritten, so eviction costs O(1) however full the window is.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._ids: set[int] = set()
        self._ring: list[int] = []  # insertion order once rotated by _oldest
        self._oldest = 0  # once the ring is full: the slot of the oldest id

    def seen(self, event_id: str) -> bool:
        """Return True if ``event_id`` was seen within the window; remember it otherwise."""
        return self.seen_many([event_id])[0]

    def seen_many(self, event_ids: list[str]) -> list[bool]:
        """:meth:`seen` for each id in order (a repeat within the list is a duplicate too)."""
        ids, ring, capacity = self._ids, self._ring, self.capacity
        hasher, from_bytes = _HASHER, int.from_bytes
        out = []
        for event_id in event_ids:
            h = hasher.copy()
            h.update(event_id.encode("utf-8", "surrogatepass"))
            key = from_bytes(h.digest(), "little")
            if key in ids:
                out.append(True)
                continue
            out.append(False)
            ids.add(key)
            if len(ring) < capacity:
                ring.append(key)
            else:
                i = self._oldest
                ids.remove(ring[i])
                ring[i] = key
                self._oldest = i + 1 if i + 1 < capacity else 0
        return out

    def __len__(self) -> int:
        return len(self._ring)

    def state(self) -> dict[str, Any]:
        """Plain data: the capacity and the window's id hashes, oldest first (``uint64``)."""
        ring = np.array(self._ring, dtype=np.uint64)
        if self._oldest:
            ring = np.concatenate((ring[self._oldest :], ring[: self._oldest]))
        return {"capacity": self.capacity, "hash": ID_HASH, "ids": ring}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """The window :meth:`state` was taken of; it answers every later call identically."""
        if state.get("hash") != ID_HASH:
            raise ValueError(f"dedupe state hashes ids with {state.get('hash')!r}, not {ID_HASH}")
        dedupe = cls(int(state["capacity"]))
        ids = np.asarray(state["ids"], dtype=np.uint64)
        if ids.ndim != 1 or len(ids) > dedupe.capacity:
            raise ValueError(f"dedupe state holds {ids.shape} ids for capacity {dedupe.capacity}")
        dedupe._ring = ids.tolist()
        dedupe._ids = set(dedupe._ring)
        if len(dedupe._ids) != len(dedupe._ring):
            raise ValueError("dedupe state holds an id twice")
        return dedupe


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
        # Entries are only appended and deleted, never moved (move_to_end), so the base
        # dict's insertion order is the table's order too: state() reads it with
        # dict.keys/dict.values, which walk the entry array, ~20x faster than
        # walking OrderedDict's linked list; popitem(last=False) stays O(1).
        self._table: OrderedDict[str, Joined] = OrderedDict()
        # The code of each entry's (model, version, streams), for state(): the same keys
        # inserted and deleted in the same order, so its values are in the table's order.
        # (A plain dict of small ints allocates nothing the garbage collector tracks.)
        self._code: dict[str, int] = {}
        self._codes: dict[_Group, int] = {}
        self._groups: list[_Group | None] = []  # by code; None: free
        self._free: list[int] = []
        self._group_limit = 4096  # past it, the codes of groups no entry uses are freed
        self._watermark = float("-inf")
        self._out_of_order = 0
        self._swept_at = float("-inf")
        self.evicted = 0

    def put(self, request_id: str, joined: Joined) -> None:
        group = (joined.model, joined.version, joined.streams)
        code = self._codes.get(group)
        if code is None:
            code = self._new_code(group)
        table, codes = self._table, self._code
        if request_id in codes:  # a re-put makes the entry the youngest
            del table[request_id], codes[request_id]
        table[request_id] = joined
        codes[request_id] = code
        if joined.time > self._watermark:
            self._watermark = joined.time
        else:
            self._out_of_order += 1
        if len(codes) > self.capacity:
            del codes[table.popitem(last=False)[0]]
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
        table, codes = self._table, self._code
        dropped = 0
        while table:
            first = next(iter(table.values()))
            if first.time >= cutoff:
                break
            del codes[table.popitem(last=False)[0]]
            dropped += 1
        if self._out_of_order and self._watermark - self._swept_at >= self.ttl / 16:
            stale = [rid for rid, j in dict.items(table) if j.time < cutoff]
            for rid in stale:
                del table[rid], codes[rid]
            dropped += len(stale)
            self._out_of_order = 0
            self._swept_at = self._watermark
        self.evicted += dropped
        return dropped

    def __len__(self) -> int:
        return len(self._table)

    def _new_code(self, group: _Group) -> int:
        if len(self._codes) >= self._group_limit:
            # Groups are few in practice (models x versions x folded segment values);
            # free those no entry uses any more, so the table of groups stays bounded.
            used = set(self._code.values())
            for stale in [g for g, c in self._codes.items() if c not in used]:
                code = self._codes.pop(stale)
                self._groups[code] = None
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

    def state(self) -> dict[str, Any]:
        """Plain data: the bounds and counters, and the entries as columns, oldest first.

        ``request_ids`` (list of str), ``times`` (``float64``), ``negative``
        (``bool``), ``scores`` (``float64``, nan for none) and ``group`` (``uint32``
        codes into ``groups``, each ``[model, version, [[], [key, value], ...]]``).
        """
        table = self._table
        n = len(table)
        codes = np.fromiter(self._code.values(), dtype=np.int64, count=n)
        joined = list(dict.values(table))
        times = np.fromiter(map(attrgetter("time"), joined), dtype=np.float64, count=n)
        negative = np.fromiter(map(attrgetter("negative"), joined), dtype=np.bool_, count=n)
        scores = np.fromiter(
            (math.nan if j.score is None else j.score for j in joined), dtype=np.float64, count=n
        )
        # Number the groups in use 0..k-1, in code order.
        in_use = np.zeros(len(self._groups), dtype=np.bool_)
        in_use[codes] = True
        used = np.flatnonzero(in_use)
        renumber = np.zeros(len(self._groups), dtype=np.uint32)
        renumber[used] = np.arange(len(used), dtype=np.uint32)
        groups = []
        for code in used.tolist():
            model, version, streams = cast(_Group, self._groups[code])
            groups.append([model, version, [list(s) for s in streams]])
        return {
            "capacity": self.capacity,
            "ttl": self.ttl,
            "watermark": self._watermark,
            "out_of_order": self._out_of_order,
            "swept_at": self._swept_at,
            "evicted": self.evicted,
            "request_ids": list(dict.keys(table)),
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
        times = np.asarray(state["times"], dtype=np.float64).tolist()
        negative = np.asarray(state["negative"], dtype=np.bool_).tolist()
        # Absent from checkpoints before expected_false_negative_rate: no scores kept.
        scores = np.asarray(state.get("scores", np.full(len(rids), np.nan)), dtype=np.float64)
        codes = np.asarray(state["group"], dtype=np.int64).tolist()
        if not len(rids) == len(times) == len(negative) == len(codes) <= table.capacity:
            raise ValueError("join table state: columns of different lengths, or over capacity")
        if codes and not 0 <= min(codes) <= max(codes) < len(groups):
            raise ValueError("join table state: a group code outside its table of groups")
        table._groups = list(groups)
        table._codes = {group: code for code, group in enumerate(groups)}
        table._group_limit = max(table._group_limit, 2 * len(groups))
        entries = table._table
        if len(scores) != len(rids):
            raise ValueError("join table state: columns of different lengths, or over capacity")
        for rid, code, neg, t, score in zip(
            rids, codes, negative, times, scores.tolist(), strict=True
        ):
            model, version, streams = groups[code]
            entries[rid] = Joined(
                model, version, streams, neg, t, None if math.isnan(score) else score
            )
        table._code = dict(zip(rids, codes, strict=True))
        return table
