"""The checks of one model: detectors per (check, candidate version, stream).

Counts go into per-second buckets (:mod:`monitor.rate_buckets`); when the
model's event time passes a bucket's end plus the action window, the bucket
is released: first into the baseline's reference, then into each candidate
detector, with vectorised arithmetic. A detector that newly crosses its
threshold yields one :class:`~monitor.alerts.AlertRecord`, stamped with the
event whose processing released the bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from detectors import RateShiftDetector, detector_arl0, lorden_threshold
from detectors.rate import DEFAULT_SHIFTS, Family
from monitor.alerts import AlertRecord, alert_id
from monitor.events import ActionEvent, InferenceEvent, OutcomeEvent
from monitor.messages import Message
from monitor.policy import Check, Metric, ModelPolicy
from monitor.rate_buckets import RateBuckets, Released
from monitor.router import Joined, SegmentFolder, Stream

__all__ = ["EVALUATED", "CheckStatus", "Clock", "ModelMonitor", "segment_label"]

#: Metrics evaluated by this version of the service; others report ``inconclusive``.
EVALUATED = frozenset({Metric.DECISION_RATE, Metric.ACTION_RATE})

#: Source of ``fired_at``: a callable, ``"event"`` (the crossing event's time, for a
#: deterministic replay) or None (wall-clock UTC).
Clock = Callable[[], datetime] | Literal["event"] | None


def segment_label(stream: Stream) -> str:
    """The metric label of a stream: ``""`` overall, else ``key=value``."""
    return f"{stream[0]}={stream[1]}" if stream else ""


@dataclass(slots=True)
class CheckStatus:
    """The state of one check on one stream of one candidate version."""

    check: Check
    version: str
    stream: Stream
    detector: RateShiftDetector | None
    fired: bool = False

    @property
    def state(self) -> str:
        det = self.detector
        if det is None or not det.conclusive:
            return "inconclusive"
        return "breach" if det.drift_detected else "ok"

    @property
    def reason(self) -> str:
        det = self.detector
        if det is None:
            return f"metric {self.check.metric.value} is not evaluated by this version"
        if det.drift_detected:
            return "candidate outside tolerance"
        if not det.ready:
            return "baseline has too little data"
        if not det.conclusive:
            return "candidate has too little data"
        return "within tolerance"


class ModelMonitor:
    """Runs every check of one :class:`~monitor.policy.ModelPolicy`."""

    def __init__(self, policy: ModelPolicy, *, segment_cap: int = 20, clock: Clock = None):
        self.policy = policy
        self.folder = SegmentFolder(policy.segments, cap=segment_cap)
        self._clock = clock
        streams_cap = 1 + len(policy.segments) * (segment_cap + 1)
        versions = len(policy.candidates) if policy.candidates else 1
        self.n_detectors = len(policy.checks) * streams_cap * versions
        self.detector_arl0 = detector_arl0(policy.false_alarm.arl0, self.n_detectors)
        self.threshold = lorden_threshold(self.detector_arl0, 2 * len(DEFAULT_SHIFTS))
        self.statuses: dict[tuple[str, str, Stream], CheckStatus] = {}
        self._rate_checks = [c for c in policy.checks if c.metric in EVALUATED]
        window = (
            policy.action_window_seconds
            if any(c.metric is Metric.ACTION_RATE for c in self._rate_checks)
            else 0.0
        )
        self.buckets = RateBuckets(self._rate_checks, window)
        self._watermark = float("-inf")
        self._by_check_stream: dict[tuple[str, Stream], list[CheckStatus]] = {}
        self._reference_totals: dict[tuple[str, Stream], tuple[float, float]] = {}
        self._touched: set[tuple[str, str, Stream]] = set()
        self._alerts: list[AlertRecord] = []

    # -- routing ---------------------------------------------------------------------
    def role(self, version: str) -> str | None:
        """``"baseline"``, ``"candidate"`` or None for a version nobody watches."""
        if version == self.policy.baseline:
            return "baseline"
        return "candidate" if self.policy.watches(version) else None

    def add_inference(self, event: InferenceEvent, message: Message) -> Joined | None:
        """Count an inference; returns what later events need to join to it, or None."""
        if self.role(event.version) is None:
            return None
        streams = self.folder.streams(event.segments)
        ts = event.time.timestamp()
        if self._rate_checks:
            self.buckets.add_inference(event.version, streams, ts, event.decision)
            if ts > self._watermark:
                self._watermark = ts
                if self.buckets.due(ts):
                    self._evaluate(self.buckets.release(ts), event.time, message)
        negative = event.decision in self.policy.negative_decisions
        return Joined(event.model, event.version, streams, negative, ts)

    def add_action(self, event: ActionEvent, joined: Joined | None, message: Message) -> bool:
        """Count an action for its inference; returns False when no watched version produced it.

        Without a join (inference unseen or expired) the action counts in the
        overall stream only, at its own time.
        """
        if self.role(event.version) is None:
            return False
        if joined is not None and joined.model == event.model and joined.version == event.version:
            self.buckets.add_action(event.version, joined.streams, joined.time, event)
        else:
            self.buckets.add_action(event.version, ((),), event.time.timestamp(), event)
        return True

    def add_outcome(self, event: OutcomeEvent, joined: Joined, message: Message) -> bool:
        """Accept an outcome joined to its inference (for false_negative_rate)."""
        return self.role(joined.version) is not None

    # -- evaluation ------------------------------------------------------------------
    def _new_detector(self, check: Check) -> RateShiftDetector:
        tol = check.tolerance
        family: Family = "bernoulli" if check.metric is Metric.DECISION_RATE else "poisson"
        return RateShiftDetector(
            family,
            self.threshold,
            max_increase=tol.max_increase,
            max_decrease=tol.max_decrease,
            max_relative_change=tol.max_relative_change,
        )

    def _status(self, check: Check, version: str, stream: Stream) -> CheckStatus:
        key = (check.name, version, stream)
        status = self.statuses.get(key)
        if status is None:
            det = None
            if check.metric in EVALUATED:
                det = self._new_detector(check)
                count, exposure = self._reference_totals.get((check.name, stream), (0.0, 0.0))
                det.update_reference(count, exposure)
            status = self.statuses[key] = CheckStatus(check, version, stream, det)
            self._by_check_stream.setdefault((check.name, stream), []).append(status)
        return status

    def _evaluate(
        self, released: dict[tuple[str, Stream], Released], event_time: datetime, message: Message
    ) -> None:
        baseline = self.policy.baseline
        # The baseline first, so that the candidate's buckets are judged against
        # every baseline bucket of the same seconds.
        for (version, stream), (exposures, counts) in released.items():
            if version != baseline:
                continue
            exposure = float(exposures.sum())
            for j, check in enumerate(self._rate_checks):
                key = (check.name, stream)
                count = float(counts[:, j].sum())
                c0, e0 = self._reference_totals.get(key, (0.0, 0.0))
                self._reference_totals[key] = (c0 + count, e0 + exposure)
                for status in self._by_check_stream.get(key, ()):
                    if status.detector is not None:
                        status.detector.update_reference(count, exposure)
        for (version, stream), (exposures, counts) in released.items():
            if version == baseline:
                continue
            for j, check in enumerate(self._rate_checks):
                status = self._status(check, version, stream)
                self._touched.add((check.name, version, stream))
                det = status.detector
                if det is None:
                    continue
                det.update_many(counts[:, j], exposures)
                if det.drift_detected and not status.fired:
                    status.fired = True
                    self._alerts.append(self._alert(status, det, event_time, message))

    def end_batch(self) -> list[AlertRecord]:
        """Alerts raised while the batch was processed; also registers unevaluated checks."""
        for version, stream in {(s.version, s.stream) for s in self.statuses.values()}:
            for check in self.policy.checks:
                if (
                    check.metric not in EVALUATED
                    and (check.name, version, stream) not in self.statuses
                ):
                    self._status(check, version, stream)
                    self._touched.add((check.name, version, stream))
        alerts, self._alerts = self._alerts, []
        return alerts

    def _alert(
        self, status: CheckStatus, det: RateShiftDetector, event_time: datetime, message: Message
    ) -> AlertRecord:
        check, policy = status.check, self.policy
        segment = dict([status.stream]) if status.stream else {}
        if self._clock == "event":
            now = event_time
        elif self._clock is None:
            now = datetime.now(UTC)
        else:
            now = self._clock()
        return AlertRecord(
            alert_id=alert_id(policy.name, status.version, check.name, segment),
            status="firing",
            check=check.name,
            metric=check.metric.value,
            model=policy.name,
            version=status.version,
            baseline=policy.baseline,
            segment=segment,
            action=check.action,
            severity=check.resolved_severity,
            observed=det.observed_rate,
            reference=det.reference_rate,
            tolerance=check.tolerance.model_dump(exclude_none=True),
            event_time=event_time.isoformat(),
            fired_at=now.isoformat(),
            owner=policy.owner,
            controls=list(policy.controls),
            evidence={
                "detector": type(det).__name__,
                "statistic": det.statistic,
                "threshold": det.threshold,
                "detector_arl0": self.detector_arl0,
                "events_seen": {
                    "baseline": det.reference_exposure,
                    "candidate": det.exposure,
                },
                "source": {
                    "topic": message.topic,
                    "partition": message.partition,
                    "offset": message.offset,
                },
            },
        )

    def drain_touched(self) -> list[CheckStatus]:
        """Statuses changed since the last call (for once-per-batch metric updates)."""
        out = [self.statuses[k] for k in self._touched if k in self.statuses]
        self._touched.clear()
        return out
