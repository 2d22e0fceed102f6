"""False-negative counts at equal label ages, and the baseline's label-arrival curve.

For each label age ``a`` of the policy (``label_ages_seconds``) a negative
decision at ``t`` is counted in a bucket of its inference time, with one
count per check if a positive label for it arrived by ``t + a``; the bucket is
released once the model's event time is ``a`` past its end, so every decision
in it had its full ``a`` seconds. Candidate and baseline decisions are
censored alike: the counts compare them at the same age, long before the
label horizon.

The baseline's overall stream also feeds a :class:`~detectors.arrival.LabelArrival`
(Kaplan-Meier over label ages), which gives ``F(a)``, the share of eventual
positive labels in by age ``a``, evaluated at the event time each bucket became
final, so the estimate does not depend on batching.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from detectors.arrival import LabelArrival
from monitor.buckets import BatchCounts, Buckets, Row
from monitor.events import InferenceEvent, OutcomeEvent
from monitor.policy import ModelPolicy
from monitor.router import Routed
from monitor.streams import Stream, decode_stream, encode_stream

__all__ = ["AgeRelease", "AgesBatch", "LabelAges"]

#: Buckets per label age: a decision is judged at most ``a / 16`` seconds older than ``a``.
_PER_AGE = 16
#: Arrival rows per smallest age, and at most this many rows per horizon.
_ARRIVAL_PER_AGE = 8
_ARRIVAL_MAX_ROWS = 4096

#: Baseline positive labels before ``F(a)`` is estimated (and absolute tolerances scaled).
MIN_ARRIVAL_LABELS = 20

#: One released bucket at one age: (age index, rows, final at, F(age) then, whether that
#: estimate rests on a full horizon of follow-up).
AgeRelease = tuple[int, dict[tuple[str, Stream], Row], float, float, bool]


class LabelAges:
    """The equal-age buckets of one model's ``false_negative_rate`` checks.

    Parameters
    ----------
    policy
        The model's policy: its label ages, horizon and baseline.
    n_checks
        The model's ``false_negative_rate`` checks (one count column each).
    """

    def __init__(self, policy: ModelPolicy, n_checks: int) -> None:
        self.ages = policy.label_ages
        self.baseline = policy.baseline
        self.buckets = [
            Buckets(n_checks, a, bucket_seconds=max(1.0, a / _PER_AGE)) for a in self.ages
        ]
        horizon = policy.label_horizon_seconds
        width = max(1.0, min(self.ages, default=horizon) / _ARRIVAL_PER_AGE)
        self.arrival = LabelArrival(
            self.ages, horizon, bucket_seconds=max(width, horizon / _ARRIVAL_MAX_ROWS)
        )
        #: The baseline's (count, exposure) per (check, stream, age index), to prime detectors.
        self.reference: dict[tuple[str, Stream, int], list[float]] = {}

    def batch(self) -> AgesBatch:
        """An accumulator for one batch's decisions and labels (see :class:`AgesBatch`)."""
        return AgesBatch(self)

    def release(self, watermark: float) -> Iterator[AgeRelease]:
        """Every bucket the watermark has passed, age by age, oldest first, with ``F(age)``."""
        for k, buckets in enumerate(self.buckets):
            for index, rows in buckets.release(watermark):
                final = buckets.final_at(index)
                share, complete = self.arrival.share(self.ages[k], final)
                if self.arrival.labels() < MIN_ARRIVAL_LABELS:
                    share, complete = math.nan, False
                yield k, rows, final, share, complete
        # Buckets released later are final after watermark - width: fold no later than that.
        widest = max((b.bucket_seconds for b in self.buckets), default=0.0)
        if math.isfinite(watermark):
            self.arrival.fold(watermark - widest)

    def add_reference(
        self, check: str, stream: Stream, k: int, count: float, exposure: float
    ) -> None:
        totals = self.reference.setdefault((check, stream, k), [0.0, 0.0])
        totals[0] += count
        totals[1] += exposure

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "buckets": [b.state() for b in self.buckets],
            "arrival": self.arrival.state(),
            "reference": [
                [check, k, *encode_stream(stream), *totals]
                for (check, stream, k), totals in self.reference.items()
            ],
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from :meth:`state`; None (a checkpoint of 0.2.0) starts the ages afresh."""
        if state is None:
            return
        for buckets, bucket_state in zip(self.buckets, state["buckets"], strict=True):
            buckets.restore(bucket_state)
        self.arrival.restore(state["arrival"])
        self.reference = {
            (str(item[0]), decode_stream(item[2:-2]), int(item[1])): [
                float(item[-2]),
                float(item[-1]),
            ]
            for item in state["reference"]
        }


class AgesBatch:
    """One batch's counts for :class:`LabelAges`, summed per bucket before they are added."""

    def __init__(self, ages: LabelAges) -> None:
        self.ages = ages
        self._counts: list[BatchCounts] = [b.batch() for b in ages.buckets]

    def add_decision(self, inference: Routed[InferenceEvent]) -> bool:
        """Count a negative decision at every age; False if one of its buckets was released."""
        at, ages = inference.at, self.ages
        if inference.baseline and ages.ages:
            ages.arrival.add_decision(at)
        ok = True
        for counts in self._counts:
            ok = counts.add(inference.version, inference.streams, at, 1.0) and ok
        return ok

    def add_label(self, outcome: Routed[OutcomeEvent], columns: range) -> bool:
        """Count a positive label at every age it arrived within; False if any was late."""
        ages = self.ages
        age = outcome.event.time.timestamp() - outcome.at
        if outcome.version == ages.baseline and ages.ages:
            ages.arrival.add_label(outcome.at, age)
        ok = True
        for a, counts in zip(ages.ages, self._counts, strict=True):
            if age <= a:
                ok = counts.add(outcome.version, outcome.streams, outcome.at, 0.0, columns) and ok
        return ok

    def flush(self) -> None:
        """Add the batch's sums to the age buckets."""
        for counts in self._counts:
            counts.flush()
