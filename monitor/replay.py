"""``shiftwatch replay``: the pipeline over a JSONL file, deterministic and offline."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO

import structlog

from monitor.alerts import AlertSink, JsonlAlertSink, LogAlertSink
from monitor.events import Rejection
from monitor.messages import DeadLetterSink, JsonlDeadLetterSink, Message
from monitor.metrics import Metrics
from monitor.pipeline import Ledger, Pipeline, PipelineLimits
from monitor.policy import Policy
from monitor.sources.file import iter_file_batches

__all__ = ["LogDeadLetterSink", "Progress", "replay"]

log = structlog.get_logger("shiftwatch.replay")


class LogDeadLetterSink:
    """Without ``--dead-letter-out``: log each rejected line's number and reason, not its text."""

    def send(self, message: Message, rejection: Rejection) -> None:
        log.warning("rejected", line=message.offset, code=rejection.code, reason=rejection.reason)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total_bytes: int | None, stream: IO[str] = sys.stderr) -> None:
        self.total = total_bytes
        self.stream = stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, ledger: Ledger, bytes_read: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < 0.2):
            return
        self._last = now
        rate = ledger.consumed / max(now - self.started, 1e-9)
        if self.total:
            frac = min(bytes_read / self.total, 1.0)
            bar = "#" * int(frac * 30)
            head = f"[{bar:<30}] {frac:6.1%}"
        else:
            head = "[replaying]"
        self.stream.write(
            f"\r{head} {ledger.consumed:>10,} lines {rate:>9,.0f}/s "
            f"dead-letter {ledger.dead_lettered:,} dup {ledger.duplicates:,} alerts {ledger.alerts}"
        )
        if final:
            self.stream.write("\n")
        self.stream.flush()


def replay(
    events: str | Path,
    policy: Policy,
    *,
    alerts_out: str | Path | None,
    dead_letter_out: str | Path | None = None,
    batch_size: int = 5000,
    limits: PipelineLimits | None = None,
    metrics: Metrics | None = None,
    show_progress: bool = True,
) -> Ledger:
    """Run the pipeline over ``events`` (``-`` for stdin) and return the ledger.

    ``fired_at`` of each alert is the event time of the crossing event, so the
    alerts file depends only on the input and the policy.
    """
    sinks: list[AlertSink] = [LogAlertSink()]
    if alerts_out is not None:
        sinks.append(JsonlAlertSink(alerts_out, append=False))
    dead: DeadLetterSink = (
        JsonlDeadLetterSink(dead_letter_out) if dead_letter_out is not None else LogDeadLetterSink()
    )
    pipeline = Pipeline(
        policy, dead_letters=dead, alert_sinks=sinks, metrics=metrics, limits=limits, clock="event"
    )
    total = os.path.getsize(events) if str(events) != "-" and Path(events).is_file() else None
    progress = Progress(total) if show_progress else None
    bytes_read = 0
    try:
        for batch in iter_file_batches(events, batch_size):
            pipeline.process(batch)
            if progress is not None:
                bytes_read += sum(len(m.value) + 1 for m in batch)
                progress.update(pipeline.ledger, bytes_read)
    finally:
        pipeline.close()
    if progress is not None:
        progress.update(pipeline.ledger, bytes_read, final=True)
    return pipeline.ledger
