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
from monitor.work import GroupTable

__all__ = ["Buckets", "Row", "TallyBuckets"]

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
        #: Open rows, as numpy arrays (released as lists of floats).
        self._open: dict[int, dict[tuple[str, Stream], NDArray[np.float64]]] = {}
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
        row = [0.0] * (1 + self.n_columns)
        row[0] = exposure
        for col in columns:
            row[1 + col] += 1.0
        return self.add_row(self.index(timestamp), version, streams, row)

    def add_row(
        self, index: int, version: str, streams: Sequence[Stream], row: Row | NDArray[np.float64]
    ) -> bool:
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
        values = np.asarray(row, dtype=np.float64)
        for stream in streams:
            key = (version, stream)
            mine = bucket.get(key)
            if mine is None:
                bucket[key] = values.copy()
            else:
                mine += values
        return True

    def add_columns(
        self,
        table: GroupTable,
        at: NDArray[np.float64],
        group: NDArray[np.int64],
        exposure: NDArray[np.float64] | None = None,
        hits: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None,
    ) -> NDArray[np.bool_]:
        """Count a batch given in columns; returns which events were late (not counted).

        Event ``i`` (time ``at[i]``, group ``group[i]`` of ``table``) adds
        ``exposure[i]`` (1 when None) to its bucket's row of every stream of
        its group, and each hit ``(event, column)`` of ``hits`` one count to
        that column of the same rows. The sums are formed with numpy, one row
        per (bucket, version, stream) touched, then merged as
        :meth:`add_row` does, so the buckets end up exactly as adding event by
        event would leave them (counts are whole numbers in floats).
        """
        b = np.floor(at / self.bucket_seconds)
        late: NDArray[np.bool_] = b < self._released_below
        if len(at) == 0 or late.all():
            return late
        event, key = table.expand(group)
        keep = ~late[event]
        event, key = event[keep], key[keep]
        index = b[event].astype(np.int64)
        low = int(index.min())
        n_keys = len(table.keys)
        uniq, inverse = np.unique((index - low) * n_keys + key, return_inverse=True)
        n_rows, width = len(uniq), 1 + self.n_columns
        rows = np.zeros((n_rows, width), dtype=np.float64)
        weights = None if exposure is None else exposure[event]
        rows[:, 0] = np.bincount(inverse, weights=weights, minlength=n_rows)
        if hits is not None and self.n_columns and len(hits[0]):
            hit_event, column = hits
            # Each hit counts in every row its event was spread over (``event`` is sorted).
            start = np.searchsorted(event, hit_event, side="left")
            spread = np.searchsorted(event, hit_event, side="right") - start
            total = int(spread.sum())
            if total:
                first = np.repeat(start - (np.cumsum(spread) - spread), spread)
                at_row = inverse[first + np.arange(total)]
                flat = at_row * self.n_columns + np.repeat(column, spread)
                counts = np.bincount(flat, minlength=n_rows * self.n_columns)
                rows[:, 1:] = counts.reshape(n_rows, self.n_columns)
        keys = table.keys
        opened = self._open
        for code, row in zip(uniq.tolist(), rows, strict=True):
            bucket_index, k = divmod(code, n_keys)
            bucket_index += low
            bucket = opened.get(bucket_index)
            if bucket is None:
                bucket = opened[bucket_index] = {}
            mine = bucket.get(keys[k])
            if mine is None:
                bucket[keys[k]] = row.copy()
            else:
                mine += row
        return late

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
            rows = self._open.pop(b)
            yield b, {key: rows[key].tolist() for key in sorted(rows)}

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
        rows: list[NDArray[np.float64]] = []
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
        for b, k, row in zip(index, owner, rows, strict=True):
            self._open.setdefault(int(b), {})[keys[k]] = row.copy()
        self._released_below = float(state["released_below"])


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

    def add_columns(
        self, table: GroupTable, at: NDArray[np.float64], group: NDArray[np.int64], names: list[str]
    ) -> NDArray[np.bool_]:
        """:meth:`add` for a batch in columns; returns which calls were late (not counted).

        Calls are summed per (bucket, group, name) first, in order of first
        appearance, so the names each stream keeps (at most ``max_names``) are
        those adding call by call would keep.
        """
        b = np.floor(at)
        late: NDArray[np.bool_] = b < self._released_below
        kept = np.flatnonzero(~late).tolist()
        calls = Counter(
            zip(
                b.astype(np.int64)[kept].tolist(),
                group[kept].tolist(),
                [names[i] for i in kept],
                strict=True,
            )
        )
        groups = table.groups
        for (index, code, name), n in calls.items():
            bucket = self._open.setdefault(index, {})
            version = groups[code].version
            for stream in groups[code].streams:
                tally = bucket.setdefault((version, stream), Counter())
                if name in tally or len(tally) < self.max_names:
                    tally[name] += n
                else:
                    tally[self.FOLDED] += n
        return late

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
