"""Checkpoints: the pipeline's state and the input positions, saved together, atomically.

A checkpoint holds everything needed to resume as if the process had never
stopped: every detector, bucket, dedupe and join table (the plain-data
:meth:`~monitor.pipeline.Pipeline.state`), the input positions (Kafka offsets
per partition, or a replay's byte offset and line), and the sizes of the
output files at that moment. It is one row of a SQLite table, replaced in one
transaction, so a crash at any instant leaves either the old checkpoint or the
new one, never a mix. On restart the pipeline state is restored, the input is
repositioned, and output files are cut back to their checkpointed sizes: the
events after the checkpoint are processed again, which rewrites exactly what
was cut off, so detector state is effectively exactly-once and the output is
the same as an uninterrupted run's.

The row holds the checkpoint sealed by :func:`monitor.envelope.seal`: msgpack,
signed with HMAC-SHA256, verified before anything is decoded; it decodes to
plain data and numpy arrays only. The key is ``state.secret`` (or
``state.secret_file``) when set; otherwise a random 32-byte key is generated
on first use in ``<file>.key`` next to the database (mode 0600) and used
thereafter. The generated key
detects corruption and a foreign or swapped file; only a configured secret,
kept off the state volume, also protects against someone who can write that
volume.

A checkpoint that cannot be restored (:class:`~monitor.envelope.CheckpointError`:
damaged, foreign, signed with another key, or of another format) is handled
by ``state.mismatch`` (:func:`refuse`): ``fail`` ends the process with one line
saying what and how to fix it (exit status 2), ``fresh`` discards it and starts
afresh. A checkpoint written under another policy is not a mismatch: the
detectors start afresh from the checkpointed positions (logged).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog

from monitor.envelope import (
    FORMAT,
    Checkpoint,
    CheckpointError,
    legacy_format_error,
    open_sealed,
    seal,
)
from monitor.policy import BASELINE_CONFIDENCE, Policy

if TYPE_CHECKING:
    from monitor.pipeline import Pipeline

__all__ = [
    "FIX_REPLAY",
    "FIX_RUN",
    "FORMAT",
    "Checkpoint",
    "CheckpointError",
    "Mismatch",
    "SqliteStateStore",
    "StateMismatch",
    "guarded",
    "key_file",
    "load_checkpoint",
    "policy_digest",
    "refuse",
    "restore_pipeline",
]

log = structlog.get_logger("shiftwatch.state")

T = TypeVar("T")

#: What to do with a checkpoint that cannot be restored (``state.mismatch``).
Mismatch = Literal["fail", "fresh"]

_FRESH = "(or SHIFTWATCH_STATE__MISMATCH=fresh)"
#: The fix named when ``shiftwatch run``'s state file is refused.
FIX_RUN = (
    f"start once with --state-mismatch=fresh {_FRESH} to discard it and resume from the "
    "committed Kafka offsets, or move the file away"
)
#: The fix named when ``shiftwatch replay --state``'s file is refused.
FIX_REPLAY = (
    "run once with --state-mismatch=fresh to discard it and replay from the beginning of the "
    "file, or use another --state directory"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sealed_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    saved_at REAL NOT NULL,
    blob BLOB NOT NULL
);
"""
#: The table of format 1 checkpoints: recognised and refused, dropped on the next save.
_LEGACY_TABLE = "checkpoint"


def policy_digest(policy: Policy) -> str:
    """A short digest of the policy a checkpoint was written under.

    Fields added after checkpoint format 2 are left out while they hold the value that
    means "as before" (unset ``label_ages_seconds``, the default
    ``false_alarm.baseline_confidence``), so a checkpoint of 0.2.0 still matches the
    policy it was written under.
    """
    added: dict[int, dict[str, Any]] = {}
    for i, m in enumerate(policy.models):
        leave: dict[str, Any] = {}
        if m.label_ages_seconds is None:
            leave["label_ages_seconds"] = True
        if m.false_alarm.baseline_confidence == BASELINE_CONFIDENCE:
            leave["false_alarm"] = {"baseline_confidence"}
        if leave:
            added[i] = leave
    dump = policy.model_dump_json(exclude={"models": added} if added else None)
    return hashlib.sha256(dump.encode()).hexdigest()[:16]


class StateMismatch(Exception):
    """A checkpoint refused under ``state.mismatch: fail``: the process ends with status 2.

    The message is one line: the store, why, and the fix.
    """

    exit_status = 2

    def __init__(self, message: str, error: CheckpointError) -> None:
        super().__init__(message)
        self.error = error


def refuse(error: CheckpointError, *, where: str, fix: str, mismatch: Mismatch, fresh: str) -> None:
    """Apply ``state.mismatch`` to a checkpoint that cannot be restored.

    ``fail``: raise :class:`StateMismatch` naming ``where``, the reason and ``fix``.
    ``fresh``: log a warning; the caller then discards the checkpoint and starts
    afresh (``fresh`` says from where).
    """
    if mismatch == "fail":
        raise StateMismatch(f"{where} cannot be restored: {error}. Fix: {fix}.", error)
    log.warning(
        "checkpoint discarded (state.mismatch=fresh)",
        store=where,
        kind=error.kind,
        reason=str(error),
        then=fresh,
    )


