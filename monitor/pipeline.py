"""The processing pipeline shared by ``run``, ``replay`` and ``demo``.

``Pipeline.process(batch)`` decodes, deduplicates and routes a batch of raw
messages, updates the detectors once, and hands new alerts to the sinks. It
keeps the ledger ``consumed = processed + dead_lettered + duplicates``.
"""

from __future__ import annotations

import pickle
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import structlog

from monitor.alerts import AlertRecord, AlertSink
from monitor.checks import CheckStatus, Clock, ModelMonitor, segment_label
from monitor.events import ActionEvent, InferenceEvent, OutcomeEvent, Rejection, decode
from monitor.messages import DeadLetterSink, Message
from monitor.metrics import CHECK_STATES, Metrics
from monitor.policy import Policy
from monitor.router import Deduper, JoinTable
from monitor.state import policy_digest
from monitor.verdict import VerdictBoard

__all__ = ["BatchResult", "Ledger", "Pipeline", "PipelineLimits"]

log = structlog.get_logger("shiftwatch.pipeline")


@dataclass(frozen=True, slots=True)
class PipelineLimits:
    """Memory bounds of the routing state, and how far ahead of the clock an event may be."""

    dedupe_window: int = 1_000_000
    join_capacity: int = 500_000
    join_ttl_seconds: float = 14 * 86400.0
    segment_cap: int = 20
    #: Events stamped further than this in the future are rejected: one such event
    #: would otherwise move event time forward and make every honest event late.
    max_future_seconds: float = 300.0
    #: Larger messages are dead-lettered unread (code ``too_large``).
    max_message_bytes: int = 1 << 20


@dataclass(slots=True)
class Ledger:
    """Running totals; ``consumed == processed + dead_lettered + duplicates`` always holds."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    unjoined: int = 0
    unmonitored: int = 0
    alerts: int = 0

    def balanced(self) -> bool:
        return self.consumed == self.processed + self.dead_lettered + self.duplicates

    def add(self, other: Ledger) -> None:
        """Add another ledger's totals (e.g. of another partition's pipeline).

        >>> total = Ledger(consumed=2, processed=2)
        >>> total.add(Ledger(consumed=1, duplicates=1, alerts=1))
        >>> total.consumed, total.duplicates, total.alerts, total.balanced()
        (3, 1, 1, True)
        """
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(slots=True)
class BatchResult:
    """What one call to :meth:`Pipeline.process` did."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    alerts: list[AlertRecord] = field(default_factory=list)
    seconds: float = 0.0


