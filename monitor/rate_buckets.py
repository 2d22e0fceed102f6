"""Per-second counts for the rate checks, released to the detectors once final.

An agent's actions follow its inference by seconds. Fed to a sequential test
as they arrive, a burst of late actions after a lull in inferences looks like
a rate increase, and a fresh inference whose actions are still to come looks
like a decrease. So every count is attributed (through the join table for
actions) to the one-second bucket of its *inference's* time, and a bucket is
released only once the model's event time has moved ``window`` seconds past
it. A released bucket is one grouped observation per check: (matching
decisions or actions, inferences), binomial for ``decision_rate`` and Poisson
for ``action_rate``. Releasing by event time, not by poll batch, makes the
detectors' input independent of how the stream was cut into batches.
Counts arriving after their bucket was released are counted as late.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from monitor.events import ActionEvent
from monitor.policy import Check, Metric
from monitor.router import Stream

__all__ = ["RateBuckets", "Released"]

#: (inferences per bucket, matching actions per bucket and check) of released buckets, oldest first.
Released = tuple[NDArray[np.float64], NDArray[np.float64]]


def _matches(action: ActionEvent, where: dict[str, str | bool]) -> bool:
    return all(getattr(action, k, None) == v for k, v in where.items())


class RateBuckets:
    """Open buckets of per-inference counts, per (version, stream); one column per rate check."""

    def __init__(
        self, checks: Sequence[Check], window_seconds: float, bucket_seconds: float = 1.0
    ) -> None:
        if window_seconds < 0 or bucket_seconds <= 0:
            raise ValueError("window_seconds must be >= 0 and bucket_seconds > 0")
        self.checks = tuple(checks)
        self._decision_cols = [
            (1 + j, c.where.get("decision"))
            for j, c in enumerate(self.checks)
            if c.metric is Metric.DECISION_RATE
        ]
        self._action_checks = [
            (1 + j, c.where) for j, c in enumerate(self.checks) if c.metric is Metric.ACTION_RATE
        ]
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self._open: dict[tuple[str, Stream], dict[int, list[float]]] = {}
        self._released_below = -math.inf  # buckets with a lower index are final
        self.late = 0

    def _row(self, version: str, stream: Stream, bucket: int) -> list[float]:
        """The counts of one bucket: [inferences, one count per check]."""
        buckets = self._open.setdefault((version, stream), {})
        row = buckets.get(bucket)
        if row is None:
            row = buckets[bucket] = [0.0] * (1 + len(self.checks))
        return row

    def _bucket(self, timestamp: float) -> int:
        return math.floor(timestamp / self.bucket_seconds)

    def add_inference(
        self, version: str, streams: Sequence[Stream], timestamp: float, decision: str | None
    ) -> None:
        b = self._bucket(timestamp)
        if b < self._released_below:
            self.late += 1
            return
        hits = [col for col, wanted in self._decision_cols if wanted == decision]
        for stream in streams:
            row = self._row(version, stream, b)
            row[0] += 1.0
            for col in hits:
                row[col] += 1.0

    def add_action(
        self, version: str, streams: Sequence[Stream], inference_time: float, action: ActionEvent
    ) -> None:
        hits = [col for col, where in self._action_checks if _matches(action, where)]
        if not hits:
            return
        b = self._bucket(inference_time)
        if b < self._released_below:
            self.late += 1
            return
        for stream in streams:
            row = self._row(version, stream, b)
            for col in hits:
                row[col] += 1.0

    def due(self, watermark: float) -> bool:
        """Whether :meth:`release` at ``watermark`` would release anything new."""
        return (
            math.floor((watermark - self.window_seconds) / self.bucket_seconds)
            > self._released_below
        )

    def release(self, watermark: float) -> dict[tuple[str, Stream], Released]:
        """Buckets that ended at least ``window_seconds`` before ``watermark``, per stream."""
        # Bucket b covers [b, b+1) * width and is final once (b+1) * width + window <= watermark.
        limit = math.floor((watermark - self.window_seconds) / self.bucket_seconds)
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
