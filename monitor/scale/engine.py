"""``shiftwatch run --engine quix --stage ingest|judge``: one stage on Quix Streams.

Quix Streams runs the consumer group, the rebalances, the checkpoints (input
offsets committed only after the stage's sink is flushed and its state
store's changelog is written) and the state stores (RocksDB in
``scale.state_dir``, restored from their changelog topics). A stage is a Quix
sink over its input topic (:func:`_sink_class`) with the stage's own code
behind it: :class:`~monitor.scale.ingest.IngestStage` or
:class:`~monitor.scale.judge.JudgeStage`.

The processing guarantee is at-least-once: a stage that dies re-reads from its
last commit. Nothing is counted twice for that (the judge applies each input
offset once) and no alert is delivered twice (alert ids are deterministic,
and every sink delivers an id once). Quix's exactly-once needs Kafka
transactions, which the embedded broker does not honour (it hands aborted
records to ``read_committed`` consumers), so it is not offered.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import structlog

from monitor.alerts import AlertSink, LogAlertSink, OnceJsonlAlertSink
from monitor.config import ConfigError, Settings
from monitor.http import HttpServer
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.policy import Policy
from monitor.scale.ingest import IngestStage
from monitor.scale.judge import JudgeStage
from monitor.scale.stored import KeyValues
from monitor.sources.clients import kafka_dead_letter_sink
from monitor.sources.confluent_config import common_config

__all__ = ["group_of", "run_stage"]

log = structlog.get_logger("shiftwatch.scale")

#: Partials of up to ``emit_events`` messages; the partials topic accepts records this large.
PARTIAL_MAX_BYTES = 16 << 20
RETENTION_MS = str(7 * 24 * 3600 * 1000)


def group_of(settings: Settings) -> str:
    """The consumer group of this stage: ``<kafka.group_id>.<stage>``."""
    return f"{settings.kafka.group_id}.{settings.scale.stage}"


def _require_quix() -> None:
    if importlib.util.find_spec("quixstreams") is None:
        raise ConfigError("scale.engine quix needs Quix Streams: pip install 'shiftwatch[scale]'")
    # Quix imports authlib's httpx client, which warns on import about its own rename.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")


def _bytes(value: Any) -> Any:
    return value


def _sink_class() -> type[Any]:
    """A Quix sink that hands each record to a stage (built once Quix is imported)."""
    from quixstreams.sinks import BaseSink

    class _StageSink(BaseSink):
        def __init__(
            self,
            add: Callable[[bytes, bytes | None, str, int, int], None],
            flush: Callable[[], None],
            started: threading.Event,
        ) -> None:
            super().__init__()
            self._add, self._flush, self._started = add, flush, started

        def add(
            self,
            value: Any,
            key: Any,
            timestamp: int,
            headers: Any,
            topic: str,
            partition: int,
            offset: int,
        ) -> None:
            self._add(value, key, topic, partition, offset)

        def flush(self) -> None:
            self._flush()

        def setup(self) -> None:
            self._started.set()

    return _StageSink


def _application(settings: Settings, revoked: Callable[[str, int], None]) -> Any:
    """The stage's Quix application; ``revoked(topic, partition)`` is told of each partition
    taken away (after Quix's last commit of it), so the stage drops what it holds of it."""
    from quixstreams import Application
    from quixstreams.kafka.configuration import ConnectionConfig
    from quixstreams.state.rocksdb import RocksDBOptions

    kafka = settings.kafka
    common = common_config(kafka)
    objects: dict[str, Any] = {k: common.pop(k) for k in ("logger", "oauth_cb") if k in common}
    connection = ConnectionConfig.from_librdkafka_dict(
        {k: v for k, v in common.items() if k != "client.id"}, ignore_extras=True
    )
    consumer: dict[str, Any] = {
        **objects,
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
        "max.poll.interval.ms": kafka.max_poll_interval_ms,
        "fetch.wait.max.ms": kafka.fetch_max_wait_ms,
        "max.partition.fetch.bytes": max(kafka.max_partition_fetch_bytes, PARTIAL_MAX_BYTES),
    }
    producer: dict[str, Any] = {
        **objects,
        "enable.idempotence": True,  # partials of one model arrive in the order produced
        "message.max.bytes": PARTIAL_MAX_BYTES,
        # One record per batch. Quix restores a store from its changelog up to the
        # topic's high watermark, and refuses a store whose offset is past it; a
        # broker that reports the high watermark by batch rather than by record (the
        # embedded Tansu broker does) would otherwise have it skip the last batch. The
        # stages produce few records (a partial per partition and model every
        # emit_seconds, a state's chunks per checkpoint), so this costs little.
        "batch.num.messages": 1,
    }
    levels: dict[str, Literal["DEBUG", "WARNING", "ERROR"]] = {
        "debug": "DEBUG",
        "info": "WARNING",  # Quix's own INFO lines (each assignment, recovery) are noise here
        "warning": "WARNING",
        "error": "ERROR",
    }

    # The judge reads every partial from the start: one skipped is events never counted.
    reset = "earliest" if settings.scale.stage == "judge" else kafka.auto_offset_reset

    class _Application(Application):
        # Quix has no public revoke callback; this hook is its own rebalance path,
        # which is why the [scale] extra pins Quix Streams to one minor release.
        def _revoke_state_partitions(self, topic_partitions: list[Any]) -> None:
            super()._revoke_state_partitions(topic_partitions=topic_partitions)
            for tp in topic_partitions:
                revoked(tp.topic, tp.partition)

    return _Application(
        broker_address=connection,
        consumer_group=group_of(settings),
        auto_offset_reset=reset,
        commit_interval=settings.scale.commit_seconds,
        consumer_extra_config=consumer,
        producer_extra_config=producer,
        state_dir=str(settings.scale.state_dir),
        rocksdb_options=RocksDBOptions(dumps=_bytes, loads=_bytes),
        loglevel=levels[settings.log_level],
        processing_guarantee="at-least-once",
        consumer_poll_timeout=kafka.poll_timeout_ms / 1000.0,
    )


def _partials_topic(app: Any, settings: Settings) -> Any:
    """The partials topic, created if missing (by whichever stage starts first)."""
    from quixstreams.models import TopicConfig

    config = TopicConfig(
        num_partitions=settings.scale.partials_partitions,
        replication_factor=1,
        extra_config={"retention.ms": RETENTION_MS, "max.message.bytes": str(PARTIAL_MAX_BYTES)},
    )
    return app.topic(
        settings.scale.partials_topic,
        value_deserializer="bytes",
        key_deserializer="bytes",
        config=config,
    )


class _Partials:
    """The ingest stage's producer of partials, which raises on flush if any was lost."""

    def __init__(self, app: Any, topic: str) -> None:
        self._producer = app.get_producer()
        self._topic = topic
        self._errors: list[str] = []

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._errors.append(str(error))

    def produce(self, key: bytes, value: bytes) -> None:
        self._producer.produce(self._topic, value=value, key=key, on_delivery=self._delivered)

    def flush(self) -> None:
        left = self._producer.flush()
        if left or self._errors:
            errors, self._errors = self._errors[:3], []
            raise RuntimeError(f"{left} partials not delivered to {self._topic}: {errors}")

    def close(self) -> None:
        self._producer.flush()


def _store(sdf: Any, prefix: Callable[..., bytes]) -> Callable[..., KeyValues]:
    def store(*where: Any) -> KeyValues:
        partition = where[1]
        transaction = sdf.processing_context.checkpoint.get_store_transaction(
            stream_id=sdf.stream_id, partition=partition
        )
        state: KeyValues = transaction.as_state(prefix=prefix(*where))
        return state

    return store


def _sources(settings: Settings) -> list[str]:
    """Every partition of the event topics, as ``topic:partition``."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(common_config(settings.kafka))
    metadata = admin.list_topics(timeout=settings.kafka.request_timeout_ms / 1000.0)
    sources: list[str] = []
    for topic in settings.kafka.topics:
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise ConfigError(f"kafka.topics: topic {topic!r} not found on the broker")
        sources.extend(f"{topic}:{p}" for p in sorted(found.partitions))
    return sources


def run_stage(settings: Settings, policy: Policy) -> None:
    """Run this process's stage until SIGTERM or SIGINT (Quix stops at its next poll)."""
    _require_quix()
    stage = settings.scale.stage
    metrics = Metrics()
    started = threading.Event()

    def readiness() -> tuple[bool, str]:
        return (True, "consuming") if started.is_set() else (False, "joining the consumer group")

    http = HttpServer(metrics.registry, readiness, settings.http_host, settings.http_port)
    if stage == "judge":
        http.attach_verdicts(metrics.verdicts)
    http.start()
    closers: list[Callable[[], None]] = []
    try:
        stages: list[IngestStage | JudgeStage] = []

        def revoked(topic: str, partition: int) -> None:
            for one in stages:
                one.revoked(topic, partition)

        app = _application(settings, revoked)
        sink_class = _sink_class()
        if stage == "ingest":
            closers.extend(_ingest(app, settings, policy, metrics, sink_class, started, stages))
        else:
            closers.extend(_judge(app, settings, policy, metrics, sink_class, started, stages))
        log.info(
            "started",
            engine="quix",
            stage=stage,
            group_id=group_of(settings),
            bootstrap_servers=settings.kafka.bootstrap_servers,
            http=f"{http.host}:{http.port}",
            models=[m.name for m in policy.models],
        )
        app.run()
    finally:
        for close in closers:
            close()
        http.stop()


def _ingest(
    app: Any,
    settings: Settings,
    policy: Policy,
    metrics: Metrics,
    sink_class: type[Any],
    started: threading.Event,
    stages: list[IngestStage | JudgeStage],
) -> list[Callable[[], None]]:
    scale = settings.scale
    _partials_topic(app, settings)
    partials = _Partials(app, scale.partials_topic)
    dead = kafka_dead_letter_sink(settings.kafka)
    for name in settings.kafka.topics:
        topic = app.topic(name, value_deserializer="bytes", key_deserializer="bytes")
        sdf = app.dataframe(topic)
        sdf.register_store()
        stage = IngestStage(
            policy,
            settings.limits,
            dead_letters=dead,
            partials=partials,
            metrics=metrics,
            store=_store(sdf, lambda topic, partition: b"partition"),
            signing_key=settings.state.signing_key(),
            emit_seconds=scale.emit_seconds,
            emit_events=scale.emit_events,
            mismatch=settings.state.mismatch,
        )
        stages.append(stage)

        def add(
            value: bytes, key: bytes | None, topic: str, partition: int, offset: int,
            stage: IngestStage = stage,
        ) -> None:  # fmt: skip
            stage.add(Message(value, topic, partition, offset, key))

        sdf.sink(sink_class(add, stage.flush, started))
    return [partials.close, dead.close]


def _judge(
    app: Any,
    settings: Settings,
    policy: Policy,
    metrics: Metrics,
    sink_class: type[Any],
    started: threading.Event,
    stages: list[IngestStage | JudgeStage],
) -> list[Callable[[], None]]:
    from monitor.run import build_outbox

    topic = _partials_topic(app, settings)
    sinks: list[AlertSink] = [LogAlertSink()]
    if settings.alerts_out is not None:
        sinks.append(OnceJsonlAlertSink(Path(settings.alerts_out)))
    outbox = build_outbox(settings, metrics)
    if outbox is not None:
        sinks.append(outbox.start())
    sdf = app.dataframe(topic)
    sdf.register_store()
    stage = JudgeStage(
        policy,
        settings.limits,
        sources=_sources(settings),
        alert_sinks=sinks,
        metrics=metrics,
        store=_store(sdf, lambda topic, partition, model: model.encode()),
        signing_key=settings.state.signing_key(),
        mismatch=settings.state.mismatch,
    )
    stages.append(stage)

    def add(value: bytes, key: bytes | None, topic: str, partition: int, offset: int) -> None:
        stage.add(value, topic, partition, offset)

    sdf.sink(sink_class(add, stage.flush, started))
    return [stage.close]
