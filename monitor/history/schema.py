"""The tables of the history file (format ``shiftwatch-history/1``), one per kind of row.

Columns follow the fields of :mod:`monitor.history.rows` in order; each
table's primary key is what makes a rewrite of the same row a replacement.
``served`` also keeps the first and last inference time of each bucket, from
which the version spans are read. JSON columns hold sorted-key JSON.
"""

from __future__ import annotations

__all__ = ["SCHEMA", "TIMED_TABLES"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    model TEXT NOT NULL, at REAL NOT NULL, policy TEXT NOT NULL,
    PRIMARY KEY (model, at)
);
CREATE TABLE IF NOT EXISTS checks (
    model TEXT NOT NULL, version TEXT NOT NULL, check_name TEXT NOT NULL, segment TEXT NOT NULL,
    at REAL NOT NULL, state TEXT NOT NULL, observed REAL, reference REAL, lower REAL, upper REAL,
    statistic REAL, threshold REAL, candidate_seen REAL NOT NULL, baseline_seen REAL NOT NULL,
    PRIMARY KEY (model, version, check_name, segment, at)
);
CREATE TABLE IF NOT EXISTS served (
    model TEXT NOT NULL, version TEXT NOT NULL, at REAL NOT NULL, baseline INTEGER NOT NULL,
    inferences INTEGER NOT NULL, actions INTEGER NOT NULL, outcomes INTEGER NOT NULL,
    latency_count INTEGER NOT NULL, latency_sum_ms REAL NOT NULL, latency_bins TEXT NOT NULL,
    first_at REAL, last_at REAL,
    PRIMARY KEY (model, version, at)
);
CREATE TABLE IF NOT EXISTS tools (
    model TEXT NOT NULL, version TEXT NOT NULL, at REAL NOT NULL, action TEXT NOT NULL,
    tool TEXT NOT NULL, privileged INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (model, version, at, action, tool, privileged)
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT NOT NULL, status TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    check_name TEXT NOT NULL, segment TEXT NOT NULL, action TEXT NOT NULL,
    event_time REAL NOT NULL, fired_at REAL NOT NULL, resolved_at REAL, record TEXT NOT NULL,
    PRIMARY KEY (alert_id, status)
);
CREATE TABLE IF NOT EXISTS verdicts (
    model TEXT NOT NULL, version TEXT NOT NULL, at REAL NOT NULL, verdict TEXT NOT NULL,
    reasons TEXT NOT NULL,
    PRIMARY KEY (model, version, at)
);
CREATE TABLE IF NOT EXISTS drift (
    model TEXT NOT NULL, at REAL NOT NULL, detected INTEGER NOT NULL, checks TEXT NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (model, at)
);
CREATE TABLE IF NOT EXISTS signoffs (
    model TEXT NOT NULL, version TEXT NOT NULL, at REAL NOT NULL, decision TEXT NOT NULL,
    by TEXT NOT NULL, note TEXT NOT NULL,
    PRIMARY KEY (model, version, at, by)
);
CREATE INDEX IF NOT EXISTS checks_at ON checks (at);
CREATE INDEX IF NOT EXISTS served_at ON served (at);
CREATE INDEX IF NOT EXISTS tools_at ON tools (at);
CREATE INDEX IF NOT EXISTS alerts_at ON alerts (event_time);
CREATE INDEX IF NOT EXISTS verdicts_at ON verdicts (at);
CREATE INDEX IF NOT EXISTS drift_at ON drift (at);
"""

#: The tables retention applies to, with their time column (models and sign-offs are kept).
TIMED_TABLES: tuple[tuple[str, str], ...] = (
    ("checks", "at"),
    ("served", "at"),
    ("tools", "at"),
    ("alerts", "event_time"),
    ("verdicts", "at"),
    ("drift", "at"),
)
