"""Kafka source and dead-letter topic on kafka-python.

The consumer joins a group with auto-commit off. ``poll`` returns a batch;
``commit(batch)`` commits, per partition, the offset of the *next* message to
read (last processed offset + 1, Kafka's convention), and is only called once
the batch is fully processed and its dead letters are durable. A crash between
poll and commit therefore redelivers the batch: nothing is lost, and replays
of already-seen events are dropped by id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from monitor.config import KafkaSettings
from monitor.events import Rejection
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.sources import checkpoint_on_revoke

__all__ = ["DeadLetterError", "KafkaDeadLetterSink", "KafkaSource", "dead_letter_headers"]

log = structlog.get_logger("shiftwatch.kafka")


class KafkaSource:
    """A consumer-group member yielding batches of :class:`~monitor.messages.Message`."""

    def __init__(self, settings: KafkaSettings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._consumer = KafkaConsumer(
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=settings.max_poll_records,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            fetch_max_bytes=settings.fetch_max_bytes,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            fetch_min_bytes=settings.fetch_min_bytes,
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            **settings.client_config(),
        )
        self._seek: dict[TopicPartition, int] = {}
        #: Rebalance hooks for what is kept per partition (the pipeline's watermarks):
        #: given "topic:partition" keys, return offsets to seek to / to commit.
        self.on_assign: Callable[[list[str]], dict[str, int]] | None = None
        self.on_revoke: Callable[[list[str]], dict[str, int]] | None = None
        self._consumer.subscribe(topics=list(settings.topics), listener=_Listener(self))
        self._last_poll_ok = 0.0
        self._closed = False

    @property
    def healthy(self) -> bool:
        """True while polls succeed, a broker connection is up and the group coordinator answers.

        A paused broker keeps its TCP connections open and polls return empty
        batches, so the group coordinator's heartbeat responses are what tell:
        none for a session timeout means the broker is gone, even if the
        sockets are not.
        """
        if self._closed or time.monotonic() - self._last_poll_ok > 30.0:
            return False
        # kafka-python exposes connection and group state only on private attributes;
        # these are plain reads (no side effects), safe from the HTTP thread.
        coordinator = getattr(self._consumer, "_coordinator", None)
        heartbeat = getattr(coordinator, "heartbeat", None)
        if coordinator is not None and getattr(coordinator, "coordinator_id", 0) is None:
            return False
        if heartbeat is not None and heartbeat.session_timeout_expired():
            return False
        client = self._consumer._client
        return any(client.connected(node.node_id) for node in client.cluster.brokers())

    def poll(self) -> list[Message]:
        """One batch of at most ``max_poll_records`` messages, in partition order."""
        records = self._consumer.poll(
            timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_poll_records
        )
        self._last_poll_ok = time.monotonic()
        if self.metrics is not None:
            self.metrics.up.set(1)
        return [
            Message(r.value if r.value is not None else b"", r.topic, r.partition, r.offset, r.key)
            for recs in records.values()
            for r in recs
        ]

    def backlog(self) -> dict[str, int | None]:
        """Messages waiting per assigned partition: high watermark minus position.

        Both are kafka-python's cached values (from the latest fetch responses):
        no request is made. None for a partition not fetched yet.
        """
        consumer = self._consumer
        # kafka-python's public position() may make requests; its subscription state
        # holds the same cached position (a plain read under its lock, as in `healthy`).
        subscription = getattr(consumer, "_subscription", None)
        lock = getattr(subscription, "_lock", None)
        if subscription is None or lock is None:
            return {}
        with lock:
            assignment = dict(subscription.assignment)
        lag: dict[str, int | None] = {}
        for tp, state in assignment.items():
            high = consumer.highwater(tp)
            position = getattr(getattr(state, "position", None), "offset", None)
            known = high is not None and position is not None
            lag[f"{tp.topic}:{tp.partition}"] = max(0, high - position) if known else None
        return lag

    def seek_on_assign(self, positions: dict[str, int]) -> None:
        """Start each of these partitions (``"topic:partition"`` -> offset) there when assigned.

        A checkpoint's offsets take precedence over the group's committed ones:
        the state restored from it continues exactly where it stopped.
        """
        self._seek = {_tp(key): offset for key, offset in positions.items()}

    def _assigned(self, partitions: list[TopicPartition]) -> None:
        if self.on_assign is not None:
            seeks = self.on_assign([f"{tp.topic}:{tp.partition}" for tp in partitions])
            self._seek.update({_tp(k): v for k, v in seeks.items()})
        for tp in partitions:
            offset = self._seek.get(tp)
            if offset is not None:
                self._consumer.seek(tp, offset)
                log.info(
                    "resuming partition from checkpoint",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=offset,
                )

    def _revoked(self, partitions: list[TopicPartition]) -> None:
        if self.on_revoke is None or not partitions:
            return
        offsets = checkpoint_on_revoke(
            self.on_revoke, [f"{tp.topic}:{tp.partition}" for tp in partitions]
        )
        for tp in partitions:
            self._seek.pop(tp, None)
        if offsets:
            # The listener runs on kafka-python's network thread, where a blocking commit
            # cannot wait for its own reply: commit without waiting. Should it fail, the
            # partition's next owner still resumes from the checkpoint just saved.
            try:
                self._consumer.commit_async(
                    {_tp(k): OffsetAndMetadata(v, "", -1) for k, v in offsets.items()},
                    callback=_log_commit_failure,
                )
            except (KafkaError, RuntimeError) as exc:
                log.warning("commit on revoke failed", error=type(exc).__name__)

    def commit_positions(self, positions: dict[str, int]) -> None:
        """Commit checkpointed offsets (``"topic:partition"`` -> next) of the owned partitions."""
        owned = self._consumer.assignment()
        offsets = {
            tp: OffsetAndMetadata(offset, "", -1)
            for key, offset in positions.items()
            if (tp := _tp(key)) in owned
        }
        if offsets:
            self._consumer.commit(offsets)
            self._report_lag({tp: o.offset for tp, o in offsets.items()})

    def commit(self, batch: Sequence[Message]) -> None:
        """Commit the batch: for each partition, the offset after its last message."""
        if not batch:
            return
        nxt: dict[TopicPartition, int] = {}
        for m in batch:
            tp = TopicPartition(m.topic, m.partition)
            if m.offset + 1 > nxt.get(tp, -1):
                nxt[tp] = m.offset + 1
        self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in nxt.items()})
        self._report_lag(nxt)

    def _report_lag(self, committed: dict[TopicPartition, int]) -> None:
        if self.metrics is None:
            return
        for tp, offset in committed.items():
            high = self._consumer.highwater(tp)
            if high is not None:
                # Some brokers report the high watermark a batch behind; lag is never negative.
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - offset))

    def close(self) -> None:
        """Leave the group and close connections (idempotent)."""
        if not self._closed:
            self._closed = True
            if self.metrics is not None:
                self.metrics.up.set(0)
            self._consumer.close(autocommit=False)


def _log_commit_failure(offsets: object, response: object) -> None:
    if isinstance(response, Exception):
        log.warning("commit on revoke failed", error=type(response).__name__)


def _tp(key: str) -> TopicPartition:
    topic, _, partition = key.rpartition(":")
    return TopicPartition(topic, int(partition))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks newly assigned partitions to their checkpointed offsets."""

    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.source._revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.source._assigned(assigned)


