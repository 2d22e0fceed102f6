"""The history file: a SQLite database the monitor writes and ``shiftwatch review`` reads.

One file per monitor (``history.sqlite3``, next to its checkpoints), in an
explicit, versioned format: a ``meta`` table holds ``format =``
:data:`FORMAT` and the shiftwatch version that wrote it, and a file of any
other format is refused with one line saying so. It is written in WAL mode,
one transaction per flush, so a reader never sees half a flush. Every row is
keyed (a bucket by model, version, check, segment and its end; an alert by id
and status), and written with ``INSERT OR REPLACE``: a resumed run that
processes events after its checkpoint again rewrites the same rows, and the
file ends as an unbroken run's. Rows older than the newest time less the
retention are deleted at each flush; model records and sign-offs are kept.

The file holds aggregates only: no event payload and no request id.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.envelope import code_version
from monitor.history.reads import HistoryReads
from monitor.history.rows import (
    AlertRow,
    CheckSample,
    DriftSample,
    ModelRecord,
    SignOff,
    ToolSample,
    VerdictChange,
    VersionSample,
)
from monitor.history.schema import SCHEMA, TIMED_TABLES

__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "FORMAT",
    "HISTORY_FILE",
    "LATENCY_EDGES_MS",
    "Flush",
    "HistoryError",
    "HistoryStore",
    "Served",
    "history_file",
    "latency_bins",
]

#: The file's name, in a replay's ``--state`` directory or next to ``state.path``.
HISTORY_FILE = "history.sqlite3"
#: The layout of the file; a file of another format is refused, never guessed at.
FORMAT = "shiftwatch-history/1"
#: Rows older than the newest time less this are deleted (35 days: a weekly review
#: has its month and the week before).
DEFAULT_RETENTION_SECONDS = 35 * 86400.0

#: Latency bin edges in milliseconds: 48 edges evenly spaced in log10 from 0.1 ms to
#: 100 s (47 bins, each about 34% wider than the one before), so a median or tail read
#: back from the bins is within that factor at any scale. Bin 0 counts latencies below
#: 0.1 ms and bin 48 those of 100 s or more; bin i in between counts
#: ``LATENCY_EDGES_MS[i - 1] <= x < LATENCY_EDGES_MS[i]``.
LATENCY_EDGES_MS: tuple[float, ...] = tuple(float(x) for x in np.logspace(-1.0, 5.0, 48))

_EDGES = np.asarray(LATENCY_EDGES_MS)


def latency_bins(values_ms: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, Any]:
    """The bin of each latency in :data:`LATENCY_EDGES_MS` (0 to ``len(edges)``).

    >>> latency_bins(np.array([0.05, 0.1, 75.0, 1e6])).tolist()
    [0, 1, 23, 48]
    """
    return np.searchsorted(_EDGES, values_ms, side="right")


def history_file(path: Path) -> Path:
    """Where the history of a state location is.

    A directory (a replay's ``--state DIR``, or a path without a suffix that
    does not exist yet) holds ``history.sqlite3``; a checkpoint file
    (``state.path``) has it next to it; a history file is itself.
    """
    path = Path(path)
    if path.is_dir() or (not path.exists() and not path.suffix):
        return path / HISTORY_FILE
    if path.name == HISTORY_FILE:
        return path
    return path.with_name(HISTORY_FILE)


class HistoryError(ValueError):
    """The history file cannot be used; the message is one line naming the file and the fix."""


@dataclass(frozen=True, slots=True)
class Served:
    """A version's bucket with the first and last inference time in it (for the version spans)."""

    sample: VersionSample
    first_at: float
    last_at: float


@dataclass(slots=True)
class Flush:
    """The rows of one flush, written in one transaction."""

    models: list[ModelRecord] = field(default_factory=list)
    checks: list[CheckSample] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    tools: list[ToolSample] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    verdicts: list[VerdictChange] = field(default_factory=list)
    drift: list[DriftSample] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self.__slots__)

    def newest(self) -> float:
        timed = (self.checks, self.tools, self.verdicts, self.drift)
        times = [r.at for rows in timed for r in rows]
        times += [s.sample.at for s in self.served] + [a.event_time for a in self.alerts]
        return max(times, default=-math.inf)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _opt(x: float | None) -> float | None:
    return None if x is None else float(x)


