"""The label-free proxy check ``expected_false_negative_rate``.

Confidence-based performance estimation (NannyML, "Confidence-based
Performance Estimation"): the baseline's scores are calibrated on the
baseline's own labels, and the calibrated probabilities of the candidate's
negative decisions say how many of them *will* be labelled positive, before
any label comes.

- *Calibration.* The baseline's negative decisions that have a score are
  counted per score bin (:func:`detectors.calibrated.score_bins`) in buckets
  released after ``label_horizon_seconds``, with the positive labels joined
  to them: only decisions whose labels are final calibrate. Negative decisions
  only, because the proxy estimates ``P(positive | score, negative decision)``
  and a positive decision's labels come another way (a blocked fraud is never
  charged back). Once :data:`MIN_CALIBRATION_POSITIVES` positive labels are
  in, the isotonic fit ``m`` (:class:`detectors.calibrated.ScoreCalibration`)
  is frozen: the check then compares the mean of one fixed function of the
  score, which the sequential test's guarantee needs.
- *Test.* Every version's negative decisions with a score are counted per
  score bin in one-second buckets. For a released bucket of histogram ``h``
  the pair ``(h . m, sum(h))`` — expected false negatives over negative
  decisions — goes to a Bernoulli :class:`~detectors.RateShiftDetector`: the
  baseline's as its reference (the baseline's histogram since the start, so a
  detector created after the freeze is primed with all of it), the
  candidate's as its observations.

Feeding probabilities ``m(s)`` in [0, 1] instead of 0/1 outcomes keeps the
false-alarm promise: for any ``x`` in [0, 1], ``exp(a x) <= 1 - x + x e^a``
(a convex function lies under its chord), so an observation of mean ``p``
has ``E[exp(a x - b)]`` at most that of a Bernoulli(``p``) outcome
(the convexity step in the proof of Theorem 1 of W. Hoeffding,
"Probability inequalities for sums of bounded random variables", JASA 58,
1963). The CUSUM's likelihood ratio, a martingale for Bernoulli outcomes
at the boundary, is then a supermartingale, and Lorden's bound
``ARL0 >= exp(h)`` still holds; the expected counts only have less variance
than the outcomes they stand for.

The proxy assumes no concept shift (``P(positive | score)`` the same for the
candidate's traffic as for the baseline's calibration) and that the
candidate's score means what the baseline's does. A model optimisation can
break the second: an alert of this check says so in its evidence, and it
never replaces ``false_negative_rate``.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from detectors import RateRecovery, RateShiftDetector
from detectors.base import Evidence
from detectors.calibrated import N_SCORE_BINS, ScoreCalibration, score_bin
from monitor.buckets import Buckets, Row
from monitor.episodes import CheckStatus, Episodes
from monitor.messages import SourcePosition
from monitor.policy import Check, ModelPolicy
from monitor.runners.base import CheckRunner, Locate
from monitor.streams import Stream, decode_stream, encode_stream
from monitor.work import OVERALL, ModelWork, baseline_flags, spread

__all__ = ["MIN_CALIBRATION_POSITIVES", "PROXY_NOTE", "ExpectedFNRunner"]

#: Positive labels the baseline's calibration needs before the check can run.
MIN_CALIBRATION_POSITIVES: Final = 50
#: Calibration buckets per label horizon.
_CAL_BUCKETS = 64
#: What an alert of this check says about itself.
PROXY_NOTE: Final = (
    "label-free proxy: the candidate's negative decisions scored with the baseline's "
    "calibration; assumes no concept shift and that the candidate's scores mean what the "
    "baseline's do; confirm with false_negative_rate once labels arrive"
)


class ExpectedFNRunner(CheckRunner[RateShiftDetector, RateRecovery]):
    """Runs the ``expected_false_negative_rate`` checks of one model (see the module docstring)."""

    detector_type = RateShiftDetector

    def __init__(
        self,
        policy: ModelPolicy,
        checks: list[Check],
        detector_arl0: float,
        episodes: Episodes,
    ) -> None:
        super().__init__(policy, checks, detector_arl0, episodes)
        horizon = policy.label_horizon_seconds
        # Columns: decisions per score bin, then positive labels per score bin.
        self.labelled = Buckets(
            2 * N_SCORE_BINS, horizon, bucket_seconds=max(1.0, horizon / _CAL_BUCKETS)
        )
        self.buckets = Buckets(N_SCORE_BINS, 0.0)
        self.calibration = ScoreCalibration(MIN_CALIBRATION_POSITIVES)
        #: The frozen ``P(positive | score bin)``, None until the calibration is ready.
        self.map: NDArray[np.float64] | None = None
        #: The baseline's negative decisions per score bin since the start, per stream.
        self._hist: dict[Stream, NDArray[np.float64]] = {}
        self._positive = frozenset(policy.positive_labels)

    def feed(self, work: ModelWork) -> None:
        table, baseline = work.table, self.baseline
        inferences = work.inferences
        if len(inferences):
            chosen = [
                i
                for i, (negative, score) in enumerate(
                    zip(inferences.negative, inferences.score, strict=True)
                )
                if negative and score is not None
            ]
            if chosen:
                index = np.asarray(chosen, dtype=np.int64)
                bins = np.asarray(
                    [score_bin(inferences.score[i]) for i in chosen],  # type: ignore[arg-type]
                    dtype=np.int64,
                )
                at, group = inferences.times()[index], inferences.groups()[index]
                each = np.arange(len(index), dtype=np.int64)
                late = self.buckets.add_columns(table, at, group, None, (each, bins))
                base = baseline_flags(table, group)
                if base.any():
                    overall = np.full(int(base.sum()), table.code(baseline, OVERALL))
                    late[base] |= self.labelled.add_columns(
                        table,
                        at[base],
                        overall,
                        np.zeros(len(overall)),
                        (np.arange(len(overall), dtype=np.int64), bins[base]),
                    )
                inferences.mark_late(spread(late, index, len(inferences)))
        outcomes = work.outcomes
        if len(outcomes):
            groups, positive = table.groups, self._positive
            chosen = [
                i
                for i, (code, negative, score, label) in enumerate(
                    zip(
                        outcomes.group,
                        outcomes.negative,
                        outcomes.score,
                        outcomes.label,
                        strict=True,
                    )
                )
                if groups[code].baseline and negative and score is not None and label in positive
            ]
            if chosen:
                index = np.asarray(chosen, dtype=np.int64)
                bins = np.asarray(
                    [N_SCORE_BINS + score_bin(outcomes.score[i]) for i in chosen],  # type: ignore[arg-type]
                    dtype=np.int64,
                )
                overall = np.full(len(index), table.code(baseline, OVERALL))
                late = self.labelled.add_columns(
                    table,
                    outcomes.times()[index],
                    overall,
                    np.zeros(len(index)),
                    (np.arange(len(index), dtype=np.int64), bins),
                )
                outcomes.mark_late(spread(late, index, len(outcomes)))

    def release(self, watermark: float, locate: Locate) -> None:
        for _, rows in self.labelled.release(watermark):
            for row in rows.values():
                counts = np.asarray(row[1:], dtype=np.float64)
                self.calibration.add_counts(counts[:N_SCORE_BINS], counts[N_SCORE_BINS:])
            if self.map is None and self.calibration.ready:
                self._freeze()
        for index, rows in self.buckets.release(watermark):
            final = self.buckets.final_at(index)
            self._judge_bucket(rows, final, locate(final))

    def _freeze(self) -> None:
        """Fix the calibration map and prime every detector with the baseline so far."""
        self.map = self.calibration.fit()
        for status in self.statuses.values():
            hist = self._hist.get(status.stream)
            if hist is not None:
                status.detector.update_reference(float(hist @ self.map), float(hist.sum()))

    @staticmethod
    def _expected(row: Row, m: NDArray[np.float64]) -> tuple[float, float]:
        """(expected false negatives, negative decisions) of one bucket under the map ``m``."""
        hist = np.asarray(row[1:], dtype=np.float64)
        return float(hist @ m), float(hist.sum())

    def _judge_bucket(
        self, rows: dict[tuple[str, Stream], Row], end: float, source: SourcePosition | None
    ) -> None:
        for (version, stream), row in rows.items():
            if version != self.baseline:
                continue
            hist = self._hist.setdefault(stream, np.zeros(N_SCORE_BINS))
            hist += np.asarray(row[1:], dtype=np.float64)
            if self.map is None:
                continue
            count, exposure = self._expected(row, self.map)
            for check in self.checks:
                for status in self.watching(check, stream):
                    status.detector.update_reference(count, exposure)
        for (version, stream), row in rows.items():
            if version == self.baseline:
                continue
            for check in self.checks:
                status = self.status(check, version, stream)
                if self.map is not None:
                    count, exposure = self._expected(row, self.map)
                    status.detector.update((count, exposure))
                    if status.recovery is not None:
                        status.recovery.add(count, exposure)
                self.judge(status, end, source)

    def new_detector(self, check: Check, stream: Stream) -> RateShiftDetector:
        tol = check.tolerance
        det = RateShiftDetector(
            "bernoulli",
            arl0=self.detector_arl0,
            max_increase=tol.max_increase,
            max_decrease=tol.max_decrease,
            max_relative_change=tol.max_relative_change,
            baseline_confidence=self.policy.false_alarm.baseline_confidence,
        )
        hist = self._hist.get(stream)
        if self.map is not None and hist is not None:
            det.update_reference(float(hist @ self.map), float(hist.sum()))
        return det

    def evidence(self, status: CheckStatus[RateShiftDetector, RateRecovery]) -> Evidence:
        base = status.detector.evidence()
        details = {
            **base.details,
            "proxy": PROXY_NOTE,
            "calibration_positives": self.calibration.positives,
            "calibration_decisions": self.calibration.decisions,
        }
        return Evidence(
            base.observed, base.reference, base.baseline_seen, base.candidate_seen, details
        )

    def recovery(self, status: CheckStatus[RateShiftDetector, RateRecovery]) -> RateRecovery:
        return RateRecovery(status.detector)

    def _restore_recovery(self, detector: RateShiftDetector, state: dict[str, Any]) -> RateRecovery:
        return RateRecovery.from_state(detector, state)

    def _buckets_state(self) -> dict[str, Any]:
        streams = list(self._hist)
        return {
            "buckets": self.buckets.state(),
            "labelled": self.labelled.state(),
            "calibration": self.calibration.state(),
            "map": None if self.map is None else self.map.copy(),
            "hist_streams": [encode_stream(s) for s in streams],
            "hist": np.asarray([self._hist[s] for s in streams], dtype=np.float64).reshape(
                len(streams), N_SCORE_BINS
            ),
        }

    def _restore_buckets(self, state: dict[str, Any]) -> None:
        self.buckets.restore(state["buckets"])
        self.labelled.restore(state["labelled"])
        self.calibration = ScoreCalibration.from_state(state["calibration"])
        frozen = state["map"]
        self.map = None if frozen is None else np.asarray(frozen, dtype=np.float64)
        hist = np.asarray(state["hist"], dtype=np.float64).reshape(-1, N_SCORE_BINS)
        self._hist = {
            decode_stream(code): row.copy()
            for code, row in zip(state["hist_streams"], hist, strict=True)
        }
