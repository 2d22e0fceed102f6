"""Checkpoints: the pipeline's state and the input positions, saved together, atomically.

A checkpoint holds everything needed to resume as if the process had never
stopped: every detector, bucket, dedupe and join table (the pickled
:class:`~monitor.pipeline.Pipeline` state), the input positions (Kafka offsets
per partition, or a replay's byte offset and line), and the sizes of the
output files at that moment. It is one row of a SQLite table, replaced in one
transaction, so a crash at any instant leaves either the old checkpoint or the
new one, never a mix. On restart the pipeline state is restored, the input is
repositioned, and output files are cut back to their checkpointed sizes: the
events after the checkpoint are processed again, which rewrites exactly what
was cut off, so detector state is effectively exactly-once and the output is
the same as an uninterrupted run's.

The state is pickled: the file must be as protected as the process itself
(it is written and read only by shiftwatch; never load one from elsewhere).
A checkpoint written under another policy is not restored: the detectors
start afresh from the checkpointed positions (logged).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from monitor.jsonl import truncate
from monitor.messages import Message
from monitor.policy import Policy

if TYPE_CHECKING:
    from monitor.pipeline import Pipeline

__all__ = [
    "FORMAT",
    "Checkpoint",
    "CheckpointLike",
    "Checkpointer",
    "Positioned",
    "SqliteStateStore",
    "policy_digest",
    "restore_outputs",
]

log = structlog.get_logger("shiftwatch.state")

#: Bumped when the pickled layout changes: an older checkpoint is then not restored.
FORMAT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    format INTEGER NOT NULL,
    saved_at REAL NOT NULL,
    policy TEXT NOT NULL,
    positions TEXT NOT NULL,
    state BLOB NOT NULL
);
"""


def policy_digest(policy: Policy) -> str:
    """A short digest of the policy a checkpoint was written under."""
    return hashlib.sha256(policy.model_dump_json().encode()).hexdigest()[:16]


@dataclass
class Checkpoint:
    """One consistent cut: pipeline state, input positions, output file sizes."""

    policy: str
    state: bytes
    #: Input positions, e.g. {"kafka": {"topic:0": 1234}} or {"file": [bytes, line]},
    #: and {"outputs": {path: size}}.
    positions: dict[str, Any] = field(default_factory=dict)
    saved_at: float = 0.0
    format: int = FORMAT


class SqliteStateStore:
    """The embedded state store: one SQLite file holding the latest checkpoint."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._conn.commit()

    def load(self) -> Checkpoint | None:
        """The latest checkpoint, or None (none yet, or written in another format)."""
        row = self._conn.execute(
            "SELECT format, saved_at, policy, positions, state FROM checkpoint WHERE id = 1"
        ).fetchone()
        if row is None or row[0] != FORMAT:
            return None
        fmt, saved_at, policy, positions, state = row
        return Checkpoint(policy, bytes(state), json.loads(positions), saved_at, fmt)

    def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint in one transaction (durable when this returns)."""
        checkpoint.saved_at = time.time()
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO checkpoint (id, format, saved_at, policy, positions, state)"
                " VALUES (1, ?, ?, ?, ?, ?)",
                (
                    checkpoint.format,
                    checkpoint.saved_at,
                    checkpoint.policy,
                    json.dumps(checkpoint.positions),
                    checkpoint.state,
                ),
            )

    def close(self) -> None:
        self._conn.close()


class Checkpointer:
    """Checkpoints a running service every ``every_seconds``, with its Kafka offsets.

    ``outputs`` are file sinks (with ``position()``) whose sizes are recorded;
    :func:`restore_outputs` cuts them back before they are reopened.
    """

    def __init__(
        self,
        store: SqliteStateStore,
        pipeline: Pipeline,
        every_seconds: float,
        outputs: dict[str, Positioned] | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.every_seconds = every_seconds
        self.outputs = outputs or {}
        self.positions: dict[str, int] = {}
        self.dirty = False  # batches processed since the last save
        self._last = time.monotonic()

    def restore(self, checkpoint: Checkpoint | None) -> dict[str, int]:
        """Restore the pipeline from ``checkpoint``; the Kafka offsets to resume from."""
        if checkpoint is None:
            return {}
        if checkpoint.policy == self.pipeline.policy_digest():
            self.pipeline.restore(checkpoint.state)
            log.info("restored checkpoint", saved_at=checkpoint.saved_at)
        else:
            log.warning(
                "checkpoint written under another policy: detectors start afresh from its offsets"
            )
        self.positions = {k: int(v) for k, v in checkpoint.positions.get("kafka", {}).items()}
        return dict(self.positions)

    def advance(self, batch: Sequence[Message]) -> None:
        """Note the batch as processed: each partition's next offset."""
        self.dirty = self.dirty or bool(batch)
        for m in batch:
            key = f"{m.topic}:{m.partition}"
            if m.offset + 1 > self.positions.get(key, -1):
                self.positions[key] = m.offset + 1

    @property
    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_seconds

    def save(self, **extra: object) -> None:
        """Write the checkpoint: pipeline state, offsets, output sizes (and ``extra``
        positions, such as a replay's place in its file), in one transaction."""
        sizes = {name: sink.position() for name, sink in self.outputs.items()}
        self.store.save(
            Checkpoint(
                policy=self.pipeline.policy_digest(),
                state=self.pipeline.snapshot(),
                positions={"kafka": dict(self.positions), "outputs": sizes, **extra},
            )
        )
        self._last = time.monotonic()
        self.dirty = False

    def close(self) -> None:
        self.store.close()


class Positioned(Protocol):
    def position(self) -> int: ...


class CheckpointLike(Protocol):
    """What the service needs of a checkpointer (:class:`Checkpointer`, or a partitioned one)."""

    positions: dict[str, int]

    @property
    def dirty(self) -> bool: ...

    @property
    def due(self) -> bool: ...

    def advance(self, batch: Sequence[Message]) -> None: ...

    def save(self) -> None: ...

    def close(self) -> None: ...


def restore_outputs(checkpoint: Checkpoint | None, paths: dict[str, Path | None]) -> None:
    """Cut each output file back to its checkpointed size (before it is reopened for append)."""
    if checkpoint is None:
        return
    sizes = checkpoint.positions.get("outputs", {})
    for name, path in paths.items():
        if path is not None and name in sizes and path.exists():
            truncate(path, int(sizes[name]))
