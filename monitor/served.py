"""A routed batch into the metrics: its accounting, and what each model version served
(events, freshness, latency)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from monitor.events import Rejection
from monitor.metrics import Metrics
from monitor.router import RouteResult

__all__ = ["count_routed", "observe_served"]


def count_routed(
    metrics: Metrics,
    consumed: Mapping[str, int],
    routed: RouteResult,
    rejected: Iterable[tuple[object, Rejection]],
) -> None:
    """A routed batch's accounting, by event kind: consumed, processed, duplicates, unjoined,
    unmonitored, and dead-lettered by kind and code."""
    m = metrics
    for counter, values in (
        (m.consumed, consumed),
        (m.processed, routed.processed),
        (m.duplicates, routed.duplicates),
        (m.unjoined, routed.unjoined),
        (m.unmonitored, routed.unmonitored),
    ):
        for kind, n in values.items():
            counter.labels(kind).inc(n)
    for (kind, code), n in Counter((r.kind, r.code) for _, r in rejected).items():
        m.dead_lettered.labels(kind, code).inc(n)


def observe_served(metrics: Metrics, routed: RouteResult) -> None:
    """Events per (model, version, kind), each version's newest inference time and the
    sum and count of its inference latencies."""
    for name, work in routed.work.items():
        groups = work.table.groups
        counts: Counter[tuple[str, str]] = Counter()
        for kind, rows in work.by_kind():
            for code, n in Counter(rows.group).items():
                counts[(groups[code].version, kind)] += n
        for (version, kind), n in counts.items():
            metrics.model_events.labels(name, version, kind).inc(n)
        inferences = work.inferences
        if not len(inferences):
            continue
        versions = np.asarray([g.version for g in groups], dtype=object)[inferences.groups()]
        at, latency = inferences.times(), inferences.latencies()
        for version in dict.fromkeys(versions.tolist()):
            mine = versions == version
            baseline = version == work.table.baseline
            metrics.freshness.observe(name, version, float(at[mine].max()), baseline=baseline)
            values = latency[mine]
            values = values[~np.isnan(values)]
            if len(values):
                seconds = math.fsum(values.tolist()) / 1000.0
                metrics.latency_seconds.labels(name, version).inc(seconds)
                metrics.latency_observations.labels(name, version).inc(len(values))