def restore_pipeline(pipeline: Pipeline, state: dict[str, Any]) -> None:
    """``pipeline.restore_state(state)``; a state it cannot take is a CheckpointError ``state``.

    The pipeline may be partly restored afterwards: start afresh with a new one.
    """
    try:
        pipeline.restore_state(state)
    except CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            "state",
            "its state does not restore into this release's pipeline "
            f"({type(exc).__name__}: {str(exc)[:200]})",
        ) from exc


def key_file(path: str | Path) -> Path:
    """Where the SQLite store keeps its generated key: ``<file>.key`` next to the database."""
    path = Path(path)
    return path.with_name(path.name + ".key")


def _load_or_create_key(path: Path) -> bytes:
    """The key in ``path``; 32 random bytes written there (mode 0600) if it does not exist."""
    if not path.exists():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process wrote first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) < 16:
        raise ValueError(
            f"key file {path} holds {len(key)} bytes, fewer than 16: delete it to have a new "
            "one generated (the checkpoint it signed is then refused), or set state.secret"
        )
    return key


class SqliteStateStore:
    """The embedded state store: one SQLite file holding the latest sealed checkpoint.

    ``key`` signs and verifies checkpoints; without one, the key in
    ``<path>.key`` is used, generated on first use.
    """

    def __init__(self, path: str | Path, key: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = key or _load_or_create_key(key_file(self.path))
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            conn.commit()
        except sqlite3.DatabaseError as exc:  # not a database: load() says so
            self._broken: sqlite3.DatabaseError | None = exc
        else:
            self._broken = None
        return conn

    def load(self) -> Checkpoint | None:
        """The latest checkpoint, or None if there is none yet.

        Raises
        ------
        CheckpointError
            The file or its checkpoint cannot be restored (see :mod:`monitor.envelope`);
            a format 1 checkpoint (shiftwatch 0.1.0) is refused without being read.
        """
        try:
            if self._broken is not None:
                raise self._broken
            row = self._conn.execute("SELECT blob FROM sealed_checkpoint WHERE id = 1").fetchone()
            legacy = self._legacy_format() if row is None else None
        except sqlite3.DatabaseError as exc:
            raise CheckpointError("unreadable", f"not a readable SQLite database ({exc})") from exc
        if legacy is not None:
            raise legacy_format_error(legacy)
        if row is None:
            return None
        return open_sealed(bytes(row[0]), self._key)

    def _legacy_format(self) -> int | None:
        """The format of a checkpoint in the format 1 table, without reading its state."""
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_LEGACY_TABLE,)
        ).fetchone()
        if exists is None:
            return None
        row = self._conn.execute(f"SELECT format FROM {_LEGACY_TABLE} WHERE id = 1").fetchone()
        return None if row is None else int(row[0])

    def save(self, checkpoint: Checkpoint) -> None:
        """Seal and replace the checkpoint in one transaction (durable when this returns)."""
        checkpoint.saved_at = time.time()
        blob = seal(checkpoint, self._key)
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO sealed_checkpoint (id, saved_at, blob) VALUES (1, ?, ?)",
                (checkpoint.saved_at, blob),
            )
            self._conn.execute(f"DROP TABLE IF EXISTS {_LEGACY_TABLE}")

    def discard(self) -> None:
        """Forget the checkpoint (``state.mismatch: fresh``); a damaged file is moved aside
        to ``<file>.discarded`` and a new one created."""
        try:
            if self._broken is not None:
                raise self._broken
            with self._conn:
                self._conn.execute("DELETE FROM sealed_checkpoint")
                self._conn.execute(f"DROP TABLE IF EXISTS {_LEGACY_TABLE}")
        except sqlite3.DatabaseError:
            self._conn.close()
            aside = self.path.with_name(self.path.name + ".discarded")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.replace(f"{aside}{suffix}")
            self._conn = self._connect()
            if self._broken is not None:
                raise
        log.warning("checkpoint discarded", file=str(self.path))

    def close(self) -> None:
        self._conn.close()


def guarded(
    store: SqliteStateStore, attempt: Callable[[], T], mismatch: Mismatch, fix: str, fresh: str
) -> T | None:
    """``attempt()`` (loading or restoring a checkpoint of ``store``), with a checkpoint that
    cannot be restored handled by ``mismatch``: :class:`StateMismatch` under ``fail`` (the
    store closed), or discarded under ``fresh`` (then None: start afresh)."""
    try:
        return attempt()
    except CheckpointError as err:
        try:
            refuse(err, where=f"state file {store.path}", fix=fix, mismatch=mismatch, fresh=fresh)
        except StateMismatch:
            store.close()
            raise
        store.discard()
        return None


def load_checkpoint(
    store: SqliteStateStore, mismatch: Mismatch, fix: str, fresh: str
) -> Checkpoint | None:
    """``store.load()``, a checkpoint that cannot be restored handled by ``mismatch``."""
    return guarded(store, store.load, mismatch, fix, fresh)
