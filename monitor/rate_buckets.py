"""Counts per inference-time bucket, released to the detectors once they are final.

An agent's actions follow its inference by seconds, and an outcome label
(a chargeback) follows it by days. Fed to a sequential test as they arrive, a
burst of late actions after a lull in inferences looks like a rate increase,
and a fresh inference whose actions or labels are still to come looks like a
decrease — a freshly deployed candidate would look better than it is. So every
count is attributed (through the join table) to the bucket of its
*inference's* time, and a bucket is released only once the model's event time
has moved ``window`` seconds past it: counting only inferences older than the
horizon is the censoring correction for label delay. A released bucket is one
grouped observation per check (count, exposure), binomial or Poisson.
Releasing by event time, not by poll batch, makes the detectors' input
independent of how the stream was cut into batches. Counts arriving after
their bucket was released are counted as late.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from monitor.router import Stream

__all__ = ["RateBuckets", "Released"]

#: (exposure per bucket, counts per bucket and column) of released buckets, oldest first.
Released = tuple[NDArray[np.float64], NDArray[np.float64]]


class RateBuckets:
    """Open buckets per (version, stream): one exposure and ``n_columns`` counts each.

    Parameters
    ----------
    n_columns
        Counts kept per bucket (one per check).
    window_seconds
        How long after a bucket ends its counts may still change.
    bucket_seconds
        Bucket width; memory is about ``window / width + 1`` buckets per stream.
    """

    def __init__(self, n_columns: int, window_seconds: float, bucket_seconds: float = 1.0) -> None:
        if n_columns < 0 or window_seconds < 0 or bucket_seconds <= 0:
            raise ValueError("need n_columns >= 0, window_seconds >= 0 and bucket_seconds > 0")
        self.n_columns = n_columns
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self._open: dict[tuple[str, Stream], dict[int, list[float]]] = {}
        self._released_below = -math.inf  # buckets with a lower index are final
        self.late = 0

    def add(
        self,
        version: str,
        streams: Sequence[Stream],
        timestamp: float,
        exposure: float,
        columns: Sequence[int] = (),
    ) -> None:
        """Add ``exposure`` and one count to each of ``columns`` at inference time ``timestamp``."""
        b = math.floor(timestamp / self.bucket_seconds)
        if b < self._released_below:
            self.late += 1
            return
        for stream in streams:
            buckets = self._open.setdefault((version, stream), {})
            row = buckets.get(b)
            if row is None:
                row = buckets[b] = [0.0] * (1 + self.n_columns)
            row[0] += exposure
            for col in columns:
                row[1 + col] += 1.0

    def _limit(self, watermark: float) -> float:
        # Bucket b covers [b, b+1) * width and is final once (b+1) * width + window <= watermark.
        return math.floor((watermark - self.window_seconds) / self.bucket_seconds)

    def due(self, watermark: float) -> bool:
        """Whether :meth:`release` at ``watermark`` would release anything new."""
        return self._limit(watermark) > self._released_below

    def release(self, watermark: float) -> dict[tuple[str, Stream], Released]:
        """Buckets that ended at least ``window_seconds`` before ``watermark``, per stream."""
        limit = self._limit(watermark)
        out: dict[tuple[str, Stream], Released] = {}
        if limit <= self._released_below:
            return out
        for key, buckets in self._open.items():
            ready = sorted(b for b in buckets if b < limit)
            if not ready:
                continue
            rows = np.array([buckets.pop(b) for b in ready], dtype=np.float64)
            out[key] = (rows[:, 0], rows[:, 1:])
        self._released_below = limit
        return out

    def open_buckets(self) -> int:
        """Buckets held in memory (bounded by window / bucket width per stream)."""
        return sum(len(b) for b in self._open.values())
