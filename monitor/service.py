"""The service loop: poll a batch, process it, commit; stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import structlog
from kafka.errors import KafkaError

from monitor.messages import Message
from monitor.pipeline import BatchResult, Pipeline
from monitor.sources import Source
from monitor.state import Checkpointer

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
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.checkpointer = checkpointer
        self.on_batch = on_batch
        self.retry_seconds = retry_seconds
        self.running = False

    def readiness(self) -> tuple[bool, str]:
        """For ``/readyz``: ready while the loop runs and the source is healthy."""
        if not self.running:
            return False, "not consuming"
        if not self.source.healthy:
            return False, "source unreachable"
        return True, "consuming"

    def _commit(self, batch: list[Message]) -> None:
        """Without a state store, commit each batch; with one, commit only what is checkpointed.

        With checkpoints, Kafka's committed offsets never run ahead of the saved
        state: a restart resumes both from the same cut.
        """
        cp = self.checkpointer
        if cp is None:
            self.source.commit(batch)
            return
        cp.advance(batch)
        if cp.due:
            cp.save()
            self.source.commit_positions(cp.positions)

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
                    cp = self.checkpointer
                    if cp is not None and cp.dirty and cp.due:  # idle: save what is pending
                        cp.save()
                        self.source.commit_positions(cp.positions)
                    continue
                # Process the whole batch, then commit: a crash in between replays it.
                result = self.pipeline.process(batch)
                try:
                    self._commit(batch)
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
                self.checkpointer.save()
                try:
                    self.source.commit_positions(self.checkpointer.positions)
                except KafkaError as exc:
                    log.warning("final commit failed", error=type(exc).__name__)
        finally:
            self.running = False
            started = time.monotonic()
            try:
                self.source.close()
            finally:
                self.pipeline.close()
                if self.checkpointer is not None:
                    self.checkpointer.store.close()
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
