"""``shiftwatch run``: the service against a Kafka cluster, wired from :class:`Settings`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from kafka.errors import KafkaError

from monitor.alerts import AlertSink, JsonlAlertSink, LogAlertSink
from monitor.checkpointer import Checkpointer, Positioned, restore_outputs
from monitor.config import Settings
from monitor.deliveries import AlertmanagerDelivery, Delivery, KafkaDelivery, WebhookDelivery
from monitor.history.recorder import HistoryRecorder
from monitor.history.store import history_file
from monitor.http import HttpServer
from monitor.metrics import Metrics
from monitor.outbox import Outbox
from monitor.pipeline import BatchResult, Pipeline
from monitor.policy import Policy
from monitor.service import Service
from monitor.sources.clients import kafka_dead_letter_sink, kafka_source
from monitor.state import (
    FIX_RUN,
    SqliteStateStore,
    StateMismatch,
    guarded,
    load_checkpoint,
)

__all__ = ["build_outbox", "build_service", "connect", "history_path", "serve"]

log = structlog.get_logger("shiftwatch.run")


def build_outbox(settings: Settings, metrics: Metrics) -> Outbox | None:
    """The outbox and its deliveries from ``settings.alerting`` (None when none is configured)."""
    cfg = settings.alerting
    deliveries: list[Delivery] = []
    if cfg.alertmanager_urls:
        deliveries.append(
            AlertmanagerDelivery(
                cfg.alertmanager_urls,
                resend_seconds=cfg.alertmanager_resend_seconds,
                generator_base_url=cfg.generator_base_url,
            )
        )
    if cfg.webhook_url:
        deliveries.append(WebhookDelivery(cfg.webhook_url, cfg.secret()))
    if cfg.kafka_topic:
        deliveries.append(KafkaDelivery(settings.kafka, cfg.kafka_topic))
    if not deliveries:
        return None
    return Outbox(cfg.outbox_path, deliveries, metrics, max_backoff=cfg.max_backoff_seconds)


def history_path(settings: Settings) -> Path | None:
    """Where ``run`` records its history: ``history.path``, else next to ``state.path``.

    None when the history is disabled, or when there is nowhere to put it (no
    ``state.path``). The two-stage tier (``scale.engine: quix``) records no history:
    its judge stage has no recorder yet, so it is off there whatever is set.
    """
    cfg = settings.history
    if not cfg.enabled:
        return None
    if cfg.path is not None:
        return history_file(cfg.path)
    if settings.state.path is not None:
        return history_file(settings.state.path)
    return None


def _recorder_factory(settings: Settings) -> Callable[[], HistoryRecorder] | None:
    path = history_path(settings)
    if path is None:
        return None
    cfg = settings.history

    def recorder() -> HistoryRecorder:
        return HistoryRecorder(
            path,
            resolution_seconds=cfg.resolution_seconds,
            retention_seconds=cfg.retention_days * 86400.0,
        )

    return recorder


def build_service(
    settings: Settings,
    policy: Policy,
    metrics: Metrics,
    *,
    extra_sinks: list[AlertSink] | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
    log_alerts: bool = True,
) -> Service:
    """Connect the Kafka source, the dead-letter topic and the alert sinks to a pipeline.

    A checkpoint that cannot be restored is refused first (exit 2 under
    ``state.mismatch=fail``), whether or not Kafka is reachable. Then the Kafka clients
    are made: if the broker cannot be reached this raises a
    :class:`~kafka.errors.KafkaError` before anything else (files, threads) is set up, so
    the caller can retry.
    """
    state = settings.state
    store = SqliteStateStore(state.path, state.signing_key()) if state.path is not None else None
    fresh = "detectors start afresh from the group's committed offsets"
    # A checkpoint that cannot be restored: exit 2 (fail) or discarded (fresh), before consuming.
    checkpoint = load_checkpoint(store, state.mismatch, FIX_RUN, fresh) if store else None
    try:
        dead = kafka_dead_letter_sink(settings.kafka)
        try:
            source = kafka_source(settings.kafka, metrics)
        except BaseException:
            dead.close()
            raise
    except BaseException:
        if store is not None:
            store.close()
        raise
    sinks: list[AlertSink] = [LogAlertSink()] if log_alerts else []
    sinks.extend(extra_sinks or [])
    # Lines written after the checkpoint are written again when their events are re-read.
    restore_outputs(checkpoint, {"alerts": settings.alerts_out})
    alerts_file = JsonlAlertSink(settings.alerts_out) if settings.alerts_out is not None else None
    if alerts_file is not None:
        sinks.append(alerts_file)
    outbox = build_outbox(settings, metrics)
    if outbox is not None:
        sinks.append(outbox.start())
    recorder = _recorder_factory(settings)

    def new_pipeline() -> Pipeline:
        history = recorder() if recorder is not None else None
        return Pipeline(
            policy,
            dead_letters=dead,
            alert_sinks=[*sinks, history] if history is not None else sinks,
            metrics=metrics,
            limits=settings.limits,
            history=history,
        )

    pipeline = new_pipeline()
    checkpointer = None
    if store is not None:
        outputs: dict[str, Positioned] = {"alerts": alerts_file} if alerts_file else {}
        checkpointer = Checkpointer(store, pipeline, settings.state.checkpoint_seconds, outputs)
        # Signed and decoded, but can this release's pipeline take its state?
        restore = checkpointer.restore
        try:
            seeks = guarded(store, lambda: restore(checkpoint), state.mismatch, FIX_RUN, fresh)
        except StateMismatch:
            source.close()
            pipeline.close()
            raise
        if seeks is None:  # discarded; the pipeline may be partly restored
            pipeline = checkpointer.pipeline = new_pipeline()
            seeks = {}
        source.seek_on_assign(seeks)
    # Each assigned partition keeps its own event-time watermark (monitor.watermarks).
    source.on_assign = pipeline.assigned
    source.on_revoke = pipeline.revoked
    return Service(source, pipeline, on_batch=on_batch, checkpointer=checkpointer, metrics=metrics)


def connect(
    settings: Settings, policy: Policy, metrics: Metrics, stop: threading.Event
) -> Service | None:
    """Build the service, retrying with backoff while Kafka cannot be reached.

    Each failed attempt is one log line; None when ``stop`` is set first.
    """
    backoff = 1.0
    while not stop.is_set():
        try:
            return build_service(settings, policy, metrics)
        except KafkaError as exc:
            if stop.is_set():
                break
            log.warning(
                "Kafka unreachable; retrying",
                bootstrap_servers=settings.kafka.bootstrap_servers,
                error=str(exc).splitlines()[0][:200],
                retry_in_s=round(backoff, 1),
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
    return None


def serve(settings: Settings, policy: Policy, stop: threading.Event) -> None:
    """Run until ``stop`` is set, serving the HTTP endpoints meanwhile.

    ``/livez`` answers from the start; ``/readyz`` says "connecting" (503) until the
    Kafka clients are up, and ``/verdict`` answers 503 until then.
    """
    metrics = Metrics()
    service: Service | None = None

    def readiness() -> tuple[bool, str]:
        if service is None:
            return False, f"connecting to Kafka at {settings.kafka.bootstrap_servers}"
        return service.readiness()

    http = HttpServer(metrics.registry, readiness, settings.http_host, settings.http_port)
    http.expect_verdicts()
    http.start()
    try:
        service = connect(settings, policy, metrics, stop)
        if service is None:
            log.info("stopped before connecting to Kafka")
            return
        http.attach_verdicts(service.pipeline.verdicts)
        log.info(
            "started",
            bootstrap_servers=settings.kafka.bootstrap_servers,
            client=settings.kafka.client,
            topics=settings.kafka.topics,
            group_id=settings.kafka.group_id,
            http=f"{http.host}:{http.port}",
            models=[m.name for m in policy.models],
        )
        service.run(stop)
    finally:
        http.stop()
