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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "Checkpoint", "SqliteStateStore", "policy_digest"]

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


def policy_digest(policy_json: str) -> str:
    """A short digest of the policy a checkpoint was written under."""
    return hashlib.sha256(policy_json.encode()).hexdigest()[:16]


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