def dead_letter_headers(message: Message, rejection: Rejection) -> list[tuple[str, bytes]]:
    """A dead letter's headers: why it was rejected and where it was read (either client)."""
    return [
        ("shiftwatch.reason", rejection.reason.encode()),
        ("shiftwatch.code", rejection.code.encode()),
        ("shiftwatch.kind", rejection.kind.encode()),
        ("shiftwatch.source.topic", message.topic.encode()),
        ("shiftwatch.source.partition", str(message.partition).encode()),
        ("shiftwatch.source.offset", str(message.offset).encode()),
    ]


class DeadLetterError(RuntimeError):
    """Dead letters could not be written; the batch must not be committed."""


class KafkaDeadLetterSink:
    """Produces each rejected message, original bytes and key, to the dead-letter topic.

    The reason and source position travel as headers, as Kafka Connect's
    dead-letter queues do: ``shiftwatch.reason``, ``shiftwatch.code``,
    ``shiftwatch.kind``, ``shiftwatch.source.topic``, ``.partition``, ``.offset``.
    """

    def __init__(self, settings: KafkaSettings, topic: str | None = None) -> None:
        self.topic = topic or settings.dead_letter_topic
        self._producer = KafkaProducer(
            acks="all", linger_ms=5, retries=10, **settings.client_config()
        )
        self._pending: list[Any] = []

    def send(self, message: Message, rejection: Rejection) -> None:
        headers = dead_letter_headers(message, rejection)
        self._pending.append(
            self._producer.send(self.topic, value=message.value, key=message.key, headers=headers)
        )

    def flush(self) -> None:
        """Block until every dead letter is acknowledged; raise :class:`DeadLetterError` if not."""
        self._producer.flush()
        pending, self._pending = self._pending, []
        failed = 0
        for future in pending:
            try:
                future.get(timeout=30)
            except KafkaError:
                failed += 1
        if failed:
            raise DeadLetterError(f"{failed} dead letter(s) not acknowledged by {self.topic}")

    def close(self) -> None:
        self.flush()
        self._producer.close()
