"""Every Prometheus metric shiftwatch exports, declared in one place.

Labels are bounded: ``kind`` is one of four values, ``code`` one of the
rejection codes, partitions are those assigned, and segment values are capped
by the router's :class:`~monitor.router.SegmentFolder`. Metrics are updated
once per batch, with label children cached.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.events import KINDS

__all__ = ["CHECK_STATES", "Metrics"]

#: Numeric encoding of a check's state for the ``shiftwatch_check_state`` gauge.
CHECK_STATES: dict[str, int] = {"ok": 0, "inconclusive": 1, "breach": 2}

_KIND_LABELS = (*KINDS, "unknown")


class Metrics:
    """The service's metrics, registered on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "shiftwatch_events_consumed_total",
            "Messages read from a source, by event kind.",
            ["kind"],
            registry=r,
        )
        self.processed = Counter(
            "shiftwatch_events_processed_total",
            "Valid, new events routed to detectors.",
            ["kind"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "shiftwatch_events_dead_lettered_total",
            "Rejected messages sent to the dead-letter path, by kind and reason code.",
            ["kind", "code"],
            registry=r,
        )
        self.duplicates = Counter(
            "shiftwatch_events_duplicate_total",
            "Events dropped because their id was seen before.",
            ["kind"],
            registry=r,
        )
        self.unjoined = Counter(
            "shiftwatch_events_unjoined_total",
            "Actions and outcomes whose request_id matched no inference in the join table.",
            ["kind"],
            registry=r,
        )
        self.unmonitored = Counter(
            "shiftwatch_events_unmonitored_total",
            "Valid events for a model or version no policy watches.",
            ["kind"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "shiftwatch_batch_processing_seconds",
            "Time to process one polled batch.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.batch_size = Histogram(
            "shiftwatch_batch_messages",
            "Messages per processed batch.",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000),
            registry=r,
        )
        self.lag = Gauge(
            "shiftwatch_consumer_lag_messages",
            "Messages between the committed position and the partition's high watermark.",
            ["topic", "partition"],
            registry=r,
        )
        self.check_state = Gauge(
            "shiftwatch_check_state",
            "Check state: 0 ok, 1 inconclusive, 2 breach.",
            ["model", "version", "check", "segment"],
            registry=r,
        )
        self.check_statistic = Gauge(
            "shiftwatch_check_statistic",
            "The detector's evidence statistic.",
            ["model", "version", "check", "segment"],
            registry=r,
        )
        self.check_threshold = Gauge(
            "shiftwatch_check_threshold",
            "The threshold the statistic is compared with.",
            ["model", "version", "check", "segment"],
            registry=r,
        )
        self.check_observed = Gauge(
            "shiftwatch_check_observed",
            "The candidate's observed value of the check's metric (rate, distance).",
            ["model", "version", "check", "segment"],
            registry=r,
        )
        self.check_reference = Gauge(
            "shiftwatch_check_reference",
            "The baseline's reference value of the check's metric.",
            ["model", "version", "check", "segment"],
            registry=r,
        )
        self.check_info = Gauge(
            "shiftwatch_check_info",
            "1 per configured check: its metric, action and severity (join on it).",
            ["model", "version", "check", "metric", "action", "severity"],
            registry=r,
        )
        self.rollback_required = Gauge(
            "shiftwatch_rollback_required",
            "1 while a check whose action is rollback is breached for this candidate version.",
            ["model", "version"],
            registry=r,
        )
        self.alert_deliveries = Counter(
            "shiftwatch_alert_deliveries_total",
            "Alert deliveries attempted from the outbox, by sink and result (ok, error).",
            ["sink", "result"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "shiftwatch_outbox_pending",
            "Alert records in the outbox not yet acknowledged by the sink.",
            ["sink"],
            registry=r,
        )
        self.alerts = Counter(
            "shiftwatch_alerts_total",
            "Alerts raised, by model, check action and status.",
            ["model", "action", "status"],
            registry=r,
        )
        self.segments_folded = Counter(
            "shiftwatch_segment_values_folded_total",
            "Segment values folded into 'other' because a key reached its cap.",
            ["model"],
            registry=r,
        )
        self.late = Counter(
            "shiftwatch_events_late_total",
            "Inferences and actions whose one-second bucket had already been evaluated.",
            ["model"],
            registry=r,
        )
        self.up = Gauge(
            "shiftwatch_source_connected",
            "1 while the source is connected and consuming.",
            registry=r,
        )
        for kind in _KIND_LABELS:
            self.consumed.labels(kind)
            self.processed.labels(kind)
            self.duplicates.labels(kind)
