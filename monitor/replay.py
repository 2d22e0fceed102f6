"""``shiftwatch replay``: the pipeline over a JSONL file, deterministic and offline."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import structlog

from monitor.alerts import AlertSink, JsonlAlertSink, LogAlertSink
from monitor.checkpointer import Checkpointer, restore_outputs
from monitor.config import LimitsSettings
from monitor.events import Rejection
from monitor.history.recorder import DEFAULT_RESOLUTION_SECONDS, HistoryRecorder
from monitor.history.store import DEFAULT_RETENTION_SECONDS, history_file
from monitor.messages import JsonlDeadLetterSink, Message
from monitor.metrics import Metrics
from monitor.pipeline import Ledger, Pipeline
from monitor.policy import Policy
from monitor.reorder import reordered
from monitor.sources.file import input_name, iter_file_positions
from monitor.state import (
    FIX_REPLAY,
    Mismatch,
    SqliteStateStore,
    guarded,
    load_checkpoint,
    policy_digest,
    restore_pipeline,
)
from monitor.summary import replay_summary

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
            f"\r\x1b[K{head} {ledger.consumed:>10,} lines {rate:>9,.0f}/s "
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
    limits: LimitsSettings | None = None,
    metrics: Metrics | None = None,
    show_progress: bool = True,
    state_dir: str | Path | None = None,
    checkpoint_seconds: float = 5.0,
    state_mismatch: Mismatch = "fail",
    reorder_window: float = 0.0,
    summary: dict[str, Any] | None = None,
    history_resolution: float = DEFAULT_RESOLUTION_SECONDS,
    history_retention: float = DEFAULT_RETENTION_SECONDS,
) -> Ledger:
    """Run the pipeline over ``events`` (``-`` for stdin) and return the ledger.

    ``fired_at`` of each alert is the event time of the crossing event, so the
    alerts file depends only on the input and the policy.

    With ``state_dir`` the run checkpoints (:mod:`monitor.state`) every
    ``checkpoint_seconds`` and at the end; run again with the same arguments
    after an interruption (even SIGKILL), it resumes from the last checkpoint,
    cutting the output files back to their checkpointed sizes, and the output
    is the same as an uninterrupted run's. A completed run's state is not
    resumed: the same command then replays from the start. State that cannot
    be restored (damaged, another key or format) raises
    :class:`~monitor.state.StateMismatch` under ``state_mismatch="fail"``;
    under ``"fresh"`` it is discarded and the replay starts from the beginning.

    ``reorder_window``: lines are put in event-time order within this many seconds
    (:mod:`monitor.reorder`); lines further out of order are counted as late.
    ``summary``, if given, is filled with :func:`monitor.summary.replay_summary`
    at the end.

    With ``state_dir`` the run also records its history (:mod:`monitor.history`) into
    ``state_dir/history.sqlite3``, in buckets of ``history_resolution`` seconds of event
    time, keeping ``history_retention`` seconds of it.
    """
    if not reorder_window >= 0:
        raise ValueError(f"--reorder-window must be >= 0 seconds, got {reorder_window}")
    if reorder_window and state_dir is not None:
        raise ValueError(
            "--reorder-window cannot be combined with --state yet: lines held for "
            "reordering are not in a checkpoint (fix: sort the file by time, then use --state)"
        )
    if not (0 < history_resolution < float("inf")):
        raise ValueError(
            f"--history-resolution must be a number of seconds > 0, got {history_resolution}"
        )
    if not (history_retention > 0):
        raise ValueError(f"--history-retention must be > 0 days, got {history_retention / 86400}")
    if state_dir is not None and str(events) == "-":
        raise ValueError("--state needs a file to resume: standard input cannot be re-read")
    if state_dir is not None and Path(state_dir).exists() and not Path(state_dir).is_dir():
        raise ValueError(
            f"--state {state_dir}: is a file, and --state takes a directory "
            "(fix: give a directory; it is created if missing)"
        )
    store = SqliteStateStore(Path(state_dir) / "replay.sqlite3") if state_dir is not None else None
    outputs = {
        "alerts": str(alerts_out) if alerts_out is not None else None,
        "dead_letters": str(dead_letter_out) if dead_letter_out is not None else None,
    }
    sinks: list[AlertSink] = [LogAlertSink()]

    def new_pipeline() -> Pipeline:
        history = (
            HistoryRecorder(
                history_file(Path(state_dir)),
                resolution_seconds=history_resolution,
                retention_seconds=history_retention,
            )
            if state_dir is not None
            else None
        )
        return Pipeline(
            policy,
            dead_letters=LogDeadLetterSink(),
            metrics=metrics,
            limits=limits,
            clock="event",
            history=history,
        )

    pipeline = new_pipeline()
    start = (0, 0)
    fresh = "the replay starts from the beginning of the file"
    checkpoint = (
        load_checkpoint(store, state_mismatch, FIX_REPLAY, fresh) if store is not None else None
    )
    resume = (
        checkpoint is not None
        and not checkpoint.positions.get("done")
        and checkpoint.positions.get("events") == str(events)
        and checkpoint.positions.get("outputs_paths") == outputs
    )
    if checkpoint is not None and resume and checkpoint.policy != policy_digest(pipeline.policy):
        raise ValueError(
            f"the state in {state_dir} was written under another policy: "
            "use a new --state directory, or the policy it was written under"
        )
    if store is not None and checkpoint is not None and resume:
        # Signed and decoded, but can this release's pipeline take its state?
        state = checkpoint.state

        def restore() -> bool:
            restore_pipeline(pipeline, state)
            return True

        restored = guarded(store, restore, state_mismatch, FIX_REPLAY, fresh)
        if restored is None:  # discarded; the pipeline may be partly restored
            pipeline, checkpoint, resume = new_pipeline(), None, False
    # The file is the one input: its event time is the pipeline's (also after a restore).
    pipeline.assigned([f"{input_name(events)}:0"])
    if checkpoint is not None and resume:
        byte, line = checkpoint.positions["file"]
        start = (int(byte), int(line))
        restore_outputs(checkpoint, {k: Path(v) if v else None for k, v in outputs.items()})
        log.info("resuming", events=str(events), line=start[1], state=str(state_dir))
    alerts_sink = JsonlAlertSink(alerts_out, append=resume) if alerts_out is not None else None
    if alerts_sink is not None:
        sinks.append(alerts_sink)
    dead_sink = (
        JsonlDeadLetterSink(dead_letter_out, append=resume) if dead_letter_out is not None else None
    )
    if pipeline.history is not None:
        sinks.append(pipeline.history)
    pipeline.alert_sinks = sinks
    pipeline.dead_letters = dead_sink if dead_sink is not None else LogDeadLetterSink()
    total = os.path.getsize(events) if str(events) != "-" and Path(events).is_file() else None
    progress = Progress(total) if show_progress else None

    files = {"alerts": alerts_sink, "dead_letters": dead_sink}
    checkpointer = (
        Checkpointer(
            store,
            pipeline,
            checkpoint_seconds,
            {name: sink for name, sink in files.items() if sink is not None},
        )
        if store is not None
        else None
    )

    def save(position: tuple[int, int], done: bool = False) -> None:
        if checkpointer is not None:
            where = {"events": str(events), "file": list(position), "outputs_paths": outputs}
            checkpointer.save(**where, done=done)

    position = start
    try:
        batches = iter_file_positions(events, batch_size, start)
        if reorder_window:
            batches = reordered(batches, reorder_window)
        for batch, position in batches:
            pipeline.process(batch)
            if progress is not None:
                progress.update(pipeline.ledger, position[0])
            if checkpointer is not None and checkpointer.due:
                save(position)
        pipeline.end_of_input()
        save(position, done=True)
        if summary is not None:
            summary.update(replay_summary(pipeline))
    finally:
        pipeline.close()
        if checkpointer is not None:
            checkpointer.close()
    if progress is not None:
        progress.update(pipeline.ledger, position[0], final=True)
    return pipeline.ledger
