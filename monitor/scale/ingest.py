"""The ingest stage: each input partition decoded, validated, deduplicated, joined and routed.

Any number of replicas share the event topics' partitions (one Quix Streams
consumer group). For each partition a replica reads, an :class:`IngestSink`
keeps one :class:`~monitor.router.Router`: duplicates are dropped and actions
and outcomes joined to their inference *within the partition*, which holds
when producers key every event by its ``request_id`` (an action whose
inference went to another partition is counted in
``shiftwatch_events_unjoined_total``). Rejected messages go to the
dead-letter topic with their reason.

Every ``emit_seconds`` (or ``emit_events`` messages) a partition's waiting
messages are routed, and each model's work is produced to the partials topic
keyed by model (:mod:`monitor.scale.partials`), where the judge stage reads
it. At each Quix checkpoint the sink is flushed first: the rest is routed and
produced, the producer flushed, and each partition's router saved in the
stage's state store (:mod:`monitor.scale.stored`) together with the offset
it continues from. Quix then writes the store's changelog and commits the
input offsets, so a replica that takes a partition over finds the router of
the committed offset. What was produced after it is produced again, and the
judge drops it by offset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from monitor.config import LimitsSettings
from monitor.envelope import Checkpoint, CheckpointError, seal
from monitor.messages import DeadLetterSink, Message
from monitor.metrics import Metrics
from monitor.pipeline import Rejected, validate
from monitor.policy import Policy
from monitor.router import Router, RouteResult
from monitor.scale.partials import from_work
from monitor.scale.stored import FIX, KeyValues, load, open_checkpoint, save
from monitor.served import count_routed
from monitor.state import Mismatch, policy_digest, refuse

__all__ = ["IngestStage", "Producer"]

log = structlog.get_logger("shiftwatch.scale.ingest")


class Producer(Protocol):
    """Where partials go: a Kafka producer (``flush`` returns once all are delivered)."""

    def produce(self, key: bytes, value: bytes) -> None: ...

    def flush(self) -> None: ...


@dataclass
class _Partition:
    router: Router
    #: The offset the router continues from.
    next_offset: int


class IngestStage:
    """Routes each input partition's messages and hands each model's work on.

    Parameters
    ----------
    policy, limits
        The models watched and the router's bounds (the same on every replica).
    dead_letters
        Where rejected messages go.
    partials
        Where each model's routed events go.
    metrics
        The stage's counters (consumed, processed, dead-lettered, duplicates, ...).
    store
        The state of an input partition (``topic``, ``partition``) in Quix's store.
    signing_key
        Signs each router's saved state (``state.secret``, the same on every replica).
    emit_seconds, emit_events
        How long, or how many messages, a partition's messages wait before being routed.
    mismatch
        A saved router that cannot be restored: ``fail`` raises
        :class:`~monitor.state.StateMismatch`, ``fresh`` starts the partition's router empty.
    """

    def __init__(
        self,
        policy: Policy,
        limits: LimitsSettings,
        *,
        dead_letters: DeadLetterSink,
        partials: Producer,
        metrics: Metrics,
        store: Callable[[str, int], KeyValues],
        signing_key: bytes,
        emit_seconds: float = 0.5,
        emit_events: int = 5000,
        mismatch: Mismatch = "fail",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.dead_letters = dead_letters
        self.partials = partials
        self.metrics = metrics
        self.store = store
        self.signing_key = signing_key
        self.emit_seconds = emit_seconds
        self.emit_events = emit_events
        self.mismatch = mismatch
        self._clock = clock
        self._digest = policy_digest(policy)
        self._parts: dict[tuple[str, int], _Partition] = {}
        self._waiting: dict[tuple[str, int], list[Message]] = {}
        self._since: dict[tuple[str, int], float] = {}
        self._unsaved: set[tuple[str, int]] = set()
        # Quix flushes a sink in a thread of its own when partitions are revoked, and
        # gives up waiting after a deadline; the lock keeps that flush and the
        # consumer thread's next call from interleaving.
        self._lock = threading.Lock()

    # -- what the sink is told ----------------------------------------------------------
    def add(self, message: Message) -> None:
        """One message read; its partition's waiting messages are routed when due."""
        with self._lock:
            self._add(message)

    def _add(self, message: Message) -> None:
        tp = (message.topic, message.partition)
        waiting = self._waiting.get(tp)
        if waiting is None:
            waiting = self._waiting[tp] = []
            self._since[tp] = self._clock()
        waiting.append(message)
        if len(waiting) >= self.emit_events or self._clock() - self._since[tp] >= self.emit_seconds:
            self._route(tp)

    def flush(self) -> None:
        """Route every waiting message, deliver the partials, save each partition's router.

        Called by Quix's checkpoint before it commits the input offsets: when this
        returns, everything up to them is in the partials topic and the state store.
        """
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        for tp in list(self._waiting):
            self._route(tp)
        self.partials.flush()
        for tp in sorted(self._unsaved):
            part = self._parts[tp]
            checkpoint = Checkpoint(
                policy=self._digest,
                state={"router": part.router.state()},
                positions={"next_offset": part.next_offset},
                saved_at=time.time(),
            )
            save(self.store(*tp), seal(checkpoint, self.signing_key))
        self._unsaved.clear()

    def revoked(self, topic: str, partition: int) -> None:
        """The partition went to another replica (after Quix's last commit of it)."""
        tp = (topic, partition)
        with self._lock:
            self._drop(tp)

    def _drop(self, tp: tuple[str, int]) -> None:
        self._parts.pop(tp, None)
        self._waiting.pop(tp, None)
        self._since.pop(tp, None)
        self._unsaved.discard(tp)

    # -- routing ---------------------------------------------------------------------------
    def _route(self, tp: tuple[str, int]) -> None:
        batch = self._waiting.pop(tp)
        self._since.pop(tp, None)
        started = time.perf_counter()
        part = self._partition(tp, batch[0].offset)
        consumed, valid, rejected = validate(batch, self.limits)
        for message, rejection in rejected:
            self.dead_letters.send(message, rejection)
        if rejected:
            self.dead_letters.flush()
        routed = part.router.route(valid)
        topic, partition = tp
        first, last = batch[0].offset, batch[-1].offset
        for name, work in routed.work.items():
            partial = from_work(name, work, topic, partition, first, last)
            self.partials.produce(name.encode(), partial)
        part.next_offset = last + 1
        self._unsaved.add(tp)
        folded = part.router.drain_folded()
        self._account(consumed, routed, rejected, folded, len(batch), time.perf_counter() - started)

    def _partition(self, tp: tuple[str, int], first: int) -> _Partition:
        """The partition's router: this replica's own while it goes on reading forward, else
        the one saved in the store (or a new one)."""
        part = self._parts.get(tp)
        # Forward is the same assignment going on: offsets may skip (transaction markers,
        # compaction). Backward is a re-read from the last commit: the saved router is
        # the one of that offset. A partition taken away was dropped by revoked().
        if part is not None and first >= part.next_offset:
            return part
        part = _Partition(self._new_router(), first)
        blob = load(self.store(*tp))
        if blob is not None:
            where = f"the ingest state of {tp[0]}:{tp[1]}"
            try:
                checkpoint = open_checkpoint(blob, self.signing_key, self._digest)
                part.router.restore(checkpoint.state["router"])
            except CheckpointError as exc:
                refuse(exc, where=where, fix=FIX, mismatch=self.mismatch, fresh="an empty router")
                part.router = self._new_router()
            except (KeyError, ValueError, TypeError) as exc:
                error = CheckpointError("state", f"it does not restore ({type(exc).__name__})")
                refuse(error, where=where, fix=FIX, mismatch=self.mismatch, fresh="an empty router")
                part.router = self._new_router()
            else:
                log.info(
                    "restored partition state",
                    partition=f"{tp[0]}:{tp[1]}",
                    saved_at_offset=checkpoint.positions.get("next_offset"),
                    resumed_at_offset=first,
                )
        self._parts[tp] = part
        return part

    def _new_router(self) -> Router:
        limits = self.limits
        return Router(
            self.policy,
            dedupe_window=limits.dedupe_window,
            join_capacity=limits.join_capacity,
            join_ttl_seconds=limits.join_ttl_seconds,
            segment_cap=limits.segment_cap,
        )

    def _account(
        self,
        consumed: Mapping[str, int],
        routed: RouteResult,
        rejected: list[Rejected],
        folded: Mapping[str, int],
        size: int,
        seconds: float,
    ) -> None:
        m = self.metrics
        count_routed(m, consumed, routed, rejected)
        for model, n in folded.items():
            m.segments_folded.labels(model).inc(n)
        m.batch_seconds.observe(seconds)
        m.batch_size.observe(size)
