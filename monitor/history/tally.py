"""What each version served, counted per resolution bucket of event time, a batch at a time.

:class:`Tally` adds a batch's routed events (:class:`monitor.work.ModelWork`)
into the open buckets of one model: inferences, actions and outcomes per
version, the inference latencies (count, sum and the fixed bins of
:data:`monitor.history.store.LATENCY_EDGES_MS`), the first and last inference
time, and actions per (action, tool, privileged). An event counts in the
bucket of its time (the columns' ``at``: for an action or outcome, its inference's
time), ``at`` being the bucket's end; an event whose bucket was already
written (a late action, or an outcome arriving days later) counts in the
oldest bucket still open, so every event is counted once and a written bucket
never changes. Grouping is vectorised per batch (numpy), not per event.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.history.rows import ToolSample, VersionSample
from monitor.history.store import LATENCY_EDGES_MS, Served, latency_bins
from monitor.work import Columns, InferenceColumns, ModelWork

__all__ = ["Tally", "bucket_ends"]

_NBINS = len(LATENCY_EDGES_MS) + 1

#: An action's key within its version's bucket: (action, tool or "", privileged).
ToolKey = tuple[str, str, bool]


def bucket_ends(times: np.ndarray[Any, Any], resolution: float, floor: float) -> list[float]:
    """The end of each time's bucket, ``[end - resolution, end)``, and at least ``floor``.

    >>> bucket_ends(np.array([0.0, 299.9, 300.0, 10.0]), 300.0, -math.inf)
    [300.0, 300.0, 600.0, 300.0]
    >>> bucket_ends(np.array([10.0]), 300.0, 900.0)
    [900.0]
    """
    ends = (np.floor(times / resolution) + 1.0) * resolution
    return np.maximum(ends, floor).tolist()  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Bucket:
    """One version's counts in one bucket."""

    baseline: bool
    inferences: int = 0
    actions: int = 0
    outcomes: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    bins: list[int] = field(default_factory=lambda: [0] * _NBINS)
    first_at: float = math.inf
    last_at: float = -math.inf


@dataclass(slots=True)
class Tally:
    """The open buckets of one model; ``closed`` is the end of the last bucket written."""

    model: str
    baseline: str
    resolution: float
    closed: float = -math.inf
    _served: dict[tuple[str, float], _Bucket] = field(default_factory=dict)
    _tools: Counter[tuple[str, float, ToolKey]] = field(default_factory=Counter)

    def _floor(self) -> float:
        """The end of the oldest bucket still open."""
        return self.closed + self.resolution

    def _bucket(self, version: str, end: float) -> _Bucket:
        bucket = self._served.get((version, end))
        if bucket is None:
            bucket = self._served[(version, end)] = _Bucket(baseline=version == self.baseline)
        return bucket

    def _ends(self, rows: Columns) -> list[float]:
        return bucket_ends(rows.times(), self.resolution, self._floor())

    def add(self, work: ModelWork) -> None:
        """Count one batch's events of this model."""
        versions = [g.version for g in work.table.groups]
        if len(work.inferences):
            self._inferences(work.inferences, versions)
        actions = work.actions
        if len(actions):
            ends = self._ends(actions)
            names = [versions[g] for g in actions.group]
            for (version, end), n in Counter(zip(names, ends, strict=True)).items():
                self._bucket(version, end).actions += n
            self._tools.update(
                zip(
                    names,
                    ends,
                    ((e.action, e.tool or "", bool(e.privileged)) for e in actions.event),
                    strict=True,
                )
            )
        outcomes = work.outcomes
        if len(outcomes):
            keys = zip((versions[g] for g in outcomes.group), self._ends(outcomes), strict=True)
            for (version, end), n in Counter(keys).items():
                self._bucket(version, end).outcomes += n

    def _inferences(self, rows: InferenceColumns, versions: list[str]) -> None:
        n = len(rows)
        times = rows.times()
        ends = bucket_ends(times, self.resolution, self._floor())
        index: dict[tuple[str, float], int] = {}
        keys = zip((versions[g] for g in rows.group), ends, strict=True)
        idx = np.fromiter(
            (index.setdefault(k, len(index)) for k in keys),
            dtype=np.intp,
            count=n,
        )
        k = len(index)
        latency = rows.latencies()
        has = ~np.isnan(latency)
        lat_idx, lat = idx[has], latency[has]
        counts = np.bincount(idx, minlength=k)
        lat_counts = np.bincount(lat_idx, minlength=k)
        lat_sums = np.bincount(lat_idx, weights=lat, minlength=k)
        bins = np.bincount(lat_idx * _NBINS + latency_bins(lat), minlength=k * _NBINS)
        bins = bins.reshape(k, _NBINS)
        first = np.full(k, math.inf)
        last = np.full(k, -math.inf)
        np.minimum.at(first, idx, times)
        np.maximum.at(last, idx, times)
        for (version, end), i in index.items():
            b = self._bucket(version, end)
            b.inferences += int(counts[i])
            b.latency_count += int(lat_counts[i])
            b.latency_sum_ms += float(lat_sums[i])
            b.bins = [x + int(y) for x, y in zip(b.bins, bins[i], strict=True)]
            b.first_at = min(b.first_at, float(first[i]))
            b.last_at = max(b.last_at, float(last[i]))

    def rows(self, until: float) -> tuple[list[Served], list[ToolSample]]:
        """The rows of the open buckets ending at or before ``until``, in key order."""
        served = [
            Served(
                VersionSample(
                    self.model, version, end, b.baseline, b.inferences, b.actions, b.outcomes,
                    b.latency_count, b.latency_sum_ms, tuple(b.bins),
                ),
                b.first_at,
                b.last_at,
            )
            for (version, end), b in sorted(self._served.items())
            if end <= until
        ]  # fmt: skip
        tools = [
            ToolSample(self.model, version, end, action, tool, privileged, n)
            for (version, end, (action, tool, privileged)), n in sorted(self._tools.items())
            if end <= until
        ]
        return served, tools

    def close(self, until: float) -> tuple[list[Served], list[ToolSample]]:
        """The rows of the buckets ending at or before ``until``, forgotten here: written."""
        out = self.rows(until)
        self._served = {key: b for key, b in self._served.items() if key[1] > until}
        self._tools = Counter({key: n for key, n in self._tools.items() if key[1] > until})
        self.closed = max(self.closed, until)
        return out

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        served = [
            [v, end, b.baseline, b.inferences, b.actions, b.outcomes, b.latency_count,
             b.latency_sum_ms, list(b.bins), b.first_at, b.last_at]
            for (v, end), b in sorted(self._served.items())
        ]  # fmt: skip
        return {
            "closed": self.closed,
            "served": served,
            "tools": [
                [v, end, action, tool, privileged, n]
                for (v, end, (action, tool, privileged)), n in sorted(self._tools.items())
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.closed = float(state["closed"])
        self._served = {}
        for v, end, base, inf, act, out, lc, ls, bins, first, last in state["served"]:
            counts = [int(x) for x in bins]
            if len(counts) != _NBINS:
                raise ValueError(f"history latency bins: {len(counts)}, expected {_NBINS}")
            self._served[(str(v), float(end))] = _Bucket(
                bool(base), int(inf), int(act), int(out), int(lc), float(ls), counts,
                float(first), float(last),
            )  # fmt: skip
        self._tools = Counter(
            {
                (str(v), float(end), (str(a), str(t), bool(p))): int(n)
                for v, end, a, t, p, n in state["tools"]
            }
        )
