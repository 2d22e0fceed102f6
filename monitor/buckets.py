"""Counts per inference-time bucket, released to the detectors once they are final.

An agent's actions follow its inference by seconds, and an outcome label
(a chargeback) follows it by days. Fed to a sequential test as they arrive, a
burst of late actions after a lull in inferences looks like a rate increase,
and a fresh inference whose actions or labels are still to come looks like a
decrease — a freshly deployed candidate would look better than it is. So every
count is attributed (through the join table) to the bucket of its
*inference's* time, and a bucket is released only once the model's event time
(:mod:`monitor.watermarks`) has moved ``window`` seconds past it: counting
only inferences older than the horizon is the censoring correction for label
delay. A released bucket is one grouped observation per check (count,
exposure), binomial or Poisson.

Buckets are released one at a time, in bucket order, whatever the number
that became final at once: the detectors' input depends on the events and
their times only, not on how the stream was cut into batches or interleaved
across partitions. A count whose bucket was already released is *late*:
:meth:`Buckets.add` refuses it and the caller counts it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.streams import Stream, decode_stream, encode_stream

__all__ = ["BatchCounts", "Buckets", "Row", "TallyBuckets"]

#: One open bucket of one (version, stream): ``[exposure, count_0, count_1, ...]``.
Row = list[float]


class Buckets:
    """Open buckets per (version, stream): one exposure and ``n_columns`` counts each.

    Parameters
    ----------
    n_columns
        Counts kept per bucket (one per check, or one per histogram bin).
    window_seconds
        How long after a bucket ends its counts may still change.
    bucket_seconds
        Bucket width; memory is about ``window / width + 1`` buckets per stream.

    Examples
    --------
    >>> b = Buckets(n_columns=1, window_seconds=10.0)
    >>> b.add("v2", [()], 3.2, 1.0, [0])
    True
    >>> [index for index, _ in b.release(13.9)], [index for index, _ in b.release(14.0)]
    ([], [3])
    >>> b.add("v2", [()], 3.9, 1.0)   # its bucket was released: late
    False
    """

    def __init__(self, n_columns: int, window_seconds: float, bucket_seconds: float = 1.0) -> None:
        if n_columns < 0 or window_seconds < 0 or bucket_seconds <= 0:
            raise ValueError("need n_columns >= 0, window_seconds >= 0 and bucket_seconds > 0")
        self.n_columns = n_columns
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self._open: dict[int, dict[tuple[str, Stream], Row]] = {}
        self._released_below = -math.inf  # buckets with a lower index are final

    def index(self, timestamp: float) -> int:
        return math.floor(timestamp / self.bucket_seconds)

    def final_at(self, index: int) -> float:
        """The event time at which bucket ``index`` is final: its end plus the window."""
        return (index + 1) * self.bucket_seconds + self.window_seconds

    def is_late(self, timestamp: float) -> bool:
        """Whether the bucket of ``timestamp`` was already released."""
        return self.index(timestamp) < self._released_below

    def add(
        self,
        version: str,
        streams: Sequence[Stream],
        timestamp: float,
        exposure: float,
        columns: Sequence[int] = (),
    ) -> bool:
        """Add ``exposure`` and one count to each of ``columns``; False (nothing added) if late."""
        b = self.index(timestamp)
        if b < self._released_below:
            return False
        bucket = self._open.get(b)
        if bucket is None:
            bucket = self._open[b] = {}
        for stream in streams:
            key = (version, stream)
            row = bucket.get(key)
            if row is None:
                row = bucket[key] = [0.0] * (1 + self.n_columns)
            row[0] += exposure
            for col in columns:
                row[1 + col] += 1.0
        return True

    def add_row(self, index: int, version: str, streams: Sequence[Stream], row: Row) -> bool:
        """Add a row of sums (``[exposure, count_0, ...]``) to bucket ``index`` of each stream.

        Rows are plain sums, so counts pre-aggregated elsewhere (a batch, another
        partition) merge by addition, whatever order they come in. False (nothing
        added) if the bucket was already released.
        """
        if index < self._released_below:
            return False
        if len(row) != 1 + self.n_columns:
            raise ValueError(f"a row of {len(row)} values for {self.n_columns} columns")
        bucket = self._open.get(index)
        if bucket is None:
            bucket = self._open[index] = {}
        for stream in streams:
            key = (version, stream)
            mine = bucket.get(key)
            if mine is None:
                bucket[key] = list(row)
            else:
                for j, value in enumerate(row):
                    mine[j] += value
        return True

    def batch(self) -> BatchCounts:
        """An accumulator for one batch's counts, added here by :meth:`BatchCounts.flush`."""
        return BatchCounts(self)

    def release(self, watermark: float) -> Iterator[tuple[int, dict[tuple[str, Stream], Row]]]:
        """Buckets that ended at least ``window_seconds`` before ``watermark``, oldest first."""
        if not math.isfinite(watermark):
            return  # no event time yet
        # Bucket b covers [b, b+1) * width and is final once (b+1) * width + window <= watermark.
        limit = math.floor((watermark - self.window_seconds) / self.bucket_seconds)
        if limit <= self._released_below:
            return
        self._released_below = limit
        for b in sorted(i for i in self._open if i < limit):
            # Sorted by (version, stream): the order never depends on arrival.
            yield b, dict(sorted(self._open.pop(b).items()))

    def with_columns(self, n_columns: int) -> Buckets:
        """Empty buckets of ``n_columns`` that continue from where these were released.

        For counts whose columns are only known later (bins frozen from data):
        these buckets kept time, and must hold nothing.
        """
        if self._open:
            raise ValueError("buckets still open")
        other = Buckets(n_columns, self.window_seconds, self.bucket_seconds)
        other._released_below = self._released_below
        return other

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The open buckets as columns: bucket index, (version, stream) code and row."""
        keys: dict[tuple[str, Stream], int] = {}
        index: list[int] = []
        owner: list[int] = []
        rows: list[Row] = []
        for b, bucket in self._open.items():
            for key, row in bucket.items():
                index.append(b)
                owner.append(keys.setdefault(key, len(keys)))
                rows.append(row)
        return {
            "released_below": self._released_below,
            "keys": [[version, *encode_stream(stream)] for version, stream in keys],
            "index": np.asarray(index, dtype=np.int64),
            "owner": np.asarray(owner, dtype=np.int64),
            "rows": np.asarray(rows, dtype=np.float64).reshape(len(rows), 1 + self.n_columns),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (the same column count and window)."""
        keys = [(str(k[0]), decode_stream(k[1:])) for k in state["keys"]]
        rows: NDArray[np.float64] = np.asarray(state["rows"], dtype=np.float64)
        if rows.shape[1:] != (1 + self.n_columns,):
            raise ValueError(f"bucket rows of {rows.shape} do not fit {self.n_columns} columns")
        self._open = {}
        index, owner = state["index"].tolist(), state["owner"].tolist()
        for b, k, row in zip(index, owner, rows.tolist(), strict=True):
            self._open.setdefault(int(b), {})[keys[k]] = row
        self._released_below = float(state["released_below"])