class HistoryStore(HistoryReads):
    """The history file, open for writing (or, by :meth:`open_existing`, for reading).

    A :class:`~monitor.history.rows.HistorySource`.

    Parameters
    ----------
    path
        The file (created with its directory if missing).
    retention_seconds
        Rows whose time is older than the newest time less this are deleted at
        each flush (default :data:`DEFAULT_RETENTION_SECONDS`).

    Raises
    ------
    HistoryError
        The file exists and is not a shiftwatch history of this format.
    """

    def __init__(self, path: Path, *, retention_seconds: float | None = None) -> None:
        retention = DEFAULT_RETENTION_SECONDS if retention_seconds is None else retention_seconds
        if not retention > 0:
            raise ValueError(f"retention_seconds must be > 0, got {retention_seconds}")
        self.path = Path(path)
        self.retention_seconds = float(retention)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=10.0)
        try:
            existing = self._format()
            if existing is not None and existing != FORMAT:
                raise HistoryError(self._wrong_format(existing))
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._conn:
                self._conn.executescript(SCHEMA)
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("format", FORMAT), ("shiftwatch_version", code_version())],
                )
        except BaseException:
            self._conn.close()
            raise
        self._newest = self._stored_newest()

    @classmethod
    def open_existing(cls, path: Path) -> HistoryStore:
        """Open a history for reading: a history file, a ``--state`` directory or a state file.

        Raises
        ------
        HistoryError
            No history there, not a shiftwatch history, or of another format.
        """
        given = Path(path)
        file = history_file(given)
        if not file.is_file():
            where = given if given.is_dir() or not given.suffix else given.parent
            raise HistoryError(
                f"no history in {where}: run `shiftwatch replay EVENTS --policy P --state "
                f"{where}` first (or `shiftwatch run` with state.path there)"
            )
        self = cls.__new__(cls)
        self.path = file
        self.retention_seconds = DEFAULT_RETENTION_SECONDS
        self._conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=10.0)
        try:
            existing = self._format()
        except BaseException:
            self._conn.close()
            raise
        if existing != FORMAT:
            self._conn.close()
            if existing is None:
                raise HistoryError(
                    f"{file} is not a shiftwatch history (no format in it): give the "
                    f"{HISTORY_FILE} a replay --state or a run wrote"
                )
            raise HistoryError(self._wrong_format(existing))
        self._newest = self._stored_newest()
        return self

    def _format(self) -> str | None:
        """The file's format; None for a new, empty file. HistoryError: not a history."""
        try:
            tables = {
                row[0]
                for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if not tables:
                return None
            row = (
                self._conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
                if "meta" in tables
                else None
            )
        except sqlite3.DatabaseError as exc:
            raise HistoryError(
                f"{self.path} is not a shiftwatch history ({exc}): move it away or give "
                "another path"
            ) from exc
        if row is None:
            raise HistoryError(
                f"{self.path} is not a shiftwatch history (a SQLite file without its meta "
                "table): move it away or give another path"
            )
        return str(row[0])

    def _wrong_format(self, existing: str) -> str:
        return (
            f"{self.path} is a history of format {existing!r}, and this shiftwatch "
            f"({code_version()}) reads and writes {FORMAT!r}: use the shiftwatch release "
            "that wrote it, or move the file away to start a new history"
        )

    def _stored_newest(self) -> float:
        times = [
            self._conn.execute(f"SELECT MAX({column}) FROM {table}").fetchone()[0]
            for table, column in TIMED_TABLES
        ]
        return max((float(t) for t in times if t is not None), default=-math.inf)

    # -- writing -----------------------------------------------------------------------------
    def write(self, rows: Flush) -> None:
        """Write one flush in one transaction, then delete what retention no longer keeps.

        Raises ``sqlite3.Error`` or ``OSError`` (the caller counts and logs them).
        """
        if not rows:
            return
        c = self._conn
        with c:
            for record in rows.models:
                self._add_model(record)
            c.executemany(
                "INSERT OR REPLACE INTO checks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (s.model, s.version, s.check, s.segment, s.at, s.state, _opt(s.observed),
                     _opt(s.reference), _opt(s.lower), _opt(s.upper), _opt(s.statistic),
                     _opt(s.threshold), float(s.candidate_seen), float(s.baseline_seen))
                    for s in rows.checks
                ],
            )  # fmt: skip
            c.executemany(
                "INSERT OR REPLACE INTO served VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (v.sample.model, v.sample.version, v.sample.at, int(v.sample.baseline),
                     v.sample.inferences, v.sample.actions, v.sample.outcomes,
                     v.sample.latency_count, v.sample.latency_sum_ms,
                     _json(list(v.sample.latency_bins)), v.first_at, v.last_at)
                    for v in rows.served
                ],
            )  # fmt: skip
            c.executemany(
                "INSERT OR REPLACE INTO tools VALUES (?,?,?,?,?,?,?)",
                [
                    (t.model, t.version, t.at, t.action, t.tool, int(t.privileged), t.count)
                    for t in rows.tools
                ],
            )
            c.executemany(
                "INSERT OR REPLACE INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (a.alert_id, a.status, a.model, a.version, a.check, a.segment, a.action,
                     a.event_time, a.fired_at, a.resolved_at, _json(a.record))
                    for a in rows.alerts
                ],
            )  # fmt: skip
            c.executemany(
                "INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?)",
                [
                    (v.model, v.version, v.at, v.verdict, _json(list(v.reasons)))
                    for v in rows.verdicts
                ],
            )
            c.executemany(
                "INSERT OR REPLACE INTO drift VALUES (?,?,?,?,?)",
                [
                    (d.model, d.at, int(d.detected), _json(list(d.checks)), _json(d.changes))
                    for d in rows.drift
                ],
            )
            self._newest = max(self._newest, rows.newest())
            if math.isfinite(self._newest):
                cutoff = self._newest - self.retention_seconds
                for table, column in TIMED_TABLES:
                    c.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,))

    def _add_model(self, record: ModelRecord) -> None:
        """Record a model's policy unless its latest record holds the same policy."""
        latest = self._conn.execute(
            "SELECT policy FROM models WHERE model = ? ORDER BY at DESC LIMIT 1", (record.model,)
        ).fetchone()
        policy = _json(record.policy)
        if latest is None or latest[0] != policy:
            self._conn.execute(
                "INSERT OR REPLACE INTO models VALUES (?,?,?)", (record.model, record.at, policy)
            )

    def add_signoff(self, signoff: SignOff) -> None:
        """Record a decision of ``shiftwatch review sign`` (kept whatever the retention)."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO signoffs VALUES (?,?,?,?,?,?)",
                (signoff.model, signoff.version, signoff.at, signoff.decision, signoff.by,
                 signoff.note),
            )  # fmt: skip

    def close(self) -> None:
        self._conn.close()