class Pipeline:
    """Decode -> dedupe -> route -> detect -> alert, one batch at a time."""

    def __init__(
        self,
        policy: Policy,
        *,
        dead_letters: DeadLetterSink,
        alert_sinks: Sequence[AlertSink] = (),
        metrics: Metrics | None = None,
        limits: PipelineLimits | None = None,
        clock: Clock = None,
        verdicts: VerdictBoard | None = None,
        declare: bool = True,
        quiet: bool = False,
    ) -> None:
        """``declare``: create the metric children of the listed candidates at once (a
        pipeline for one partition of several leaves that to the data: another replica
        may own the model); ``verdicts``: a board shared with other pipelines."""
        self.policy = policy
        self._clock = clock
        self.dead_letters = dead_letters
        self.alert_sinks = list(alert_sinks)
        self.metrics = metrics if metrics is not None else Metrics()
        self.limits = limits = limits if limits is not None else PipelineLimits()
        self.monitors = {
            m.name: ModelMonitor(m, segment_cap=limits.segment_cap, clock=clock)
            for m in policy.models
        }
        self.dedupe = Deduper(limits.dedupe_window)
        self.joins = JoinTable(limits.join_capacity, limits.join_ttl_seconds)
        self.ledger = Ledger()
        self.verdicts = verdicts if verdicts is not None else VerdictBoard()
        self._declares = declare
        self._versions_seen: set[tuple[str, str]] = set()
        for monitor in self.monitors.values():
            if declare:
                self._declare(monitor, monitor.candidates)
            if quiet:
                continue
            log.info(
                "model watched",
                model=monitor.policy.name,
                baseline=monitor.policy.baseline,
                checks=len(monitor.policy.checks),
                detector_arl0=monitor.detector_arl0,
            )

    def process(self, batch: Sequence[Message]) -> BatchResult:
        """Process one batch completely: every message is routed, dead-lettered or dropped."""
        started = time.perf_counter()
        consumed: Counter[str] = Counter()
        processed: Counter[str] = Counter()
        duplicates: Counter[str] = Counter()
        unjoined: Counter[str] = Counter()
        unmonitored: Counter[str] = Counter()
        rejected: list[tuple[Message, Rejection]] = []
        monitors = self.monitors
        joins = self.joins
        seen = self.dedupe.seen
        horizon = time.time() + self.limits.max_future_seconds
        max_bytes = self.limits.max_message_bytes
        for message in batch:
            size = len(message.value)
            event = (
                decode(message.value)
                if size <= max_bytes
                else Rejection(
                    "too_large",
                    f"message of {size} bytes is over the {max_bytes}-byte cap "
                    "(limits.max_message_bytes)",
                )
            )
            if not isinstance(event, Rejection) and event.time.timestamp() > horizon:
                event = Rejection(
                    "future_time",
                    f"time: {event.time.isoformat()} is more than "
                    f"{self.limits.max_future_seconds:g}s ahead of this host's clock (clock skew?)",
                    event.kind,
                )
            if isinstance(event, Rejection):
                consumed[event.kind] += 1
                rejected.append((message, event))
                continue
            kind = event.kind
            consumed[kind] += 1
            if seen(event.id):
                duplicates[kind] += 1
                continue
            processed[kind] += 1
            if isinstance(event, InferenceEvent):
                monitor = monitors.get(event.model)
                joined = monitor.add_inference(event, message) if monitor is not None else None
                if joined is None:
                    unmonitored[kind] += 1
                else:
                    joins.put(event.request_id, joined)
            elif isinstance(event, ActionEvent):
                monitor = monitors.get(event.model)
                joined = joins.get(event.request_id)
                if joined is None:
                    unjoined[kind] += 1
                if monitor is None or not monitor.add_action(event, joined, message):
                    unmonitored[kind] += 1
            elif isinstance(event, OutcomeEvent):
                joined = joins.get(event.request_id)
                if joined is None:
                    unjoined[kind] += 1
                    continue
                monitor = monitors.get(joined.model)
                if monitor is None or not monitor.add_outcome(event, joined, message):
                    unmonitored[kind] += 1

        for message, rejection in rejected:
            self.dead_letters.send(message, rejection)
        alerts: list[AlertRecord] = []
        for monitor in monitors.values():
            alerts.extend(monitor.end_batch())
        for alert in alerts:
            for sink in self.alert_sinks:
                sink.emit(alert)
        if rejected:
            self.dead_letters.flush()
        if alerts:
            for sink in self.alert_sinks:
                sink.flush()
        joins.expire()

        result = BatchResult(
            consumed=sum(consumed.values()),
            processed=sum(processed.values()),
            dead_lettered=len(rejected),
            duplicates=sum(duplicates.values()),
            alerts=alerts,
            seconds=time.perf_counter() - started,
        )
        self._account(result, consumed, processed, duplicates, unjoined, unmonitored, rejected)
        return result

    def _account(
        self,
        result: BatchResult,
        consumed: Counter[str],
        processed: Counter[str],
        duplicates: Counter[str],
        unjoined: Counter[str],
        unmonitored: Counter[str],
        rejected: list[tuple[Message, Rejection]],
    ) -> None:
        ledger, m = self.ledger, self.metrics
        ledger.consumed += result.consumed
        ledger.processed += result.processed
        ledger.dead_lettered += result.dead_lettered
        ledger.duplicates += result.duplicates
        ledger.unjoined += sum(unjoined.values())
        ledger.unmonitored += sum(unmonitored.values())
        ledger.alerts += len(result.alerts)
        for counter, values in (
            (m.consumed, consumed),
            (m.processed, processed),
            (m.duplicates, duplicates),
            (m.unjoined, unjoined),
            (m.unmonitored, unmonitored),
        ):
            for kind, n in values.items():
                counter.labels(kind).inc(n)
        for (kind, code), n in Counter((r.kind, r.code) for _, r in rejected).items():
            m.dead_lettered.labels(kind, code).inc(n)
        for alert in result.alerts:
            m.alerts.labels(alert.model, alert.action, alert.status).inc()
        for monitor in self.monitors.values():
            folded = monitor.folder.folded
            if folded:
                m.segments_folded.labels(monitor.policy.name).inc(folded)
                monitor.folder.folded = 0
            late = monitor.drain_late()
            if late:
                m.late.labels(monitor.policy.name).inc(late)
            self._refresh(monitor, monitor.drain_touched())
        m.batch_seconds.observe(result.seconds)
        m.batch_size.observe(result.consumed)

    def _refresh(self, monitor: ModelMonitor, statuses: list[CheckStatus]) -> None:
        """Metrics and verdicts of the given statuses (once per batch, for those touched)."""
        m = self.metrics
        versions = {status.version for status in statuses}
        self._declare(monitor, versions)
        for status in statuses:
            labels = (
                monitor.policy.name,
                status.version,
                status.check.name,
                segment_label(status.stream),
            )
            observed, reference = status.observed_reference
            m.check_state.labels(*labels).set(CHECK_STATES[status.state])
            m.check_statistic.labels(*labels).set(status.detector.statistic)
            m.check_threshold.labels(*labels).set(status.detector.threshold)
            m.check_observed.labels(*labels).set(observed)
            m.check_reference.labels(*labels).set(reference)
        for version, verdict in self.verdicts.publish(monitor, versions).items():
            fail = verdict["verdict"] == "fail"
            m.rollback_required.labels(monitor.policy.name, version).set(int(fail))

    # -- checkpoints (monitor.state) ---------------------------------------------------
    def policy_digest(self) -> str:
        """Identifies the policy a checkpoint was taken under."""
        return policy_digest(self.policy)

    def snapshot(self) -> bytes:
        """The routing and detector state, pickled (between batches only)."""
        return pickle.dumps(
            {
                "monitors": self.monitors,
                "dedupe": self.dedupe,
                "joins": self.joins,
                "ledger": self.ledger,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    def restore(self, state: bytes) -> None:
        """Continue from :meth:`snapshot`'s state; metrics and verdicts are refreshed."""
        data = pickle.loads(state)  # our own checkpoint file only: see monitor.state
        self.monitors = data["monitors"]
        self.dedupe = data["dedupe"]
        self.joins = data["joins"]
        self.ledger = data["ledger"]
        self._versions_seen = set()
        for monitor in self.monitors.values():
            monitor.set_clock(self._clock)
            monitor.drain_touched()
            if self._declares:
                self._declare(monitor, monitor.candidates)
            self._refresh(monitor, list(monitor.statuses.values()))

    def release(self) -> None:
        """Withdraw this pipeline's metric children and verdicts (its partition moved away)."""
        m = self.metrics
        for model, version in self._versions_seen:
            monitor = self.monitors[model]
            m.rollback_required.remove(model, version)
            self.verdicts.remove(model, version)
            segments = {segment_label(s) for (_, v, s) in monitor.statuses if v == version}
            for check in monitor.policy.checks:
                m.check_info.remove(
                    model,
                    version,
                    check.name,
                    check.metric.value,
                    check.action,
                    check.resolved_severity,
                )
                for segment in segments | {""}:
                    for gauge in (
                        m.check_state,
                        m.check_statistic,
                        m.check_threshold,
                        m.check_observed,
                        m.check_reference,
                    ):
                        gauge.remove(model, version, check.name, segment)
        self._versions_seen.clear()

    def _declare(self, monitor: ModelMonitor, versions: set[str]) -> None:
        """Create every label child of a candidate version up front, so the first scrape has it.

        Until data arrive each check is inconclusive on the overall stream and
        ``shiftwatch_rollback_required`` is 0; the verdict is inconclusive.
        """
        m, policy = self.metrics, monitor.policy
        new = {v for v in versions if (policy.name, v) not in self._versions_seen}
        for version in sorted(new):
            self._versions_seen.add((policy.name, version))
            m.rollback_required.labels(policy.name, version).set(0)
            for check in policy.checks:
                m.check_info.labels(
                    policy.name,
                    version,
                    check.name,
                    check.metric.value,
                    check.action,
                    check.resolved_severity,
                ).set(1)
                labels = (policy.name, version, check.name, "")
                m.check_state.labels(*labels).set(CHECK_STATES["inconclusive"])
                for gauge in (
                    m.check_statistic,
                    m.check_threshold,
                    m.check_observed,
                    m.check_reference,
                ):
                    gauge.labels(*labels).set(float("nan"))
        if new:
            self.verdicts.publish(monitor, new)

    def close(self) -> None:
        """Flush and close every sink."""
        self.dead_letters.close()
        for sink in self.alert_sinks:
            sink.close()