class BatchCounts:
    """One batch's counts for a :class:`Buckets`, summed per (bucket, version, streams) first.

    :meth:`add` answers as :meth:`Buckets.add` would (nothing is released while a
    batch is counted), but sums into one row per bucket, version and streams
    together, so a batch costs one dictionary lookup per event and one
    :meth:`Buckets.add_row` per group instead of one row update per event and
    stream. Counts are whole numbers in floats, so the sums are exact and the
    buckets end up identical to adding event by event.

    Examples
    --------
    >>> b = Buckets(n_columns=1, window_seconds=0.0)
    >>> batch = b.batch()
    >>> batch.add("v2", ((), ("lang", "en")), 3.2, 1.0, (0,)), batch.add("v2", ((),), 3.7, 1.0)
    (True, True)
    >>> batch.flush()
    >>> [(i, rows) for i, rows in b.release(4.0)]
    [(3, {('v2', ()): [2.0, 1.0], ('v2', ('lang', 'en')): [1.0, 1.0]})]
    """

    def __init__(self, buckets: Buckets) -> None:
        self.buckets = buckets
        self._width = buckets.bucket_seconds
        self._below = buckets._released_below
        self._zero = [0.0] * (1 + buckets.n_columns)
        self._rows: dict[tuple[int, str, tuple[Stream, ...]], Row] = {}

    def add(
        self,
        version: str,
        streams: tuple[Stream, ...],
        timestamp: float,
        exposure: float,
        columns: Sequence[int] = (),
    ) -> bool:
        """Count as :meth:`Buckets.add` does; False (nothing counted) if the bucket is gone."""
        b = math.floor(timestamp / self._width)
        if b < self._below:
            return False
        key = (b, version, streams)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = self._zero.copy()
        row[0] += exposure
        for col in columns:
            row[1 + col] += 1.0
        return True

    def flush(self) -> None:
        """Add the batch's sums to the buckets and start afresh."""
        add_row = self.buckets.add_row
        for (b, version, streams), row in self._rows.items():
            add_row(b, version, streams, row)
        self._rows = {}


