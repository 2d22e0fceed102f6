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
from collections.abc import Sequence

import structlog
from kafka.errors import KafkaError

from monitor.alerts import AlertSink
from monitor.changelog import KafkaChangelog
from monitor.checks import ModelMonitor
from monitor.messages import DeadLetterSink, Message
from monitor.metrics import Metrics
from monitor.pipeline import BatchResult, Ledger, Pipeline, PipelineLimits
from monitor.policy import Policy
from monitor.state import Checkpoint, policy_digest
from monitor.verdict import VerdictBoard

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
        limits: PipelineLimits,
        changelog: KafkaChangelog,
        group: str,
        every_seconds: float,
    ) -> None:
        self.policy = policy
        self.dead_letters = dead_letters
        self.alert_sinks = list(alert_sinks)
        self.metrics = metrics
        self.limits = limits
        self.changelog = changelog
        self.group = group
        self.every_seconds = every_seconds
        self.verdicts = VerdictBoard()
        self.parts: dict[str, Pipeline] = {}
        self.positions: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._retired = Ledger()
        self._last = time.monotonic()
        self._closed = False
        self._digest = policy_digest(policy)

    def _new(self) -> Pipeline:
        return Pipeline(
            self.policy,
            dead_letters=self.dead_letters,
            alert_sinks=self.alert_sinks,
            metrics=self.metrics,
            limits=self.limits,
            verdicts=self.verdicts,
            declare=False,
            quiet=True,
        )

    def _key(self, tp: str) -> str:
        return f"{self.group}/{tp}"

    @property
    def monitors(self) -> dict[str, ModelMonitor]:
        """Every partition's model monitors (for reading; models do not span partitions)."""
        return {name: m for part in self.parts.values() for name, m in part.monitors.items()}

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
            part = self._new()
            checkpoint = checkpoints.get(self._key(tp))
            if checkpoint is not None and checkpoint.policy == self._digest:
                part.restore(checkpoint.state)
                seeks[tp] = self.positions[tp] = int(checkpoint.positions["offset"])
                log.info("restored partition from the changelog", partition=tp, offset=seeks[tp])
            elif checkpoint is not None:
                seeks[tp] = self.positions[tp] = int(checkpoint.positions["offset"])
                log.warning("changelog checkpoint under another policy: fresh detectors", tp=tp)
            self.parts[tp] = part
        return seeks

    def revoked(self, tps: list[str]) -> dict[str, int]:
        """Checkpoint and release the revoked partitions; the offsets to commit for them."""
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
            self._retired.add(part.ledger)
        return offsets

    # -- processing ------------------------------------------------------------------------
    def process(self, batch: Sequence[Message]) -> BatchResult:
        """Process each partition's messages with its own pipeline, in order."""
        groups: dict[str, list[Message]] = {}
        for m in batch:
            groups.setdefault(f"{m.topic}:{m.partition}", []).append(m)
        total = BatchResult()
        for tp, messages in groups.items():
            part = self.parts.get(tp)
            if part is None:  # a partition polled before its assignment callback ran
                part = self.parts[tp] = self._new()
            result = part.process(messages)
            self.positions[tp] = max(self.positions.get(tp, -1), messages[-1].offset + 1)
            self._dirty.add(tp)
            total.consumed += result.consumed
            total.processed += result.processed
            total.dead_lettered += result.dead_lettered
            total.duplicates += result.duplicates
            total.alerts.extend(result.alerts)
            total.seconds += result.seconds
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
                state=part.snapshot(),
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
        self.changelog.close()
