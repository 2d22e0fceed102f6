"""One pipeline per assigned partition, whose state moves with the partition on a rebalance.

For N replicas in one consumer group. Events are keyed by model, so a
partition carries whole models, and its pipeline (detectors, buckets, dedupe
and join tables) depends on nothing outside it. Each partition's pipeline is
checkpointed to a compacted changelog topic (:mod:`monitor.changelog`) with
its next offset; offsets are committed only with a checkpoint. When a
partition is revoked its pipeline is checkpointed, committed and released
(its metric children and verdicts withdrawn, as another replica now owns its
models); when one is assigned, its latest checkpoint is restored and the
partition is seeked to the checkpointed offset. A replica that dies without a
clean revoke loses only what followed its last checkpoint, which the new
owner processes again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import structlog
from kafka.errors import KafkaError

from monitor.alerts import AlertSink
from monitor.changelog import KafkaChangelog
from monitor.config import LimitsSettings
from monitor.history.recorder import HistoryRecorder
from monitor.messages import DeadLetterSink, Message
from monitor.metrics import Metrics
from monitor.pipeline import BatchResult, Ledger, Pipeline
from monitor.policy import Policy
from monitor.state import (
    FIX_CHANGELOG,
    Checkpoint,
    CheckpointError,
    Mismatch,
    StateMismatch,
    policy_digest,
    refuse,
    restore_pipeline,
)

__all__ = ["PartitionedPipeline"]

log = structlog.get_logger("shiftwatch.partitions")


class PartitionedPipeline:
    """Routes each message to its partition's pipeline; checkpoints each to the changelog."""

    def __init__(
        self,
        policy: Policy,
        *,
        dead_letters: DeadLetterSink,
        alert_sinks: Sequence[AlertSink],
        metrics: Metrics,
        limits: LimitsSettings,
        changelog: KafkaChangelog,
        group: str,
        every_seconds: float,
        mismatch: Mismatch = "fail",
        history: Callable[[], HistoryRecorder] | None = None,
    ) -> None:
        """``mismatch``: what to do with a changelog entry that cannot be restored
        (``state.mismatch``): ``fail`` sets :attr:`refused`, which the service raises
        after the poll that assigned the partition; ``fresh`` starts the partition
        afresh from the group's committed offset. ``history``: makes each partition's
        history recorder (its open buckets move with the partition's checkpoint)."""
        self.policy = policy
        self.dead_letters = dead_letters
        self.alert_sinks = list(alert_sinks)
        self.metrics = metrics
        self.limits = limits
        self.changelog = changelog
        self.group = group
        self.every_seconds = every_seconds
        self.verdicts = metrics.verdicts
        self.parts: dict[str, Pipeline] = {}
        self.positions: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._retired = Ledger()
        self._last = time.monotonic()
        self._closed = False
        self._digest = policy_digest(policy)
        self.mismatch: Mismatch = mismatch
        self.refused: StateMismatch | None = None
        self.history = history

    def _new(self, tp: str) -> Pipeline:
        recorder = self.history() if self.history is not None else None
        part = Pipeline(
            self.policy,
            dead_letters=self.dead_letters,
            alert_sinks=[*self.alert_sinks, recorder] if recorder is not None else self.alert_sinks,
            history=recorder,
            metrics=self.metrics,
            limits=self.limits,
            verdicts=self.verdicts,
            declare=False,
            quiet=True,
        )
        part.assigned([tp])
        return part

    def _key(self, tp: str) -> str:
        return f"{self.group}/{tp}"

    # -- rebalances (called inside the consumer's poll, on the service thread) -----------
    def assigned(self, tps: list[str]) -> dict[str, int]:
        """Restore the newly assigned partitions; the offsets to seek them to."""
        try:
            checkpoints = self.changelog.load([self._key(tp) for tp in tps])
        except KafkaError as exc:  # no changelog to read: fresh detectors, not a dead consumer
            log.error("changelog unreadable; partitions start afresh", error=str(exc)[:200])
            checkpoints = {}
        seeks: dict[str, int] = {}
        for tp in tps:
            part = self._new(tp)
            checkpoint = checkpoints.get(self._key(tp))
            try:
                if isinstance(checkpoint, CheckpointError):
                    raise checkpoint
                if checkpoint is not None:
                    seeks[tp] = self._restore(tp, part, checkpoint)
            except CheckpointError as err:
                # Raised by the service after this poll (a rebalance callback cannot end it).
                try:
                    refuse(
                        err,
                        where=f"changelog topic {self.changelog.topic} (key {self._key(tp)})",
                        fix=FIX_CHANGELOG,
                        mismatch=self.mismatch,
                        fresh="the partition starts afresh from the group's committed offset",
                    )
                except StateMismatch as refused:
                    self.refused = self.refused or refused
                    continue
                part = self._new(tp)  # the old one may be partly restored
                self.positions.pop(tp, None)
            self.parts[tp] = part
        return seeks

    def _restore(self, tp: str, part: Pipeline, checkpoint: Checkpoint) -> int:
        """Restore ``part`` from ``checkpoint`` (unless it is of another policy); its offset."""
        try:
            offset = int(checkpoint.positions["offset"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError("state", f"no offset in its positions ({exc})") from exc
        if checkpoint.policy == self._digest:
            restore_pipeline(part, checkpoint.state)
            log.info("restored partition from the changelog", partition=tp, offset=offset)
        else:
            log.warning("changelog checkpoint under another policy: fresh detectors", tp=tp)
        self.positions[tp] = offset
        return offset

    def revoked(self, tps: list[str]) -> dict[str, int]:
        """Checkpoint and release the revoked partitions; the offsets to commit for them."""
        if self.refused is not None:  # ending (exit 2) before processing: nothing to save
            return {}
        offsets: dict[str, int] = {}
        for tp in tps:
            part = self.parts.pop(tp, None)
            if part is None:
                continue
            if tp in self._dirty:
                self._save(tp, part)
            if tp in self.positions:
                offsets[tp] = self.positions.pop(tp)
            part.release()
            if part.history is not None:  # its open buckets go on in the next owner's file
                part.history.close()
            self._retired.add(part.ledger)
        return offsets

    # -- processing ------------------------------------------------------------------------
    def process(
        self, batch: Sequence[Message], *, backlog: Mapping[str, int | None] | None = None
    ) -> BatchResult:
        """Process each partition's messages with its own pipeline, in order."""
        groups: dict[str, list[Message]] = {}
        for m in batch:
            groups.setdefault(f"{m.topic}:{m.partition}", []).append(m)
        total = BatchResult()
        if not batch:  # an idle poll: event time may still move on in each partition
            for tp, idle in self.parts.items():
                result = idle.process([], backlog=backlog)
                if result.alerts:
                    self._dirty.add(tp)
                total.add(result)
            return total
        for tp, messages in groups.items():
            part = self.parts.get(tp)
            if part is None:  # a partition polled before its assignment callback ran
                part = self.parts[tp] = self._new(tp)
            result = part.process(messages, backlog=backlog)
            self.positions[tp] = max(self.positions.get(tp, -1), messages[-1].offset + 1)
            self._dirty.add(tp)
            total.add(result)
        return total

    @property
    def ledger(self) -> Ledger:
        total = Ledger()
        total.add(self._retired)
        for part in self.parts.values():
            total.add(part.ledger)
        return total

    # -- the checkpointer interface of the service -------------------------------------------
    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    @property
    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_seconds

    def advance(self, batch: Sequence[Message]) -> None:
        return None  # positions are tracked by process()

    def save(self) -> None:
        """Checkpoint every partition that processed messages since its last checkpoint."""
        for tp in sorted(self._dirty):
            part = self.parts.get(tp)
            if part is not None:
                self._save(tp, part)
        self._last = time.monotonic()

    def _save(self, tp: str, part: Pipeline) -> None:
        self.changelog.save(
            self._key(tp),
            Checkpoint(
                policy=self._digest,
                state=part.state(),
                positions={"offset": self.positions.get(tp, 0)},
            ),
        )
        self._dirty.discard(tp)

    def close(self) -> None:
        """Flush and close the shared sinks and the changelog (once: it is pipeline and
        checkpointer of the service both, and closed as each)."""
        if self._closed:
            return
        self._closed = True
        self.dead_letters.close()
        for sink in self.alert_sinks:
            sink.close()
        for part in self.parts.values():
            if part.history is not None:
                part.history.close()
        self.changelog.close()
