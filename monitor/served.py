"""What each model version served in a batch, into the metrics: events, freshness, latency."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from monitor.metrics import Metrics
from monitor.router import RouteResult

__all__ = ["observe_served"]


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
