"""A sealed checkpoint kept in a Quix Streams state store, cut into chunks.

Each stage of the scale tier keeps its state (an input partition's router, a
model's detectors) as one signed checkpoint (:func:`monitor.envelope.seal`)
in the state store of the partition it belongs to, under its own prefix.
Quix writes every changed key to the store's changelog topic at each
checkpoint, with the input offsets it was taken at, and restores a partition's
store from that topic up to the committed offsets when it is assigned, so
the state a replica finds always matches the offsets it resumes from.

A changelog record must stay under Kafka's message limit (1 MB by default),
while a router's tables or a model's buckets may be larger: the bytes are cut
into chunks of :data:`CHUNK` bytes under keys ``chunk:<i>``, and ``chunks``
holds their number. All are written in one checkpoint, so a restore never
mixes two snapshots.
"""

from __future__ import annotations

from typing import Protocol

from monitor.envelope import Checkpoint, CheckpointError, open_sealed

__all__ = ["CHUNK", "FIX", "KeyValues", "load", "open_checkpoint", "save"]

#: How to get past a saved state a stage cannot restore.
FIX = (
    "start every replica with the state.secret and policy the state was saved with, or set "
    "state.mismatch=fresh to start that part afresh"
)

CHUNK = 512 * 1024
_COUNT = b"chunks"


class KeyValues(Protocol):
    """What this module needs of a Quix ``State``: bytes keys and values."""

    def get(self, key: bytes, default: None = None) -> bytes | None: ...

    def set(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


def _chunk(i: int) -> bytes:
    return b"chunk:%d" % i


def save(state: KeyValues, blob: bytes) -> None:
    """Keep ``blob`` in ``state``, replacing what was there."""
    old = load_count(state)
    n = max(1, -(-len(blob) // CHUNK))
    for i in range(n):
        state.set(_chunk(i), blob[i * CHUNK : (i + 1) * CHUNK])
    for i in range(n, old):
        state.delete(_chunk(i))
    state.set(_COUNT, b"%d" % n)


def load_count(state: KeyValues) -> int:
    raw = state.get(_COUNT)
    return int(raw) if raw is not None else 0


def load(state: KeyValues) -> bytes | None:
    """The bytes last kept in ``state``, or None if nothing was."""
    n = load_count(state)
    if not n:
        return None
    parts = [state.get(_chunk(i)) for i in range(n)]
    if any(p is None for p in parts):
        return b""  # a chunk is missing: open_sealed refuses it as truncated
    return b"".join(p for p in parts if p is not None)


def open_checkpoint(blob: bytes, key: bytes, policy: str) -> Checkpoint:
    """The checkpoint in ``blob``, verified, and saved under the policy of digest ``policy``.

    Raises
    ------
    CheckpointError
        As :func:`~monitor.envelope.open_sealed`, or ``state`` if another policy saved it.
    """
    checkpoint = open_sealed(blob, key)
    if checkpoint.policy != policy:
        raise CheckpointError(
            "state",
            f"it was saved under policy {checkpoint.policy}, this replica runs {policy}",
        )
    return checkpoint
