"""Every Prometheus metric shiftwatch exports, declared in one place.

Labels are bounded: ``kind`` is one of four values, ``code`` one of the
rejection codes, ``reason`` one of the three event kinds, partitions are
those assigned, and segment values are capped by the router's
:class:`~monitor.router.SegmentFolder`. Counters are updated once per batch,
with label children cached; the check and verdict gauges are computed at
scrape time by :class:`ChecksCollector` from the published verdicts, and so are the
baseline's own drift per (model, check) (:mod:`monitor.baseline_drift`), and
the freshness of each watched version (:mod:`monitor.freshness`). Versions in
labels are bounded too: the baseline and the listed candidates, or at most
:data:`monitor.router.MAX_CANDIDATES` of them when the policy lists none.

No ``_created`` series are exported: prometheus_client only has a
process-wide switch for them, turned off when :class:`Metrics` is built.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.baseline_drift import HOLD_SECONDS, watched
from monitor.envelope import code_version
from monitor.events import KINDS
from monitor.freshness import Freshness
from monitor.verdict import NO_BASELINE_DRIFT, VerdictBoard

__all__ = ["CHECK_STATES", "ChecksCollector", "FreshnessCollector", "Metrics"]

#: Numeric encoding of a check's state for the ``shiftwatch_check_state`` gauge.
CHECK_STATES: dict[str, int] = {"ok": 0, "inconclusive": 1, "breach": 2}

_KIND_LABELS = (*KINDS, "unknown")


class Metrics:
    """The service's metrics, registered on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # A counter's `_created` series doubles it and no dashboard or rule reads it.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Gauge(
            "shiftwatch_build_info",
            "1, labelled with the shiftwatch version and the Python version running it.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(code_version(), platform.python_version()).set(1)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
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
        self.model_events = Counter(
            "shiftwatch_model_events_total",
            "Events routed to a watched model, by model, version (baseline or candidate) "
            "and event kind; outcomes count under the version of their joined inference.",
            ["model", "version", "kind"],
            registry=r,
        )
        self.latency_seconds = Counter(
            "shiftwatch_inference_latency_seconds",
            "Serving latency (the inferences' latency_ms) summed per model and version; "
            "with shiftwatch_inference_latency_observations_total, the mean latency.",
            ["model", "version"],
            registry=r,
        )
        self.latency_observations = Counter(
            "shiftwatch_inference_latency_observations",
            "Inferences that reported a latency_ms, per model and version.",
            ["model", "version"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "shiftwatch_batch_processing_seconds",
            "Time to process one polled batch.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "shiftwatch_checkpoint_seconds",
            "Time to save one checkpoint (state, offsets, output sizes) and commit its offsets.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.checkpoint_last = Gauge(
            "shiftwatch_checkpoint_last_success_timestamp_seconds",
            "Wall time of the last checkpoint saved and committed (0: none yet).",
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "shiftwatch_checkpoint_failures_total",
            "Checkpoints that could not be saved or committed (retried at the next chance).",
            registry=r,
        )
        self.history_write_failures = Counter(
            "shiftwatch_history_write_failures_total",
            "Writes to the history file that failed (disk full, locked, unwritable); their "
            "rows are dropped and monitoring goes on.",
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
            "Events whose event-time bucket had already been released to the detectors, "
            "by model and event kind (inference, action, outcome); they are not counted.",
            ["model", "reason"],
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
            self.unjoined.labels(kind)
            self.unmonitored.labels(kind)
        #: Check states and verdicts, computed at scrape time from the published board.
        self.verdicts = VerdictBoard()
        r.register(ChecksCollector(self.verdicts))
        #: Newest event time per version and watermark per model, read at scrape time.
        self.freshness = Freshness()
        r.register(FreshnessCollector(self.freshness))


class FreshnessCollector(Collector):
    """Each watched version's newest inference time and staleness, each model's watermark.

    See :mod:`monitor.freshness`; a version appears once its first inference is
    routed, a model once its watermark is finite.
    """

    def __init__(self, freshness: Freshness) -> None:
        self.freshness = freshness

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        last = GaugeMetricFamily(
            "shiftwatch_last_event_timestamp_seconds",
            "Event time (Unix seconds) of the newest inference routed for this version.",
            labels=("model", "version"),
        )
        stale = GaugeMetricFamily(
            "shiftwatch_candidate_stale",
            "1 while this version's newest inference trails its model's newest by more than "
            "limits.stale_after_seconds of event time (the candidate stopped getting traffic).",
            labels=("model", "version"),
        )
        watermark = GaugeMetricFamily(
            "shiftwatch_watermark_timestamp_seconds",
            "The model's event-time watermark (Unix seconds): buckets before it are judged.",
            labels=("model",),
        )
        for seen in self.freshness.versions():
            last.add_metric([seen.model, seen.version], seen.last_event)
            stale.add_metric([seen.model, seen.version], 1.0 if seen.stale else 0.0)
        for model, at in sorted(self.freshness.watermarks().items()):
            watermark.add_metric([model], at)
        yield last
        yield stale
        yield watermark


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


class ChecksCollector(Collector):
    """The check and verdict metrics of every published candidate, at scrape time.

    Reads the :class:`~monitor.verdict.VerdictBoard`'s snapshot (the prometheus
    client's custom-collector pattern): a candidate withdrawn from the board
    disappears from the next scrape, with nothing to release. Before data, each
    of a listed candidate's checks is ``inconclusive`` on the overall stream
    with NaN values, and ``shiftwatch_rollback_required`` is 0. The baseline
    drift metrics have one child per model and watched check (every check but
    ``novel_tool``), 0 until a change is found.
    """

    _GAUGES = (
        ("statistic", "shiftwatch_check_statistic", "The detector's evidence statistic."),
        (
            "threshold",
            "shiftwatch_check_threshold",
            "The threshold the statistic is compared with.",
        ),
        (
            "observed",
            "shiftwatch_check_observed",
            "The candidate's observed value of the check's metric (rate, distance).",
        ),
        (
            "reference",
            "shiftwatch_check_reference",
            "The baseline's reference value of the check's metric.",
        ),
    )
    _LABELS = ("model", "version", "check", "segment")

    def __init__(self, board: VerdictBoard) -> None:
        self.board = board

    def describe(self) -> list[Metric]:
        return []  # values exist only at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "shiftwatch_check_state",
            "Check state: 0 ok, 1 inconclusive, 2 breach.",
            labels=self._LABELS,
        )
        gauges = {
            key: GaugeMetricFamily(name, doc, labels=self._LABELS)
            for key, name, doc in self._GAUGES
        }
        lower = GaugeMetricFamily(
            "shiftwatch_check_allowed_lower",
            "The lowest candidate value the check allows, in the metric's own units "
            "(a rate, a distance).",
            labels=self._LABELS,
        )
        upper = GaugeMetricFamily(
            "shiftwatch_check_allowed_upper",
            "The highest candidate value the check allows, in the metric's own units; "
            "absent where the tolerance sets no upper bound.",
            labels=self._LABELS,
        )
        samples = GaugeMetricFamily(
            "shiftwatch_check_samples",
            "Observations behind the check on each side (candidate, baseline).",
            labels=(*self._LABELS, "side"),
        )
        needed = GaugeMetricFamily(
            "shiftwatch_check_samples_needed",
            "Observations each side needs before the check can be conclusive.",
            labels=(*self._LABELS, "side"),
        )
        info = GaugeMetricFamily(
            "shiftwatch_check_info",
            "1 per configured check: its metric, action and severity (join on it).",
            labels=("model", "version", "check", "metric", "action", "severity"),
        )
        rollback = GaugeMetricFamily(
            "shiftwatch_rollback_required",
            "1 while a check whose action is rollback is breached for this candidate version.",
            labels=("model", "version"),
        )
        drift = GaugeMetricFamily(
            "shiftwatch_baseline_drift",
            "1 while the baseline's own overall stream of this check drifts (a change found "
            f"within the last {HOLD_SECONDS:g} s of event time): the world changed under both "
            "versions.",
            labels=("model", "check"),
        )
        changes = CounterMetricFamily(
            "shiftwatch_baseline_drift_changes",
            "Changes found in the baseline's own overall stream of this check.",
            labels=("model", "check"),
        )
        models: set[str] = set()
        for published in self.board.snapshot():
            policy, verdict = published.policy, published.verdict
            model, version = policy.name, verdict["version"]
            if model not in models:  # one baseline per model, in every candidate's verdict
                models.add(model)
                view = verdict.get("baseline_drift", NO_BASELINE_DRIFT)
                for check in filter(watched, policy.checks):
                    drifting = check.name in view["checks"]
                    drift.add_metric([model, check.name], 1.0 if drifting else 0.0)
                    changes.add_metric([model, check.name], view["changes"].get(check.name, 0))
            rollback.add_metric([model, version], 1.0 if verdict["verdict"] == "fail" else 0.0)
            views = {(v["check"], v["segment"]): v for v in verdict["checks"]}
            for check in policy.checks:
                info.add_metric(
                    [model, version, check.name, check.metric.value, check.action,
                     check.resolved_severity],
                    1.0,
                )  # fmt: skip
                views.setdefault((check.name, ""), {"state": "inconclusive"})
            for (check_name, segment), view in sorted(views.items()):
                labels = [model, version, check_name, segment]
                state.add_metric(labels, float(CHECK_STATES[view["state"]]))
                for key, family in gauges.items():
                    value = view.get(key)
                    family.add_metric(labels, math.nan if value is None else float(value))
                allowed = view.get("allowed")
                if allowed is None:  # a check with no data yet
                    continue
                lower.add_metric(labels, _value(allowed["lower"]))
                if allowed["upper"] is not None:
                    upper.add_metric(labels, float(allowed["upper"]))
                for side in ("candidate", "baseline"):
                    samples.add_metric([*labels, side], float(view["seen"][side]))
                    needed.add_metric([*labels, side], float(view["needed"][side]))
        yield state
        yield from gauges.values()
        yield lower
        yield upper
        yield samples
        yield needed
        yield info
        yield rollback
        yield drift
        yield changes
