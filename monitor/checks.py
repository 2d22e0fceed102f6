"""The checks of one model: detectors per (check, candidate version, stream), fed once per batch.

Events are buffered per stream as they are routed, then each detector is
updated once at the end of the batch with vectorised arithmetic. A detector
that newly crosses its threshold yields one :class:`~monitor.alerts.AlertRecord`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from detectors import RateShiftDetector, detector_arl0, lorden_threshold
from detectors.rate import DEFAULT_SHIFTS
from monitor.action_windows import ActionWindows
from monitor.alerts import AlertRecord, alert_id
from monitor.events import ActionEvent, InferenceEvent, OutcomeEvent
from monitor.messages import Message
from monitor.policy import Check, Metric, ModelPolicy
from monitor.router import Joined, SegmentFolder, Stream

__all__ = ["CheckStatus", "ModelMonitor", "segment_label"]

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


@dataclass(slots=True)
class _Pending:
    """One stream's events of the current batch."""

    inferences: list[tuple[InferenceEvent, Message]] = field(default_factory=list)
    base_inferences: int = 0
    base_decisions: Counter[str] = field(default_factory=Counter)


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
        self._action_checks = [c for c in policy.checks if c.metric is Metric.ACTION_RATE]
        self.actions = ActionWindows(self._action_checks, policy.action_window_seconds)
        # The newest inference (by event time): its processing is what releases buckets.
        self._watermark = float("-inf")
        self._watermark_event: tuple[datetime, Message] | None = None
        self._pending: dict[tuple[str, Stream], _Pending] = {}
        self._touched: set[tuple[str, str, Stream]] = set()
        self._by_check_stream: dict[tuple[str, Stream], list[CheckStatus]] = {}
        self._reference_totals: dict[tuple[str, Stream], tuple[float, float]] = {}

    # -- routing ---------------------------------------------------------------------
    def role(self, version: str) -> str | None:
        """``"baseline"``, ``"candidate"`` or None for a version nobody watches."""
        if version == self.policy.baseline:
            return "baseline"
        return "candidate" if self.policy.watches(version) else None

    def _pending_for(self, version: str, stream: Stream) -> _Pending:
        key = (version, stream)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
        return pending

    def add_inference(self, event: InferenceEvent, message: Message) -> Joined | None:
        """Buffer an inference; returns what later events need to join to it, or None."""
        role = self.role(event.version)
        if role is None:
            return None
        streams = self.folder.streams(event.segments)
        for stream in streams:
            pending = self._pending_for(event.version, stream)
            if role == "baseline":
                pending.base_inferences += 1
                if event.decision is not None:
                    pending.base_decisions[event.decision] += 1
            else:
                pending.inferences.append((event, message))
        ts = event.time.timestamp()
        if self._action_checks:
            self.actions.add_inference(event.version, streams, ts)
        if ts > self._watermark:
            self._watermark = ts
            self._watermark_event = (event.time, message)
        negative = event.decision in self.policy.negative_decisions
        return Joined(event.model, event.version, streams, negative, ts)

    def add_action(self, event: ActionEvent, joined: Joined | None, message: Message) -> bool:
        """Count an action for its inference; returns False when no watched version produced it.

        Without a join (inference unseen or expired) the action counts in the
        overall stream only, at its own time.
        """
        if self.role(event.version) is None:
            return False
        if not self._action_checks:
            return True
        if joined is not None and joined.model == event.model and joined.version == event.version:
            self.actions.add_action(event.version, joined.streams, joined.time, event)
        else:
            self.actions.add_action(event.version, ((),), event.time.timestamp(), event)
        return True

    def add_outcome(self, event: OutcomeEvent, joined: Joined, message: Message) -> bool:
        """Accept an outcome joined to its inference (used by false_negative_rate)."""
        return self.role(joined.version) is not None

    # -- evaluation ------------------------------------------------------------------
    def _new_detector(self, check: Check) -> RateShiftDetector:
        tol = check.tolerance
        family = "bernoulli" if check.metric is Metric.DECISION_RATE else "poisson"
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
                count, exposure = self._reference_totals.get((check.name, stream), (0, 0))
                det.update_reference(count, exposure)
            status = self.statuses[key] = CheckStatus(check, version, stream, det)
            self._by_check_stream.setdefault((check.name, stream), []).append(status)
        return status

    def end_batch(self) -> list[AlertRecord]:
        """Update every detector with the batch's events; return newly fired alerts."""
        pending_items = list(self._pending.items())
        self._pending.clear()
        baseline = self.policy.baseline
        # The baseline first, so that a candidate is judged against every baseline
        # event read so far, including this batch's.
        for (version, stream), pending in pending_items:
            if version != baseline:
                continue
            for check in self.policy.checks:
                if check.metric is not Metric.DECISION_RATE:
                    continue
                count = pending.base_decisions.get(str(check.where.get("decision")), 0)
                key = (check.name, stream)
                c0, e0 = self._reference_totals.get(key, (0, 0))
                self._reference_totals[key] = (c0 + count, e0 + pending.base_inferences)
                for status in self._by_check_stream.get(key, ()):
                    if status.detector is not None:
                        status.detector.update_reference(count, pending.base_inferences)
        released = self.actions.release(self._watermark) if self._action_checks else {}
        for (version, stream), (exposures, counts) in released.items():
            if version != baseline:
                continue
            for j, check in enumerate(self._action_checks):
                key = (check.name, stream)
                count, exposure = float(counts[:, j].sum()), float(exposures.sum())
                c0, e0 = self._reference_totals.get(key, (0, 0))
                self._reference_totals[key] = (c0 + count, e0 + exposure)
                for status in self._by_check_stream.get(key, ()):
                    if status.detector is not None:
                        status.detector.update_reference(count, exposure)
        alerts: list[AlertRecord] = []
        for (version, stream), pending in pending_items:
            if version == baseline:
                continue
            for check in self.policy.checks:
                status = self._status(check, version, stream)
                self._touched.add((check.name, version, stream))
                if status.detector is not None and check.metric is Metric.DECISION_RATE:
                    alert = self._feed_decisions(status, status.detector, pending)
                    if alert is not None:
                        alerts.append(alert)
        for (version, stream), (exposures, counts) in released.items():
            if version == baseline:
                continue
            for j, check in enumerate(self._action_checks):
                status = self._status(check, version, stream)
                self._touched.add((check.name, version, stream))
                det = status.detector
                if det is None:
                    continue
                det.update_many(counts[:, j], exposures)
                if det.drift_detected and not status.fired and self._watermark_event is not None:
                    status.fired = True
                    alerts.append(self._alert(status, det, *self._watermark_event))
        return alerts

    def _feed_decisions(
        self, status: CheckStatus, det: RateShiftDetector, pending: _Pending
    ) -> AlertRecord | None:
        refs = pending.inferences
        if not refs:
            return None
        wanted = status.check.where.get("decision")
        counts = np.fromiter((e.decision == wanted for e, _ in refs), dtype=np.float64,
                             count=len(refs))
        before = det.observations
        det.update_many(counts)
        if not det.drift_detected or status.fired:
            return None
        status.fired = True
        event, message = refs[det.alarm_index - before - 1]
        return self._alert(status, det, event.time, message)

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
                    "candidate": det.observations,
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
