"""A durable outbox: alerts are written down before delivery and retried until acknowledged.

The pipeline hands each alert record to :meth:`Outbox.emit`, which stores one
row per delivery in a SQLite file; :meth:`Outbox.flush` commits them (before
the pipeline commits its Kafka offsets) and wakes the delivery thread. That
thread runs delivery passes (:meth:`Outbox.pump`): each delivers the due rows
of each sink in order, marks each acknowledged one, and on failure retries the
sink with exponential backoff (1 s doubling to ``max_backoff``), so a receiver
that is down for minutes loses nothing, and neither does a restart:
undelivered rows are picked up by the next process.

A row's key is ``(alert_id:status, sink)``: emitting the same record again,
after a retry or a restart that re-detects the same breach, is a no-op, so no
receiver gets a record twice from the outbox. Firing alerts for receivers that
need it (Alertmanager) are re-sent every ``resend_seconds`` until resolved,
while this process still reports them firing: after a restart, an alert left
firing by the previous process is re-sent for ``restart_grace`` seconds only,
unless the new process detects the same breach again (and emits the same
record) in that time; otherwise Alertmanager lets it expire, instead of it
firing forever for a breach nobody tracks any more.

Every due time is read from ``clock`` (``time.time`` by default). A test can
pass a fake clock, skip :meth:`Outbox.start` and call :meth:`Outbox.pump`
itself, stepping the clock between passes instead of waiting.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from monitor.alerts import AlertRecord
from monitor.deliveries import Delivery
from monitor.metrics import Metrics

__all__ = ["Outbox"]

log = structlog.get_logger("shiftwatch.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT NOT NULL,
    sink TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    delivered REAL,
    PRIMARY KEY (key, sink)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (sink, delivered);
CREATE TABLE IF NOT EXISTS active (
    alert_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    payload TEXT NOT NULL,
    last_sent REAL NOT NULL,
    PRIMARY KEY (alert_id, sink)
);
"""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level="DEFERRED")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class Outbox:
    """An :class:`~monitor.alerts.AlertSink` that persists, then delivers to ``deliveries``."""

    def __init__(
        self,
        path: str | Path,
        deliveries: Sequence[Delivery],
        metrics: Metrics | None = None,
        *,
        max_backoff: float = 60.0,
        restart_grace: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = [d.name for d in deliveries]
        if len(set(names)) != len(names):
            raise ValueError(f"delivery names must be unique, got {names}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.deliveries = {d.name: d for d in deliveries}
        self.metrics = metrics
        self.max_backoff = max_backoff
        self.restart_grace = restart_grace
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._pass_lock = threading.Lock()  # one delivery pass at a time
        self._confirmed: set[str] = set()  # alert ids this process has emitted firing
        self._conn = _connect(self.path)  # the pipeline thread's connection
        self._conn.executescript(_SCHEMA)
        self._conn.commit()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if metrics is not None:
            for name in self.deliveries:
                for result in ("ok", "error"):
                    metrics.alert_deliveries.labels(name, result)
        self._update_gauges(self._conn)

    # -- the pipeline's side (AlertSink) ---------------------------------------------
    def emit(self, alert: AlertRecord) -> None:
        """Write the record down for every delivery (a no-op for a record already there)."""
        now = self._clock()
        payload = alert.model_dump_json()
        if alert.status == "firing":
            with self._lock:
                self._confirmed.add(alert.alert_id)
        self._conn.executemany(
            "INSERT OR IGNORE INTO outbox (key, sink, alert_id, status, payload, created, next_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (alert.key, name, alert.alert_id, alert.status, payload, now, now)
                for name in self.deliveries
            ],
        )

    def flush(self) -> None:
        """Commit what was emitted (durable from here on) and wake the delivery thread."""
        self._conn.commit()
        self._wake.set()

    def close(self) -> None:
        """Commit, give the delivery thread a last round, and stop it; undelivered rows stay."""
        self.flush()
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=30.0)
            self._thread = None
        for delivery in self.deliveries.values():
            try:
                delivery.close()
            except Exception as exc:  # closing must not hide the rest
                log.warning("delivery close failed", sink=delivery.name, error=str(exc))
        self._conn.close()

    # -- the delivery thread ---------------------------------------------------------
    def start(self) -> Outbox:
        """Start delivering on a background thread."""
        self._thread = threading.Thread(target=self._run, name="shiftwatch-outbox", daemon=True)
        self._thread.start()
        return self

    def pending(self, sink: str | None = None) -> int:
        """Rows not yet acknowledged (by ``sink``, or by any)."""
        conn = _connect(self.path)
        try:
            if sink is None:
                row = conn.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL").fetchone()
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM outbox WHERE delivered IS NULL AND sink = ?", (sink,)
                ).fetchone()
            return int(row[0])
        finally:
            conn.close()

    def pump(self) -> float:
        """One delivery pass on the calling thread; seconds (by ``clock``) until the next is due.

        Delivers each sink's due rows in order, re-sends the firing alerts that are
        due, and updates the gauges; returns ``inf`` when nothing is waiting. Only
        committed rows (see :meth:`flush`) are seen. The delivery thread runs the same
        passes; passes never overlap.
        """
        conn = _connect(self.path)
        try:
            return self._pass(conn)
        finally:
            conn.close()

    def _pass(self, conn: sqlite3.Connection) -> float:
        with self._pass_lock:
            wait = self._deliver_due(conn)
            wait = min(wait, self._resend_due(conn))
            self._update_gauges(conn)
            return wait

    def _run(self) -> None:
        conn = _connect(self.path)
        try:
            while True:
                stopping = self._stop.is_set()
                wait = self._pass(conn)
                if stopping:
                    return
                self._wake.wait(timeout=max(0.05, min(wait, 1.0)))
                self._wake.clear()
        except Exception:  # the thread must not die silently: log, and the rows stay
            log.exception("outbox thread failed; undelivered alerts stay in the outbox")
        finally:
            conn.close()

    def _deliver_due(self, conn: sqlite3.Connection) -> float:
        """Deliver each sink's due rows in order; seconds until the next is due."""
        now = self._clock()
        rows = conn.execute(
            "SELECT rowid, key, sink, status, alert_id, payload, attempts, next_at FROM outbox"
            " WHERE delivered IS NULL ORDER BY rowid"
        ).fetchall()
        blocked: set[str] = set()
        soonest = float("inf")
        for rowid, key, sink, status, aid, payload, attempts, next_at in rows:
            delivery = self.deliveries.get(sink)
            if delivery is None or sink in blocked:
                continue
            if next_at > now:
                blocked.add(sink)  # keep order: a later record waits for the earlier one
                soonest = min(soonest, next_at - now)
                continue
            try:
                delivery.deliver(AlertRecord.model_validate_json(payload))
            except Exception as exc:
                attempts += 1
                delay = min(self.max_backoff, 2.0 ** (attempts - 1)) * random.uniform(0.9, 1.1)
                conn.execute(
                    "UPDATE outbox SET attempts = ?, next_at = ?, last_error = ? WHERE rowid = ?",
                    (attempts, now + delay, str(exc)[:500], rowid),
                )
                conn.commit()
                blocked.add(sink)
                soonest = min(soonest, delay)
                self._count(sink, "error")
                log.warning(
                    "alert delivery failed; will retry",
                    sink=sink,
                    key=key,
                    attempts=attempts,
                    retry_in_s=round(delay, 1),
                    error=str(exc)[:200],
                )
                continue
            delivered = self._clock()
            conn.execute("UPDATE outbox SET delivered = ? WHERE rowid = ?", (delivered, rowid))
            if status == "firing" and delivery.resend_seconds:
                conn.execute(
                    "INSERT OR REPLACE INTO active (alert_id, sink, payload, last_sent)"
                    " VALUES (?, ?, ?, ?)",
                    (aid, sink, payload, delivered),
                )
            elif status == "resolved":
                conn.execute("DELETE FROM active WHERE alert_id = ? AND sink = ?", (aid, sink))
            conn.commit()
            self._count(sink, "ok")
            log.info("alert delivered", sink=sink, key=key, attempts=attempts + 1)
        return soonest

    def _resend_due(self, conn: sqlite3.Connection) -> float:
        """Re-send firing alerts to the receivers that expire them; seconds until the next."""
        now = self._clock()
        soonest = float("inf")
        for aid, sink, payload, last_sent in conn.execute(
            "SELECT alert_id, sink, payload, last_sent FROM active"
        ).fetchall():
            delivery = self.deliveries.get(sink)
            if delivery is None or not delivery.resend_seconds:
                continue
            with self._lock:
                confirmed = aid in self._confirmed
            if not confirmed and now - self._started > self.restart_grace:
                # Left firing by an earlier process and not detected again: let it expire.
                conn.execute("DELETE FROM active WHERE alert_id = ? AND sink = ?", (aid, sink))
                conn.commit()
                log.info("stopped re-sending an alert no longer detected", alert_id=aid, sink=sink)
                continue
            due = last_sent + delivery.resend_seconds
            if due > now:
                soonest = min(soonest, due - now)
                continue
            try:
                delivery.deliver(AlertRecord.model_validate_json(payload))
                result = "ok"
            except Exception as exc:
                result = "error"
                log.warning("alert re-send failed", sink=sink, alert_id=aid, error=str(exc)[:200])
            conn.execute(
                "UPDATE active SET last_sent = ? WHERE alert_id = ? AND sink = ?", (now, aid, sink)
            )
            conn.commit()
            self._count(sink, result)
            soonest = min(soonest, delivery.resend_seconds)
        return soonest

    def _count(self, sink: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.alert_deliveries.labels(sink, result).inc()

    def _update_gauges(self, conn: sqlite3.Connection) -> None:
        if self.metrics is None:
            return
        counts = dict.fromkeys(self.deliveries, 0)
        for sink, n in conn.execute(
            "SELECT sink, COUNT(*) FROM outbox WHERE delivered IS NULL GROUP BY sink"
        ).fetchall():
            if sink in counts:
                counts[sink] = int(n)
        for sink, n in counts.items():
            self.metrics.outbox_pending.labels(sink).set(n)
