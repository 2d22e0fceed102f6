"""The counts of a score or latency check, in bins frozen at the baseline's quantiles.

Until the edges are frozen every value is kept raw in its event-time bucket
and released buckets are *held*; once the held buckets have
:data:`~monitor.binning.REFERENCE_SAMPLE` baseline values the edges are
computed from the first of them in event-time order, frozen, and the held
buckets are binned and returned, oldest first (see
:mod:`monitor.runners.distributions`, which judges them).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.binning import (
    BUFFER_CAP,
    REFERENCE_SAMPLE,
    Binner,
    bin_widths,
    latency_bin,
    quantile_bins,
    quantile_edges,
    score_bin,
)
from monitor.buckets import Buckets
from monitor.policy import Metric
from monitor.streams import Stream, decode_stream, encode_stream
from monitor.work import Floats, GroupTable, Ints

__all__ = ["Hists", "Pending", "QuantileCounts"]

#: One value waiting for its bins: (version, streams, event time, value).
Pending = tuple[str, tuple[Stream, ...], float, float]
Hists = dict[tuple[str, Stream], NDArray[np.float64]]


class QuantileCounts:
    """The counts of one score or latency check, in bins frozen at the baseline's quantiles.

    Parameters
    ----------
    binner
        The check's binning: its distance, most bins and value range.
    baseline
        The baseline version, whose values set the edges.

    Notes
    -----
    Before the edges freeze, values are kept raw per event-time bucket, at
    most :data:`~monitor.binning.BUFFER_CAP` per version; more are counted in
    :attr:`unbinned` and never reach a detector. Released buckets are held
    until :data:`~monitor.binning.REFERENCE_SAMPLE` baseline values are in
    them; then the edges are computed from the first of those values by
    event time (ties by value), frozen, and the held buckets are returned
    binned, oldest first. A restored state of 0.2.0 (no ``edges``)
    continues with the equal-width (scores) or log-spaced (latencies) bins.
    """

    def __init__(self, binner: Binner, baseline: str) -> None:
        self.binner = binner
        self.baseline = baseline
        self.buckets = Buckets(0, 0.0)  # keeps time only until the bins freeze
        self.edges: NDArray[np.float64] | None = None
        self.legacy = False
        self.n_bins = binner.n_bins
        self.widths: list[float] | None = None
        self.unbinned = 0
        self._pending: dict[int, list[Pending]] = {}
        self._buffered: Counter[str] = Counter()

    @property
    def frozen(self) -> bool:
        return self.edges is not None or self.legacy

    def _bin(self, value: float) -> int:
        if self.edges is not None:
            return bisect_right(self._edge_list, value)  # searchsorted(..., side="right")
        if self.binner.check.metric is Metric.LATENCY:
            return latency_bin(value)
        return score_bin(value, self.n_bins)

    def add(self, version: str, streams: Sequence[Stream], at: float, value: float) -> bool:
        """Count (or keep) one value at event time ``at``; False if its bucket was released."""
        if self.frozen:
            return self.buckets.add(version, streams, at, 1.0, (self._bin(value),))
        if self.buckets.is_late(at):
            return False
        if self._buffered[version] >= BUFFER_CAP:
            self.unbinned += 1
            return True
        pending = self._pending.setdefault(self.buckets.index(at), [])
        pending.append((version, tuple(streams), at, value))
        self._buffered[version] += 1
        return True

    def add_columns(
        self, table: GroupTable, at: Floats, group: Ints, values: Floats
    ) -> NDArray[np.bool_]:
        """:meth:`add` for a batch in columns (binned together once the edges are frozen);
        returns which values were late."""
        if not self.frozen:
            groups = table.groups
            added = [
                self.add(groups[g].version, groups[g].streams, t, v)
                for g, t, v in zip(group.tolist(), at.tolist(), values.tolist(), strict=True)
            ]
            return ~np.asarray(added, dtype=np.bool_)
        if self.edges is not None:
            bins = np.searchsorted(self.edges, values, side="right").astype(np.int64)
        else:
            bins = np.asarray([self._bin(v) for v in values.tolist()], dtype=np.int64)
        each = np.arange(len(values), dtype=np.int64)
        return self.buckets.add_columns(table, at, group, None, (each, bins))

    def release(self, watermark: float) -> Iterator[tuple[int, Hists]]:
        """Buckets final at ``watermark`` (and any held ones), oldest first, as histograms."""
        if not self.frozen:
            for _ in self.buckets.release(watermark):
                pass  # nothing is open in the time-keeping buckets; this moves time on
            held = sorted(b for b in self._pending if self._released(b))
            baseline = [
                (at, value)
                for b in held
                for version, _, at, value in self._pending[b]
                if version == self.baseline
            ]
            if len(baseline) < REFERENCE_SAMPLE:
                return
            sample = sorted(baseline)
            self._freeze([value for _, value in sample[:REFERENCE_SAMPLE]])
            for b in held:
                yield b, self._hists(self._pending.pop(b))
            for b in sorted(self._pending):
                for version, streams, at, value in self._pending[b]:
                    self.buckets.add(version, streams, at, 1.0, (self._bin(value),))
            self._pending, self._buffered = {}, Counter()
        for index, rows in self.buckets.release(watermark):
            yield index, {key: np.asarray(row[1:], dtype=np.float64) for key, row in rows.items()}

    def final_at(self, index: int) -> float:
        return self.buckets.final_at(index)

    def _released(self, index: int) -> bool:
        return self.buckets.is_late(index * self.buckets.bucket_seconds)

    def _freeze(self, sample: list[float]) -> None:
        binner = self.binner
        self._set_edges(quantile_edges(sample, binner.n_bins, binner.lower, binner.upper))
        self.buckets = self.buckets.with_columns(self.n_bins)

    def _set_edges(self, edges: NDArray[np.float64]) -> None:
        self.edges = edges
        self._edge_list: list[float] = edges.tolist()
        self.n_bins = len(edges) + 1
        if self.binner.distance == "wasserstein":
            self.widths = bin_widths(edges, self.binner.lower, self.binner.upper)

    def _hists(self, values: list[Pending]) -> Hists:
        bins = quantile_bins(self._edges(), [value for _, _, _, value in values]).tolist()
        hists: Hists = {}
        for (version, streams, _, _), b in zip(values, bins, strict=True):
            for stream in streams:
                hist = hists.get((version, stream))
                if hist is None:
                    hist = hists[(version, stream)] = np.zeros(self.n_bins, dtype=np.float64)
                hist[b] += 1.0
        return dict(sorted(hists.items()))

    def _edges(self) -> NDArray[np.float64]:
        assert self.edges is not None
        return self.edges

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain data: the edges (None: not frozen yet), the buckets and the raw values."""
        groups: dict[tuple[str, tuple[Stream, ...]], int] = {}
        owner: list[int] = []
        times: list[float] = []
        values: list[float] = []
        for pending in self._pending.values():
            for version, streams, at, value in pending:
                owner.append(groups.setdefault((version, streams), len(groups)))
                times.append(at)
                values.append(value)
        return {
            "layout": "equal-width" if self.legacy else "quantile",
            "edges": None if self.edges is None else self.edges.copy(),
            "buckets": self.buckets.state(),
            "unbinned": self.unbinned,
            "groups": [[v, [encode_stream(s) for s in streams]] for v, streams in groups],
            "owner": np.asarray(owner, dtype=np.int64),
            "time": np.asarray(times, dtype=np.float64),
            "value": np.asarray(values, dtype=np.float64),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`."""
        self.legacy = state["layout"] == "equal-width"
        self.edges, self.widths = None, None
        self.n_bins = self.binner.legacy_bins if self.legacy else self.binner.n_bins
        if state["edges"] is not None:
            self._set_edges(np.asarray(state["edges"], dtype=np.float64).reshape(-1))
        self.buckets = Buckets(self.n_bins if self.frozen else 0, 0.0)
        self.buckets.restore(state["buckets"])
        self.unbinned = int(state["unbinned"])
        groups = [
            (str(v), tuple(decode_stream(s) for s in streams)) for v, streams in state["groups"]
        ]
        self._pending, self._buffered = {}, Counter()
        owners = np.asarray(state["owner"], dtype=np.int64).tolist()
        times = np.asarray(state["time"], dtype=np.float64).tolist()
        values = np.asarray(state["value"], dtype=np.float64).tolist()
        for k, at, value in zip(owners, times, values, strict=True):
            version, streams = groups[k]
            self._pending.setdefault(self.buckets.index(at), []).append(
                (version, streams, at, value)
            )
            self._buffered[version] += 1

    def restore_legacy(self, buckets: dict[str, Any]) -> None:
        """Continue from a state of 0.2.0: equal-width or log-spaced bins, as then."""
        self.legacy, self.edges, self.widths = True, None, None
        self.n_bins = self.binner.legacy_bins
        self.buckets = Buckets(self.n_bins, 0.0)
        self.buckets.restore(buckets)
        self._pending, self._buffered, self.unbinned = {}, Counter(), 0
