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

import numpy as np

from detectors.arrival import LabelArrival
from monitor.buckets import Buckets, Row
from monitor.policy import ModelPolicy
from monitor.streams import Stream, decode_stream, encode_stream
from monitor.work import Flags, Floats, GroupTable, Ints, baseline_flags, every_column

__all__ = ["AgeRelease", "LabelAges"]

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

    def add_decisions(self, table: GroupTable, at: Floats, group: Ints) -> Flags:
        """Count negative decisions at every age; flags those one of whose buckets was released."""
        if self.ages:
            # One add per arrival row (decisions are counted per row of decision time).
            mine = at[baseline_flags(table, group)]
            rows = np.floor(mine / self.arrival.bucket_seconds)
            first, n = np.unique(rows, return_index=True, return_counts=True)[1:]
            for t, k in zip(mine[first].tolist(), n.tolist(), strict=True):
                self.arrival.add_decision(t, float(k))
        late = np.zeros(len(at), dtype=np.bool_)
        for buckets in self.buckets:
            late |= buckets.add_columns(table, at, group)
        return late

    def add_labels(
        self, table: GroupTable, at: Floats, group: Ints, own_at: Floats, n_checks: int
    ) -> Flags:
        """Count positive labels (decided at ``at``, arrived at ``own_at``) in every check's
        column at every age they arrived within; flags those late at some age."""
        age = own_at - at
        if self.ages:
            base = baseline_flags(table, group)
            add = self.arrival.add_label
            for t, a in zip(at[base].tolist(), age[base].tolist(), strict=True):
                add(t, a)
        late = np.zeros(len(at), dtype=np.bool_)
        for a, buckets in zip(self.ages, self.buckets, strict=True):
            chosen = np.flatnonzero(age <= a)
            if not len(chosen):
                continue
            every = every_column(len(chosen), n_checks)
            late[chosen] |= buckets.add_columns(
                table, at[chosen], group[chosen], np.zeros(len(chosen)), every
            )
        return late

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
