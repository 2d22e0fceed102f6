"""The dedupe window: the last ``capacity`` event ids, bounded, with plain-data state.

It is checkpointed (:mod:`monitor.envelope`) at full capacity every few
seconds, so its :meth:`~Deduper.state` is built for cheap encoding: one
numpy array, never a million small Python objects.

:class:`Deduper` keeps a 64-bit keyed hash of each event id (BLAKE2b,
``digest_size=8``, a fixed key) instead of the id itself: its state is one
``uint64`` array in insertion order, and a window of a million ids holds a
million ints instead of a million strings. Two different ids share a hash with
probability 2^-64, so an event is wrongly dropped as a duplicate with
probability about ``capacity / 2^64`` (5.4e-14 at the default million ids),
far below any other loss in the system. The key is fixed (it is not a secret:
it separates these hashes from any other use of BLAKE2b), so the hashes, and
hence checkpoints, are the same in every process.
"""

from __future__ import annotations

import hashlib
from typing import Any, Self

import numpy as np

__all__ = ["ID_HASH", "Deduper", "id_hash"]

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
