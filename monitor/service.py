"""The service loop: poll a batch, process it, commit; stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import structlog
from kafka.errors import KafkaError

from monitor.checkpointer import Checkpointer
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.pipeline import BatchResult, Pipeline
from monitor.sources import Source

__all__ = ["Service", "install_signal_handlers"]

log = structlog.get_logger("shiftwatch.service")


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop``; the loop then finishes its batch, commits and closes."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class Service:
    """Drives a :class:`~monitor.sources.Source` through a :class:`~monitor.pipeline.Pipeline`."""

    def __init__(
        self,
        source: Source,
        pipeline: Pipeline,
        *,
        on_batch: Callable[[BatchResult], None] | None = None,
        retry_seconds: float = 1.0,
        checkpointer: Checkpointer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.checkpointer = checkpointer
        self.on_batch = on_batch
        self.retry_seconds = retry_seconds
        self.metrics = metrics
        self.running = False

    def readiness(self) -> tuple[bool, str]:
        """For ``/readyz``: ready while the loop runs and the source is healthy."""
        if not self.running:
            return False, "not consuming"
        if not self.source.healthy:
            return False, "source unreachable"
        return True, "consuming"

    def _commit(self, batch: list[Message], alerted: bool = False) -> None:
        """Without a state store, commit each batch; with one, commit only what is checkpointed.

        With checkpoints, Kafka's committed offsets never run ahead of the saved
        state: a restart resumes both from the same cut.
        """
        cp = self.checkpointer
        if cp is None:
            self.source.commit(batch)
            return
        cp.advance(batch)
        if cp.due or alerted:
            # After a batch that raised alerts, at once: a restart (or the partition's
            # next owner) then does not raise them again.
            self._checkpoint(cp)

    def _checkpoint(self, cp: Checkpointer) -> None:
        """Save the state, then commit the offsets it was taken at (never the other way)."""
        started = time.monotonic()
        try:
            cp.save()
            self.source.commit_positions(cp.positions)
        except BaseException:
            if self.metrics is not None:
                self.metrics.checkpoint_failures.inc()
            raise
        if self.metrics is not None:
            self.metrics.checkpoint_seconds.observe(time.monotonic() - started)
            self.metrics.checkpoint_last.set(time.time())

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; always close the source and flush the sinks."""
        self.running = True
        backoff = self.retry_seconds
        try:
            while not stop.is_set():
                try:
                    batch = self.source.poll()
                except KafkaError as exc:
                    log.warning(
                        "poll failed; retrying",
                        error=type(exc).__name__,
                        retry_in_s=round(backoff, 1),
                    )
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = self.retry_seconds
                if not batch:
                    # Inputs that went idle may let event time, and so buckets, move on.
                    result = self.pipeline.process([], backlog=self.source.backlog())
                    cp = self.checkpointer
                    if cp is not None and (result.alerts or (cp.dirty and cp.due)):
                        try:  # idle: save what is pending, at once if it raised alerts
                            self._checkpoint(cp)
                        except KafkaError as exc:  # retried at the next idle poll
                            log.warning("checkpoint failed", error=type(exc).__name__)
                    if result.alerts and self.on_batch is not None:
                        self.on_batch(result)
                    continue
                # Process the whole batch, then commit: a crash in between replays it.
                result = self.pipeline.process(batch, backlog=self.source.backlog())
                try:
                    self._commit(batch, alerted=bool(result.alerts))
                except KafkaError as exc:
                    # Typically a rebalance: the partition's new owner re-reads the batch
                    # from the last commit, and ids already seen here are dropped as duplicates.
                    log.warning(
                        "commit failed; batch will be redelivered", error=type(exc).__name__
                    )
                if self.on_batch is not None:
                    self.on_batch(result)
            if self.checkpointer is not None:
                # A clean stop: everything processed is checkpointed and committed.
                try:
                    self._checkpoint(self.checkpointer)
                except KafkaError as exc:  # a restart resumes from the last checkpoint
                    log.warning("final checkpoint failed", error=type(exc).__name__)
        finally:
            self.running = False
            started = time.monotonic()
            try:
                self.source.close()
            finally:
                self.pipeline.close()
                if self.checkpointer is not None:
                    self.checkpointer.close()
            ledger = self.pipeline.ledger
            log.info(
                "stopped",
                consumed=ledger.consumed,
                processed=ledger.processed,
                dead_lettered=ledger.dead_lettered,
                duplicates=ledger.duplicates,
                alerts=ledger.alerts,
                close_s=round(time.monotonic() - started, 3),
            )
