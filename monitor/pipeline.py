"""The processing pipeline shared by ``run``, ``replay`` and ``demo``.

``Pipeline.process(batch)`` runs one batch through the stages: validation
(:mod:`monitor.events`, through the fast path of :mod:`monitor.fast_decode`;
rejects go to the dead-letter sink with their reason), routing
(:mod:`monitor.router`), the check runners of each model (:mod:`monitor.runners`),
which count into event-time buckets and judge the buckets the model's watermark
(:mod:`monitor.watermarks`) has passed, and the alert sinks. It keeps the ledger
``consumed = processed + dead_lettered + duplicates`` and publishes each touched
candidate's verdict once per batch.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import structlog

from monitor.alerts import AlertRecord, AlertSink
from monitor.config import LimitsSettings
from monitor.episodes import Clock
from monitor.events import Rejection
from monitor.fast_decode import decode_batch
from monitor.fast_events import DecodedEvent
from monitor.heap import HeapTrimmer
from monitor.ledger import BatchResult, Ledger
from monitor.messages import DeadLetterSink, Message, SourcePosition, position_of
from monitor.metrics import Metrics
from monitor.policy import Policy
from monitor.router import Router, RouteResult
from monitor.runners import ModelRunners, model_runners
from monitor.runners.base import Locate
from monitor.served import count_routed, observe_served
from monitor.verdict import VerdictBoard
from monitor.watermarks import Watermarks
from monitor.work import ModelWork

if TYPE_CHECKING:
    from monitor.history.recorder import HistoryRecorder

__all__ = ["BatchResult", "Ledger", "Pipeline", "Rejected", "Valid", "validate"]

log = structlog.get_logger("shiftwatch.pipeline")


#: A valid event and where it was read; a rejected message and why.
Valid = tuple[DecodedEvent, Message]
Rejected = tuple[Message, Rejection]


def validate(
    batch: Sequence[Message], limits: LimitsSettings
) -> tuple[Counter[str], list[Valid], list[Rejected]]:
    """Decode every message: consumed per kind, valid events with their messages, rejects
    with reasons."""
    not_after = time.time() + limits.max_future_seconds
    events = decode_batch(
        [message.value for message in batch],
        max_bytes=limits.max_message_bytes,
        not_after=not_after,
    )
    consumed = Counter([event.kind for event in events])
    rejected: list[Rejected] = []
    valid: list[Valid] = []
    for message, event in zip(batch, events, strict=True):
        if isinstance(event, Rejection):
            rejected.append((message, event))
        else:
            valid.append((event, message))
    return consumed, valid, rejected


class Pipeline:
    """Validate -> route -> count and judge -> alert, one batch at a time.

    Parameters
    ----------
    policy
        The models to watch.
    dead_letters, alert_sinks, metrics
        Where rejected messages, alert records and metrics go.
    limits
        Memory bounds and validation caps (``limits`` of the configuration).
    clock
        Source of ``fired_at`` (see :data:`monitor.episodes.Clock`).
    verdicts
        The board verdicts are published to (default: the metrics' own).
    declare
        Publish every listed candidate at once, so the first scrape has its
        checks (a pipeline for one partition of several leaves that to the
        data: another replica may own the model).
    wall_clock
        Monotonic seconds, for input idleness (injectable for tests).
    history
        Records the history (:mod:`monitor.history.recorder`): told of each batch after
        its verdicts are published, checkpointed with the pipeline, closed with it.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        dead_letters: DeadLetterSink,
        alert_sinks: Sequence[AlertSink] = (),
        metrics: Metrics | None = None,
        limits: LimitsSettings | None = None,
        clock: Clock = None,
        verdicts: VerdictBoard | None = None,
        declare: bool = True,
        quiet: bool = False,
        wall_clock: Callable[[], float] = time.monotonic,
        history: HistoryRecorder | None = None,
    ) -> None:
        self.policy = policy
        self.dead_letters = dead_letters
        self.alert_sinks = list(alert_sinks)
        self.metrics = metrics if metrics is not None else Metrics()
        self.limits = limits = limits if limits is not None else LimitsSettings()
        self.verdicts = verdicts if verdicts is not None else self.metrics.verdicts
        self.metrics.freshness.stale_after = limits.stale_after_seconds
        self.router = Router(
            policy,
            dedupe_window=limits.dedupe_window,
            join_capacity=limits.join_capacity,
            join_ttl_seconds=limits.join_ttl_seconds,
            segment_cap=limits.segment_cap,
        )
        self.watermarks = Watermarks(
            limits.idle_timeout_seconds,
            clock=wall_clock,
            lateness=limits.allowed_lateness_seconds,
        )
        self.models: dict[str, ModelRunners] = {
            m.name: model_runners(m, segment_cap=limits.segment_cap, clock=clock)
            for m in policy.models
        }
        self.ledger = Ledger()
        self._heap = HeapTrimmer(clock=wall_clock)
        self._published: set[tuple[str, str]] = set()
        self._last: SourcePosition | None = None
        self._declare = declare
        self.history = history
        if history is not None:
            history.attach(self)
        for model in self.models.values():
            for kind in ("inference", "action", "outcome"):  # zero until the first late one
                self.metrics.late.labels(model.policy.name, kind)
            if declare:
                self._publish(model, set(model.policy.candidates or ()))
            if not quiet:
                log.info(
                    "model watched",
                    model=model.policy.name,
                    baseline=model.policy.baseline,
                    checks=len(model.policy.checks),
                    detector_arl0=model.detector_arl0,
                )

    # -- partitions (the source's assignment) -------------------------------------------
    def assigned(self, inputs: list[str]) -> dict[str, int]:
        """Inputs (``topic:partition``) now read here; none needs a seek of its own."""
        self.watermarks.assign(inputs)
        return {}

    def revoked(self, inputs: list[str]) -> dict[str, int]:
        """Inputs no longer read here stop holding event time back."""
        self.watermarks.revoke(inputs)
        return {}

    # -- processing -----------------------------------------------------------------------
    def end_of_input(self) -> BatchResult:
        """The input is complete (the end of a replayed file): judge everything delivered,
        without waiting for the allowed lateness."""
        self.watermarks.lateness = 0.0
        return self.process([])

    def process(
        self, batch: Sequence[Message], *, backlog: Mapping[str, int | None] | None = None
    ) -> BatchResult:
        """Process one batch completely: every message is routed, dead-lettered or dropped.

        ``backlog``: messages waiting per input (an input with a backlog is never idle).
        An empty batch (an idle poll) still lets event time move on.
        """
        started = time.perf_counter()
        consumed, valid, rejected = self._validate(batch)
        routed = self.router.route(valid)
        self.watermarks.heard({f"{t}:{p}" for t, p in {(m.topic, m.partition) for m in batch}})
        if batch:
            self._last = batch[-1].position
        return self._judge(routed, backlog, started, consumed, rejected)

    def judge_routed(self, routed: RouteResult, heard: set[str]) -> BatchResult:
        """Count and judge work routed elsewhere (the scale tier's ingest stage).

        ``heard``: the inputs (``topic:partition``) the work was read from. The
        routing accounting (consumed, processed, duplicates, ...) is the
        router's, so this batch's ledger counts only late events and alerts.
        """
        started = time.perf_counter()
        self.watermarks.heard(heard)
        for work in routed.work.values():
            if work.position is not None:
                self._last = position_of(work.position)
        return self._judge(routed, None, started, Counter(), [])

    def _judge(
        self,
        routed: RouteResult,
        backlog: Mapping[str, int | None] | None,
        started: float,
        consumed: Counter[str],
        rejected: list[Rejected],
    ) -> BatchResult:
        """Count the routed work, judge what the watermarks released, deliver, account."""
        late = self._count(routed)
        alerts = self._release(routed, backlog)
        self._deliver(rejected, alerts)
        counts = Ledger(
            consumed=sum(consumed.values()),
            processed=sum(routed.processed.values()),
            dead_lettered=len(rejected),
            duplicates=sum(routed.duplicates.values()),
            unjoined=sum(routed.unjoined.values()),
            unmonitored=sum(routed.unmonitored.values()),
            late=sum(late.values()),
            alerts=len(alerts),
        )
        result = BatchResult(counts, alerts, time.perf_counter() - started)
        self._account(result, consumed, routed, rejected, late)
        if self.history is not None:
            self.history.observe(routed, backlog)
        self._heap.tick()
        return result

    def _validate(
        self, batch: Sequence[Message]
    ) -> tuple[Counter[str], list[Valid], list[Rejected]]:
        return validate(batch, self.limits)

    def _count(self, routed: RouteResult) -> Counter[tuple[str, str]]:
        """Advance each input's event time, count the work into buckets; late per (model, kind)."""
        late: Counter[tuple[str, str]] = Counter()
        for name, work in routed.work.items():
            for source, mark in work.marks.items():
                self.watermarks.observe(name, source, mark)
            for runner in self.models[name].runners:
                runner.feed(work)
            for kind, rows in work.by_kind():
                n = rows.late_count()
                if n:
                    late[(name, kind)] += n
        return late

    def _release(
        self, routed: RouteResult, backlog: Mapping[str, int | None] | None
    ) -> list[AlertRecord]:
        """Judge every bucket each model's watermark has passed; the alerts raised."""
        alerts: list[AlertRecord] = []
        for name, model in self.models.items():
            locate = self._locator(routed.work.get(name))
            watermark = self.watermarks.watermark(name, backlog)
            self.metrics.freshness.watermark(name, watermark)
            for runner in model.runners:
                runner.release(watermark, locate)
            alerts.extend(model.episodes.drain())
        return alerts

    def _locator(self, work: ModelWork | None) -> Locate:
        """Where the message was read that released a bucket final at a given event time.

        It is the first of the batch's inferences whose time reached that
        moment (on one partition the same message whatever the batching, so a
        restarted run reports the same source); else, when the bucket was held
        back by another partition or an idle one let it go, the model's latest
        message in the batch, or the latest message read.
        """
        latest = work.position if work is not None else None
        fallback = position_of(latest) if latest is not None else self._last
        if work is None or not len(work.inferences):
            return lambda final_at: fallback
        reached = list(accumulate(work.inferences.at, max))
        positions = work.inferences.position

        def locate(final_at: float) -> SourcePosition | None:
            i = bisect_left(reached, final_at)
            return position_of(positions[i]) if i < len(positions) else fallback

        return locate

    def _deliver(self, rejected: list[Rejected], alerts: list[AlertRecord]) -> None:
        """Dead letters and alerts to their sinks, flushed (durable) before the batch ends."""
        for message, rejection in rejected:
            self.dead_letters.send(message, rejection)
        for alert in alerts:
            for sink in self.alert_sinks:
                sink.emit(alert)
        if rejected:
            self.dead_letters.flush()
        if alerts:
            for sink in self.alert_sinks:
                sink.flush()

    def _account(
        self,
        result: BatchResult,
        consumed: Counter[str],
        routed: RouteResult,
        rejected: list[Rejected],
        late: Counter[tuple[str, str]],
    ) -> None:
        m = self.metrics
        self.ledger.add(result.counts)
        count_routed(m, consumed, routed, rejected)
        for (model, kind), n in late.items():
            m.late.labels(model, kind).inc(n)
        for alert in result.alerts:
            m.alerts.labels(alert.model, alert.action, alert.status).inc()
        observe_served(self.metrics, routed)
        for model, n in self.router.drain_folded().items():
            m.segments_folded.labels(model).inc(n)
        for runners in self.models.values():
            touched = runners.drain_touched()
            if touched:
                self._publish(runners, touched)
        if result.consumed:
            m.batch_seconds.observe(result.seconds)
            m.batch_size.observe(result.consumed)

    def _publish(self, model: ModelRunners, versions: set[str]) -> None:
        """Publish the verdicts of these candidates (once per batch, for those touched)."""
        name = model.policy.name
        self._published |= {(name, v) for v in versions}
        self.verdicts.publish(model.policy, model.statuses(), versions, model.baseline_drift.view())

    # -- checkpoints (monitor.state) -------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to continue, as plain data and arrays (between batches only)."""
        state = {
            "router": self.router.state(),
            "watermarks": self.watermarks.state(),
            "models": {
                name: [runner.state() for runner in model.runners]
                for name, model in self.models.items()
            },
            "ledger": asdict(self.ledger),
            "baseline_drift": {
                name: model.baseline_drift.state() for name, model in self.models.items()
            },
        }
        if self.history is not None:
            state["history"] = self.history.state()
        return state

    def restore_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`, taken under the same policy; verdicts are republished."""
        self.router.restore(state["router"])
        self.watermarks.restore(state["watermarks"])
        for name, model in self.models.items():
            for runner, runner_state in zip(model.runners, state["models"][name], strict=True):
                runner.restore(runner_state)
        self.ledger = Ledger(**{k: int(v) for k, v in state["ledger"].items()})
        drift = state.get("baseline_drift", {})  # absent in a checkpoint of 0.2.x
        for name, model in self.models.items():
            model.baseline_drift.restore(drift.get(name))
        if self.history is not None:  # absent from checkpoints of 0.3.x and earlier
            self.history.restore(state.get("history"))
        for model in self.models.values():
            versions = model.drain_touched()
            if self._declare:
                versions |= set(model.policy.candidates or ())
            if versions:  # a model another partition carries is not published from here
                self._publish(model, versions)

    def release(self) -> None:
        """Withdraw this pipeline's verdicts and check metrics (its partition moved away)."""
        for model, version in self._published:
            self.verdicts.remove(model, version)
        self._published.clear()

    def close(self) -> None:
        """Flush and close every sink, and the history (its open buckets written)."""
        self.dead_letters.close()
        for sink in self.alert_sinks:
            sink.close()
        if self.history is not None:
            self.history.close()
