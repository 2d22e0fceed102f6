"""The history recorder: what the running pipeline writes into its history file.

Fed by :class:`monitor.pipeline.Pipeline` after each batch (``history=``) and
delivered its alerts as an :class:`~monitor.alerts.AlertSink`, it writes to a
:class:`~monitor.history.store.HistoryStore`:

- per version and resolution bucket of event time, what it served
  (:mod:`monitor.history.tally`); a bucket is written once the model's
  watermark (:mod:`monitor.watermarks`) has passed its end;
- when the watermark crosses a bucket end, every published verdict's checks
  (:func:`monitor.verdict.check_view`) as check samples at that end, and the
  baseline's own drift: once per bucket, not per event;
- each verdict change, at the model's watermark; every alert record; the
  model's policy when it is first seen or has changed.

On close (and so at the end of a replay) the open buckets are written too,
and sampled at their end. Its open buckets and the verdicts it last recorded
are part of the pipeline's checkpoint (:meth:`state`), and every row is keyed,
so a run resumed from a checkpoint rewrites what it reprocesses identically.
A write that fails (disk full, file locked) is logged, counted in
``shiftwatch_history_write_failures_total``, and its rows are dropped: the
monitor goes on.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from monitor.alerts import AlertRecord
from monitor.history.rows import AlertRow, CheckSample, DriftSample, ModelRecord, VerdictChange
from monitor.history.store import Flush, HistoryError, HistoryStore
from monitor.history.tally import Tally
from monitor.router import RouteResult

if TYPE_CHECKING:
    from monitor.pipeline import Pipeline

__all__ = ["DEFAULT_RESOLUTION_SECONDS", "HistoryRecorder", "alert_row"]

log = structlog.get_logger("shiftwatch.history")

#: Seconds of event time per bucket (five minutes: a week is about 2,000 points).
DEFAULT_RESOLUTION_SECONDS = 300.0
#: Wall seconds between attempts to open a history file that could not be opened.
_REOPEN_SECONDS = 10.0
#: What a verdict change keeps of each reason: no payloads, no evidence.
_REASON_KEYS = ("check", "segment", "state", "reason", "action")

_Failure = (sqlite3.Error, OSError, HistoryError)


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def alert_row(alert: AlertRecord) -> AlertRow:
    """An alert record as a history row (times parsed from RFC 3339 to epoch seconds)."""
    return AlertRow(
        alert_id=alert.alert_id,
        status=alert.status,
        model=alert.model,
        version=alert.version,
        check=alert.check,
        segment=",".join(f"{k}={v}" for k, v in sorted(alert.segment.items())),
        action=alert.action,
        event_time=datetime.fromisoformat(alert.event_time).timestamp(),
        fired_at=datetime.fromisoformat(alert.fired_at).timestamp(),
        resolved_at=_epoch(alert.resolved_at),
        record=alert.model_dump(mode="json"),
    )


def _sample(model: str, version: str, at: float, view: dict[str, Any]) -> CheckSample:
    return CheckSample(
        model=model,
        version=version,
        check=view["check"],
        segment=view["segment"],
        at=at,
        state=view["state"],
        observed=view["observed"],
        reference=view["reference"],
        lower=view["allowed"]["lower"],
        upper=view["allowed"]["upper"],
        statistic=view["statistic"],
        threshold=view["threshold"],
        candidate_seen=float(view["seen"]["candidate"]),
        baseline_seen=float(view["seen"]["baseline"]),
    )


class HistoryRecorder:
    """Records a pipeline's history into the file at ``path`` (opened on the first write).

    Parameters
    ----------
    path
        The history file (:func:`monitor.history.store.history_file`).
    resolution_seconds
        Event-time seconds per bucket.
    retention_seconds
        The store's retention (None: its default, 35 days).
    """

    def __init__(
        self,
        path: Path,
        *,
        resolution_seconds: float = DEFAULT_RESOLUTION_SECONDS,
        retention_seconds: float | None = None,
    ) -> None:
        if not (resolution_seconds > 0 and math.isfinite(resolution_seconds)):
            raise ValueError(f"resolution_seconds must be > 0, got {resolution_seconds}")
        if retention_seconds is not None and not retention_seconds > 0:
            raise ValueError(f"retention_seconds must be > 0, got {retention_seconds}")
        self.path = Path(path)
        self.resolution_seconds = float(resolution_seconds)
        self.retention_seconds = retention_seconds
        self._store: HistoryStore | None = None
        self._next_open = 0.0
        self._pipeline: Pipeline | None = None
        self._tallies: dict[str, Tally] = {}
        #: Per model, the event time its policy was recorded at (None: not yet).
        self._policy_at: dict[str, float | None] = {}
        self._verdicts: dict[tuple[str, str], str] = {}
        self._pending = Flush()
        self._failing = 0
        self._closed = False

    def attach(self, pipeline: Pipeline) -> None:
        """Record this pipeline (called by its constructor)."""
        self._pipeline = pipeline
        for name, runners in pipeline.models.items():
            self._tallies[name] = Tally(name, runners.policy.baseline, self.resolution_seconds)
            self._policy_at[name] = None

    # -- the pipeline's hook ----------------------------------------------------------------
    def observe(self, routed: RouteResult, backlog: Mapping[str, int | None] | None) -> None:
        """After a batch: count its events, write the buckets its watermarks closed, sample
        the checks at each crossed bucket end, record verdict changes."""
        pipeline = self._pipeline
        if pipeline is None or self._closed:
            return
        for name, work in routed.work.items():
            tally = self._tallies.get(name)
            if tally is not None:
                tally.add(work)
        for name, tally in self._tallies.items():
            mark = pipeline.watermarks.watermark(name, backlog)
            if not math.isfinite(mark):
                continue
            self._policy(name, mark)
            end = math.floor(mark / self.resolution_seconds) * self.resolution_seconds
            if end > tally.closed:
                served, tools = tally.close(end)
                self._pending.served += served
                self._pending.tools += tools
                self._sample(name, end)
            self._changes(name, mark)
        self._write()

    def _policy(self, name: str, mark: float) -> None:
        if self._policy_at.get(name) is None and self._pipeline is not None:
            self._policy_at[name] = mark
            policy = self._pipeline.models[name].policy.model_dump(mode="json")
            self._pending.models.append(ModelRecord(name, mark, policy))

    def _versions(self, name: str) -> list[str]:
        assert self._pipeline is not None
        return [v for m, v in self._pipeline.verdicts.known() if m == name]

    def _sample(self, name: str, at: float) -> None:
        """Every published check of the model, and its baseline's drift, at bucket end ``at``."""
        assert self._pipeline is not None
        for version in self._versions(name):
            verdict = self._pipeline.verdicts.get(name, version)
            if verdict is not None:
                self._pending.checks += [_sample(name, version, at, v) for v in verdict["checks"]]
        drift = self._pipeline.models[name].baseline_drift.view()
        self._pending.drift.append(
            DriftSample(
                name, at, bool(drift["detected"]), tuple(drift["checks"]), dict(drift["changes"])
            )
        )

    def _changes(self, name: str, mark: float) -> None:
        assert self._pipeline is not None
        for version in self._versions(name):
            verdict = self._pipeline.verdicts.get(name, version)
            if verdict is None or self._verdicts.get((name, version)) == verdict["verdict"]:
                continue
            self._verdicts[(name, version)] = verdict["verdict"]
            reasons = tuple(
                {k: r[k] for k in _REASON_KEYS if k in r} for r in verdict.get("reasons", [])
            )
            self._pending.verdicts.append(
                VerdictChange(name, version, mark, verdict["verdict"], reasons)
            )

    # -- the alert sink ----------------------------------------------------------------------
    def emit(self, alert: AlertRecord) -> None:
        self._pending.alerts.append(alert_row(alert))

    def flush(self) -> None:
        self._write()

    def close(self) -> None:
        """Write the open buckets (sampled at their end) and close the file; idempotent."""
        if self._closed:
            return
        pipeline = self._pipeline
        if pipeline is not None:
            for name, tally in self._tallies.items():
                served, tools = tally.rows(math.inf)  # still open: a restart goes on with them
                ends = [s.sample.at for s in served]
                # Event time may be held back by partitions that never spoke: their data
                # is written all the same.
                mark = pipeline.watermarks.watermark(name)
                if math.isfinite(mark):
                    ends.append(
                        (math.floor(mark / self.resolution_seconds) + 1) * self.resolution_seconds
                    )
                if not ends:
                    continue
                self._policy(name, max(ends))
                self._pending.served += served
                self._pending.tools += tools
                self._sample(name, max(ends))
        self._write()
        self._closed = True
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- writing -----------------------------------------------------------------------------
    def _opened(self) -> HistoryStore:
        """The store, opened now if it is not (retried every few seconds after a failure)."""
        if self._store is None:
            if time.monotonic() < self._next_open:
                raise HistoryError(f"{self.path} could not be opened; retrying shortly")
            try:
                self._store = HistoryStore(self.path, retention_seconds=self.retention_seconds)
            except BaseException:
                self._next_open = time.monotonic() + _REOPEN_SECONDS
                raise
        return self._store

    def _write(self) -> None:
        """Write what is pending in one transaction; on failure log, count and drop it."""
        pending = self._pending
        if not pending:
            return
        self._pending = Flush()
        try:
            self._opened().write(pending)
        except _Failure as exc:
            self._failed(exc)
            return
        if self._failing:
            log.info("history writes recovered", file=str(self.path), failed=self._failing)
            self._failing = 0

    def _count_failure(self) -> None:
        self._failing += 1
        if self._pipeline is not None:
            self._pipeline.metrics.history_write_failures.inc()

    def _failed(self, exc: BaseException) -> None:
        if self._failing == 0:
            log.error(
                "history write failed; its rows are dropped and the monitor goes on",
                file=str(self.path),
                error=f"{type(exc).__name__}: {str(exc)[:200]}",
            )
        self._count_failure()

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The open buckets, the verdicts last recorded and when each policy was (plain data)."""
        return {
            "resolution_seconds": self.resolution_seconds,
            "models": {
                name: {**tally.state(), "policy_at": self._policy_at.get(name)}
                for name, tally in self._tallies.items()
            },
            "verdicts": [[m, v, verdict] for (m, v), verdict in sorted(self._verdicts.items())],
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from :meth:`state`; None (a checkpoint from before the history) starts
        afresh. Buckets of another resolution are kept as they were."""
        if state is None:
            return
        for name, model_state in state["models"].items():
            tally = self._tallies.get(name)
            if tally is not None:
                tally.restore(model_state)
                at = model_state.get("policy_at")
                self._policy_at[name] = None if at is None else float(at)
        self._verdicts = {(str(m), str(v)): str(d) for m, v, d in state["verdicts"]}
