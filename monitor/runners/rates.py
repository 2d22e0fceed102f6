"""The rate checks: ``decision_rate``, ``action_rate`` and ``false_negative_rate``.

Each is a :class:`~detectors.RateShiftDetector` per (candidate version,
stream), fed one (count, exposure) pair per released bucket:

- ``decision_rate``: inferences with the decision in ``where`` over inferences
  (Bernoulli), released ``action_window_seconds`` after the bucket when the
  model also has ``action_rate`` checks (they share the bucket columns);
- ``action_rate``: matching actions over inferences (Poisson), attributed to
  their inference's bucket and released after the action window;
- ``false_negative_rate``: negative decisions later labelled positive over
  negative decisions (Bernoulli), released after ``label_horizon_seconds``
  (censoring: a decision is only judged once its label had time to come),
  and, before that, at each of the policy's label ages
  (:mod:`monitor.runners.label_ages`), candidate and baseline compared at
  the same age by an :class:`~detectors.EqualAgeRateDetector`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors import EqualAgeRateDetector, RateRecovery, RateShiftDetector
from detectors.calibration import Family
from monitor.buckets import Buckets, Row
from monitor.episodes import CheckStatus, Episodes
from monitor.messages import SourcePosition
from monitor.policy import Check, Metric, ModelPolicy
from monitor.runners.base import CheckRunner, Locate
from monitor.runners.label_ages import AgeRelease, LabelAges
from monitor.streams import Stream, decode_stream, encode_stream
from monitor.work import ModelWork, every_column, spread

__all__ = ["RateDetector", "RateRunner"]

#: A rate check's detector: false-negative checks judge at label ages too.
RateDetector = RateShiftDetector | EqualAgeRateDetector

#: Labels per FN bucket width: the horizon is cut into this many buckets.
_FN_BUCKETS = 64
#: Rate metrics counted in per-second buckets, released after the action window.
_SHORT = (Metric.DECISION_RATE, Metric.ACTION_RATE)


class RateRunner(CheckRunner[RateDetector, RateRecovery]):
    """Runs the rate checks of one model (see the module docstring)."""

    detector_type = RateShiftDetector

    def __init__(
        self,
        policy: ModelPolicy,
        checks: list[Check],
        detector_arl0: float,
        episodes: Episodes,
    ) -> None:
        super().__init__(policy, checks, detector_arl0, episodes)
        self._short = [c for c in checks if c.metric in _SHORT]
        self._fn = [c for c in checks if c.metric is Metric.FALSE_NEGATIVE_RATE]
        self._decision_cols = [
            (j, c.where.get("decision"))
            for j, c in enumerate(self._short)
            if c.metric is Metric.DECISION_RATE
        ]
        self._action_cols = [
            (j, c.where) for j, c in enumerate(self._short) if c.metric is Metric.ACTION_RATE
        ]
        #: Per decision: the decision_rate columns it counts in.
        self._decision_columns: dict[str | None, tuple[int, ...]] = {}
        for j, wanted in self._decision_cols:
            self._decision_columns[wanted] = (*self._decision_columns.get(wanted, ()), j)
        window = policy.action_window_seconds if self._action_cols else 0.0
        self.buckets = Buckets(len(self._short), window)
        horizon = policy.label_horizon_seconds
        self.fn_buckets = Buckets(
            len(self._fn), horizon, bucket_seconds=max(1.0, horizon / _FN_BUCKETS)
        )
        self.label_ages = LabelAges(policy, len(self._fn))
        self._positive = frozenset(policy.positive_labels)
        #: The baseline's (count, exposure) per (check, stream), to prime new detectors.
        self._reference: dict[tuple[str, Stream], list[float]] = {}

    def feed(self, work: ModelWork) -> None:
        table, inferences = work.table, work.inferences
        if len(inferences):
            at, group = inferences.times(), inferences.groups()
            if self._short:
                decided = self._decided(inferences.decision)
                inferences.mark_late(self.buckets.add_columns(table, at, group, None, decided))
            if self._fn:
                negative = np.flatnonzero(inferences.negatives())
                if len(negative):
                    neg_at, neg_group = at[negative], group[negative]
                    late = self.fn_buckets.add_columns(table, neg_at, neg_group)
                    late |= self.label_ages.add_decisions(table, neg_at, neg_group)
                    inferences.mark_late(spread(late, negative, len(inferences)))
        actions = work.actions
        if self._action_cols and len(actions):
            masks = [(j, actions.matching(where)) for j, where in self._action_cols]
            chosen = np.flatnonzero(np.logical_or.reduce([mask for _, mask in masks]))
            if len(chosen):
                place = np.full(len(actions), -1, dtype=np.int64)
                place[chosen] = np.arange(len(chosen), dtype=np.int64)
                event = np.concatenate([place[np.flatnonzero(mask)] for _, mask in masks])
                column = np.concatenate(
                    [np.full(int(mask.sum()), j, dtype=np.int64) for j, mask in masks]
                )
                late = self.buckets.add_columns(
                    table,
                    actions.times()[chosen],
                    actions.groups()[chosen],
                    np.zeros(len(chosen)),
                    (event, column),
                )
                actions.mark_late(spread(late, chosen, len(actions)))
        outcomes = work.outcomes
        if self._fn and len(outcomes):
            positive = self._positive
            chosen = np.asarray(
                [
                    i
                    for i, (negative, label) in enumerate(
                        zip(outcomes.negative, outcomes.label, strict=True)
                    )
                    if negative and label in positive
                ],
                dtype=np.int64,
            )
            if len(chosen):
                at, group = outcomes.times()[chosen], outcomes.groups()[chosen]
                n_fn = len(self._fn)
                every = every_column(len(chosen), n_fn)
                late = self.fn_buckets.add_columns(table, at, group, np.zeros(len(chosen)), every)
                own = np.asarray(outcomes.own_at, dtype=np.float64)[chosen]
                late |= self.label_ages.add_labels(table, at, group, own, n_fn)
                outcomes.mark_late(spread(late, chosen, len(outcomes)))

    def _decided(self, decisions: list[str | None]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``(inference, column)`` of every decision_rate column each decision counts in."""
        values = np.asarray(decisions, dtype=object)
        event, column = [], []
        for wanted, cols in self._decision_columns.items():
            chosen = np.flatnonzero(values == wanted)
            for j in cols:
                event.append(chosen)
                column.append(np.full(len(chosen), j, dtype=np.int64))
        if not event:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(event).astype(np.int64), np.concatenate(column)

    def release(self, watermark: float, locate: Locate) -> None:
        if self._fn:
            for release in self.label_ages.release(watermark):
                self._judge_age(release, locate(release[2]))
        for buckets, checks in ((self.buckets, self._short), (self.fn_buckets, self._fn)):
            if not checks:
                continue
            for index, rows in buckets.release(watermark):
                final = buckets.final_at(index)
                self._judge_bucket(checks, rows, final, locate(final))

    def _judge_age(self, release: AgeRelease, source: SourcePosition | None) -> None:
        """Judge one bucket of decisions at one label age, the baseline's rows first."""
        k, rows, end, share, complete = release
        ages = self.label_ages
        for (version, stream), row in rows.items():
            if version != self.baseline:
                continue
            for j, check in enumerate(self._fn):
                ages.add_reference(check.name, stream, k, row[1 + j], row[0])
                for status in self.watching(check, stream):
                    if isinstance(status.detector, EqualAgeRateDetector):
                        status.detector.update_reference_at(k, row[1 + j], row[0])
        for (version, stream), row in rows.items():
            if version == self.baseline:
                continue
            for j, check in enumerate(self._fn):
                status = self.status(check, version, stream)
                det = status.detector
                if not isinstance(det, EqualAgeRateDetector):
                    continue
                det.set_arrival(k, share, complete=complete)
                det.update_at(k, row[1 + j], row[0])
                if status.recovery is not None and det.fired_index == k:
                    status.recovery.add(row[1 + j], row[0])
                self.judge(status, end, source)

    def _judge_bucket(
        self,
        checks: list[Check],
        rows: dict[tuple[str, Stream], Row],
        end: float,
        source: SourcePosition | None,
    ) -> None:
        # The baseline first, so that a candidate's bucket is judged against every
        # baseline bucket up to and including the same seconds.
        for (version, stream), row in rows.items():
            if version != self.baseline:
                continue
            exposure = row[0]
            for j, check in enumerate(checks):
                count = row[1 + j]
                totals = self._reference.setdefault((check.name, stream), [0.0, 0.0])
                totals[0] += count
                totals[1] += exposure
                self.baseline_drift.observe_rate(check, stream, end, count, exposure)
                for status in self.watching(check, stream):
                    status.detector.update_reference(count, exposure)
        for (version, stream), row in rows.items():
            if version == self.baseline:
                continue
            exposure = row[0]
            for j, check in enumerate(checks):
                status = self.status(check, version, stream)
                count = row[1 + j]
                det = status.detector
                det.update((count, exposure))
                if status.recovery is not None and _fired_at_horizon(det):
                    status.recovery.add(count, exposure)
                self.judge(status, end, source)

    def new_detector(self, check: Check, stream: Stream) -> RateDetector:
        tol = check.tolerance
        det: RateDetector
        if check.metric is Metric.FALSE_NEGATIVE_RATE:
            det = EqualAgeRateDetector(
                self.label_ages.ages,
                arl0=self.detector_arl0,
                max_increase=tol.max_increase,
                max_decrease=tol.max_decrease,
                max_relative_change=tol.max_relative_change,
                baseline_confidence=self.policy.false_alarm.baseline_confidence,
            )
            for k in range(len(self.label_ages.ages)):
                ref = self.label_ages.reference.get((check.name, stream, k))
                if ref is not None:
                    det.update_reference_at(k, ref[0], ref[1])
        else:
            family: Family = "poisson" if check.metric is Metric.ACTION_RATE else "bernoulli"
            det = RateShiftDetector(
                family,
                arl0=self.detector_arl0,
                max_increase=tol.max_increase,
                max_decrease=tol.max_decrease,
                max_relative_change=tol.max_relative_change,
                baseline_confidence=self.policy.false_alarm.baseline_confidence,
            )
        count, exposure = self._reference.get((check.name, stream), (0.0, 0.0))
        det.update_reference(count, exposure)
        return det

    def _restore_detector(self, check: Check, snapshot: dict[str, Any]) -> RateDetector:
        if check.metric is not Metric.FALSE_NEGATIVE_RATE:
            return RateShiftDetector.from_state(snapshot)
        if snapshot.get("type") == RateShiftDetector.__name__:
            # A checkpoint of 0.2.0: its horizon test goes on, the ages start afresh.
            horizon = RateShiftDetector.from_state(snapshot)
            tol = check.tolerance
            return EqualAgeRateDetector.around(
                horizon,
                self.label_ages.ages,
                arl0=self.detector_arl0,
                max_increase=tol.max_increase,
                max_decrease=tol.max_decrease,
                max_relative_change=tol.max_relative_change,
            )
        return EqualAgeRateDetector.from_state(snapshot)

    def recovery(self, status: CheckStatus[RateDetector, RateRecovery]) -> RateRecovery:
        return RateRecovery(_tested(status.detector))

    def _restore_recovery(self, detector: RateDetector, state: dict[str, Any]) -> RateRecovery:
        return RateRecovery.from_state(_tested(detector), state)

    def _buckets_state(self) -> dict[str, Any]:
        return {
            "buckets": self.buckets.state(),
            "fn_buckets": self.fn_buckets.state(),
            "label_ages": self.label_ages.state(),
            "reference": [
                [check, *encode_stream(stream), *totals]
                for (check, stream), totals in self._reference.items()
            ],
        }

    def _restore_buckets(self, state: dict[str, Any]) -> None:
        self.buckets.restore(state["buckets"])
        self.fn_buckets.restore(state["fn_buckets"])
        self.label_ages.restore(state.get("label_ages"))
        self._reference = {
            (str(item[0]), decode_stream(item[1:-2])): [float(item[-2]), float(item[-1])]
            for item in state["reference"]
        }


def _tested(det: RateDetector) -> RateShiftDetector:
    """The rate test whose boundaries end a breach: for label ages, the one that fired."""
    return det.fired_detector if isinstance(det, EqualAgeRateDetector) else det


def _fired_at_horizon(det: RateDetector) -> bool:
    """Whether horizon data go to the recovery test (not when an age's test fired)."""
    return not isinstance(det, EqualAgeRateDetector) or det.fired_index == len(det.ages)