class TallyBuckets:
    """Open buckets of named counts per (version, stream): tool name -> calls.

    For counts whose categories are only known as they arrive (tools): they
    are kept by name and given to the detectors at release, in bucket order
    and then name order, so a category's place never depends on arrival order.
    At most ``max_names`` distinct names are kept per bucket and key; more
    calls are counted under :data:`TallyBuckets.FOLDED` (an empty name, which
    no event carries), so memory stays bounded whatever the input.

    Examples
    --------
    >>> t = TallyBuckets(window_seconds=10.0)
    >>> t.add("v2", [()], 3.5, "crm.lookup")
    True
    >>> [(i, dict(c)) for i, rows in t.release(14.0) for c in rows.values()]
    [(3, {'crm.lookup': 1})]
    """

    FOLDED = ""

    def __init__(self, window_seconds: float, max_names: int = 1024) -> None:
        if window_seconds < 0 or max_names < 1:
            raise ValueError("need window_seconds >= 0 and max_names >= 1")
        self.window_seconds = window_seconds
        self.max_names = max_names
        self._open: dict[int, dict[tuple[str, Stream], Counter[str]]] = {}
        self._released_below = -math.inf

    def final_at(self, index: int) -> float:
        """The event time at which bucket ``index`` is final: its end plus the window."""
        return index + 1.0 + self.window_seconds

    def add(self, version: str, streams: Sequence[Stream], timestamp: float, name: str) -> bool:
        """Count one ``name`` in each stream's bucket of ``timestamp``; False if late."""
        b = math.floor(timestamp)
        if b < self._released_below:
            return False
        bucket = self._open.setdefault(b, {})
        for stream in streams:
            calls = bucket.setdefault((version, stream), Counter())
            if name in calls or len(calls) < self.max_names:
                calls[name] += 1
            else:
                calls[self.FOLDED] += 1
        return True

    def release(
        self, watermark: float
    ) -> Iterator[tuple[int, dict[tuple[str, Stream], Counter[str]]]]:
        """Buckets final at ``watermark``, oldest first, keys and names in sorted order."""
        if not math.isfinite(watermark):
            return
        limit = math.floor(watermark - self.window_seconds)
        if limit <= self._released_below:
            return
        self._released_below = limit
        for b in sorted(i for i in self._open if i < limit):
            rows = self._open.pop(b)
            yield b, {key: Counter(dict(sorted(rows[key].items()))) for key in sorted(rows)}

    def state(self) -> dict[str, Any]:
        return {
            "released_below": self._released_below,
            "open": [
                [b, version, encode_stream(stream), dict(calls)]
                for b, bucket in self._open.items()
                for (version, stream), calls in bucket.items()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._released_below = float(state["released_below"])
        self._open = {}
        for b, version, stream, calls in state["open"]:
            key = (str(version), decode_stream(stream))
            self._open.setdefault(int(b), {})[key] = Counter(
                {str(t): int(n) for t, n in calls.items()}
            )
