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


def _matches(action: ActionEvent, where: dict[str, str | bool]) -> bool:
    return all(getattr(action, k, None) == v for k, v in where.items())


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
    sequence: list[tuple[InferenceEvent | ActionEvent, Message]] = field(default_factory=list)
    base_inferences: int = 0
    base_decisions: Counter[str] = field(default_factory=Counter)
    base_actions: list[ActionEvent] = field(default_factory=list)


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
        self._reference: dict[Stream, RateShiftDetector] = {}
        self._pending: dict[tuple[str, Stream], _Pending] = {}
        self._touched: set[tuple[str, str, Stream]] = set()
        self._by_check_stream: dict[tuple[str, Stream], list[CheckStatus]] = {}
        self._reference_totals: dict[tuple[str, Stream], tuple[int, int]] = {}

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
                pending.sequence.append((event, message))
        negative = event.decision in self.policy.negative_decisions
        return Joined(event.model, event.version, streams, negative, event.time.timestamp())

    def add_action(self, event: ActionEvent, joined: Joined | None, message: Message) -> bool:
        """Buffer an action; returns False when no watched version produced it."""
        role = self.role(event.version)
        if role is None:
            return False
        same = joined is not None and joined.model == event.model and joined.version == event.version
        streams: tuple[Stream, ...] = joined.streams if same and joined is not None else ((),)
        for stream in streams:
            pending = self._pending_for(event.version, stream)
            if role == "baseline":
                pending.base_actions.append(event)
            else:
                pending.sequence.append((event, message))
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
                if check.metric not in EVALUATED:
                    continue
                count = self._base_count(check, pending)
                key = (check.name, stream)
                c0, e0 = self._reference_totals.get(key, (0, 0))
                self._reference_totals[key] = (c0 + count, e0 + pending.base_inferences)
                for status in self._by_check_stream.get(key, ()):
                    if status.detector is not None:
                        status.detector.update_reference(count, pending.base_inferences)
        alerts: list[AlertRecord] = []
        for (version, stream), pending in pending_items:
            if version == baseline:
                continue
            for check in self.policy.checks:
                status = self._status(check, version, stream)
                self._touched.add((check.name, version, stream))
                if status.detector is None:
                    continue
                alert = self._feed(status, status.detector, pending)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    @staticmethod
    def _base_count(check: Check, pending: _Pending) -> int:
        if check.metric is Metric.DECISION_RATE:
            return pending.base_decisions.get(str(check.where.get("decision")), 0)
        return sum(1 for a in pending.base_actions if _matches(a, check.where))

    def _feed(
        self, status: CheckStatus, det: RateShiftDetector, pending: _Pending
    ) -> AlertRecord | None:
        check = status.check
        refs: list[tuple[InferenceEvent | ActionEvent, Message]]
        if check.metric is Metric.DECISION_RATE:
            wanted = check.where.get("decision")
            refs = list(pending.inferences)
            counts = np.fromiter((e.decision == wanted for e, _ in refs), dtype=np.float64, count=len(refs))
            exposures = None
        else:
            refs = [
                (e, m) for e, m in pending.sequence
                if isinstance(e, InferenceEvent) or _matches(e, check.where)
            ]
            counts = np.fromiter((isinstance(e, ActionEvent) for e, _ in refs), dtype=np.float64, count=len(refs))
            exposures = 1.0 - counts
        if not refs:
            return None
        before = det.observations
        det.update_many(counts, exposures)
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
