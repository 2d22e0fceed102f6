"""The checks of one model: detectors per (check, candidate version, stream).

Counts go into per-second buckets (:mod:`monitor.rate_buckets`); when the
model's event time passes a bucket's end plus the action window, the bucket
is released: first into the baseline's reference, then into each candidate
detector, with vectorised arithmetic. A detector that newly crosses its
threshold yields one *firing* :class:`~monitor.alerts.AlertRecord`, stamped
with the event whose processing released the bucket. From then on the
candidate's data also go to a recovery test (:mod:`monitor.recovery`); when it
shows the check back inside its tolerance, a *resolved* record with the same
``alert_id`` follows and a fresh detector (the next episode, with its own id)
takes over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from detectors import (
    DistributionShiftDetector,
    NovelToolDetector,
    RateShiftDetector,
    detector_arl0,
)
from detectors.rate import Family
from monitor.alerts import RUNBOOK_URL, AlertRecord, alert_id
from monitor.binning import Binner, latency_bin, score_bin
from monitor.events import ActionEvent, InferenceEvent, OutcomeEvent
from monitor.messages import Message
from monitor.policy import Check, Metric, ModelPolicy
from monitor.rate_buckets import RateBuckets, Released
from monitor.recovery import DistributionRecovery, RateRecovery
from monitor.router import Joined, SegmentFolder, Stream

__all__ = ["CheckStatus", "Clock", "ModelMonitor", "segment_label"]

#: Metrics compared as binned distributions.
_DISTRIBUTIONS = (Metric.SCORE_DISTRIBUTION, Metric.LATENCY, Metric.TOOL_DISTRIBUTION)
#: Rate metrics counted in per-second buckets, released after the action window.
_SHORT = (Metric.DECISION_RATE, Metric.ACTION_RATE)
#: Candidate versions watched at once per model when the policy lists none.
MAX_CANDIDATES = 8
#: Labels per FN bucket width: the horizon is cut into this many buckets.
_FN_BUCKETS = 64

AnyDetector = RateShiftDetector | NovelToolDetector | DistributionShiftDetector

#: Source of ``fired_at``: a callable, ``"event"`` (the crossing event's time, for a
#: deterministic replay) or None (wall-clock UTC).
Clock = Callable[[], datetime] | Literal["event"] | None


def _matches(action: ActionEvent, where: dict[str, str | bool]) -> bool:
    return all(getattr(action, k, None) == v for k, v in where.items())


def segment_label(stream: Stream) -> str:
    """The metric label of a stream: ``""`` overall, else ``key=value``."""
    return f"{stream[0]}={stream[1]}" if stream else ""


@dataclass(slots=True)
class CheckStatus:
    """The state of one check on one stream of one candidate version."""

    check: Check
    version: str
    stream: Stream
    detector: AnyDetector
    #: The firing alert of the current episode (None: not firing).
    firing: AlertRecord | None = None
    #: Breaches so far that resolved: the episode number of the next alert.
    episode: int = 0
    recovery: RateRecovery | DistributionRecovery | None = None

    @property
    def observed_reference(self) -> tuple[float, float]:
        """The candidate's observed value and the baseline's reference value (nan if unknown)."""
        det = self.detector
        if isinstance(det, RateShiftDetector):
            return det.observed_rate, det.reference_rate
        if isinstance(det, DistributionShiftDetector):
            return det.observed_distance, 0.0
        return (1.0 if det.drift_detected else 0.0), 0.0  # novel_tool: seen or not

    @property
    def state(self) -> str:
        det = self.detector
        if self.firing is not None or det.drift_detected:
            return "breach"
        return "ok" if det.conclusive else "inconclusive"

    @property
    def reason(self) -> str:
        det = self.detector
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
        versions = len(policy.candidates) if policy.candidates else MAX_CANDIDATES
        self.n_detectors = len(policy.checks) * streams_cap * versions
        self.detector_arl0 = detector_arl0(policy.false_alarm.arl0, self.n_detectors)
        self.statuses: dict[tuple[str, str, Stream], CheckStatus] = {}
        checks = policy.checks
        self._short = [c for c in checks if c.metric in _SHORT]
        self._decision_cols = [
            (j, c.where.get("decision"))
            for j, c in enumerate(self._short)
            if c.metric is Metric.DECISION_RATE
        ]
        self._action_cols = [
            (j, c.where) for j, c in enumerate(self._short) if c.metric is Metric.ACTION_RATE
        ]
        self._fn = [c for c in checks if c.metric is Metric.FALSE_NEGATIVE_RATE]
        self._novel = [c for c in checks if c.metric is Metric.NOVEL_TOOL]
        window = policy.action_window_seconds if self._action_cols else 0.0
        self.buckets = RateBuckets(len(self._short), window)
        horizon = policy.label_horizon_seconds
        self.fn_buckets = RateBuckets(
            len(self._fn), horizon, bucket_seconds=max(1.0, horizon / _FN_BUCKETS)
        )
        self._positive = frozenset(policy.positive_labels)
        # One bucket set per distribution check, one column per bin. Scores and
        # latencies are known at inference time; tool calls follow within the action window.
        self._dist: list[tuple[Binner, RateBuckets]] = []
        for c in checks:
            if c.metric in _DISTRIBUTIONS:
                binner = Binner(c)
                tools = c.metric is Metric.TOOL_DISTRIBUTION
                window = policy.action_window_seconds if tools else 0.0
                self._dist.append((binner, RateBuckets(binner.n_bins, window)))
        self._binners = {binner.check.name: binner for binner, _ in self._dist}
        self._watermark = float("-inf")
        self._candidates: set[str] = set()
        # The baseline's tools per novel_tool check (bounded by the detector's max_tools),
        # copied into each candidate version's detector when it appears.
        self._novel_reference = {
            c.name: NovelToolDetector(c.min_baseline_calls or 1000) for c in self._novel
        }
        self._by_check_stream: dict[tuple[str, Stream], list[CheckStatus]] = {}
        self._reference_totals: dict[tuple[str, Stream], tuple[float, float]] = {}
        self._reference_hists: dict[tuple[str, Stream], NDArray[np.float64]] = {}
        self._touched: set[tuple[str, str, Stream]] = set()
        self._alerts: list[AlertRecord] = []

    def __getstate__(self) -> dict[str, object]:
        """For checkpoints (:mod:`monitor.state`): everything but the clock, set on restore."""
        state = self.__dict__.copy()
        state["_clock"] = None
        return state

    def set_clock(self, clock: Clock) -> None:
        self._clock = clock

    @property
    def candidates(self) -> set[str]:
        """Candidate versions seen so far, plus those the policy lists."""
        return self._candidates | set(self.policy.candidates or ())

    # -- routing ---------------------------------------------------------------------
    def role(self, version: str) -> str | None:
        """``"baseline"``, ``"candidate"`` or None for a version nobody watches."""
        if version == self.policy.baseline:
            return "baseline"
        if not self.policy.watches(version):
            return None
        if version not in self._candidates and len(self._candidates) >= MAX_CANDIDATES:
            # With `candidates` omitted every version is watched: cap them, so that a
            # flood of version strings cannot multiply detectors and metric labels.
            return None
        return "candidate"

    def add_inference(self, event: InferenceEvent, message: Message) -> Joined | None:
        """Count an inference; returns what later events need to join to it, or None."""
        role = self.role(event.version)
        if role is None:
            return None
        if role == "candidate" and event.version not in self._candidates:
            self._candidates.add(event.version)
            for check in self._novel:
                self._status(check, event.version, ())
        streams = self.folder.streams(event.segments)
        ts = event.time.timestamp()
        negative = event.decision in self.policy.negative_decisions
        if self._short:
            cols = [j for j, wanted in self._decision_cols if wanted == event.decision]
            self.buckets.add(event.version, streams, ts, 1.0, cols)
        if self._fn and negative:
            self.fn_buckets.add(event.version, streams, ts, 1.0)
        for binner, buckets in self._dist:
            metric = binner.check.metric
            if metric is Metric.SCORE_DISTRIBUTION and event.score is not None:
                buckets.add(
                    event.version, streams, ts, 1.0, (score_bin(event.score, binner.n_bins),)
                )
            elif metric is Metric.LATENCY and event.latency_ms is not None:
                buckets.add(event.version, streams, ts, 1.0, (latency_bin(event.latency_ms),))
        if ts > self._watermark:
            self._watermark = ts
            self._release(ts, event.time, message)
        return Joined(event.model, event.version, streams, negative, ts)

    def _release(self, ts: float, event_time: datetime, message: Message) -> None:
        for buckets, checks in ((self.buckets, self._short), (self.fn_buckets, self._fn)):
            if checks and buckets.due(ts):
                self._evaluate(checks, buckets.release(ts), event_time, message)
        for binner, buckets in self._dist:
            if buckets.due(ts):
                self._evaluate_distribution(binner.check, buckets.release(ts), event_time, message)

    def add_action(self, event: ActionEvent, joined: Joined | None, message: Message) -> bool:
        """Count an action for its inference; returns False when no watched version produced it.

        Without a join (inference unseen or expired) the action counts in the
        overall stream only, at its own time.
        """
        role = self.role(event.version)
        if role is None:
            return False
        if joined is not None and (joined.model, joined.version) == (event.model, event.version):
            streams, at = joined.streams, joined.time
        else:
            streams, at = ((),), event.time.timestamp()
        cols = [j for j, where in self._action_cols if _matches(event, where)]
        if cols:
            self.buckets.add(event.version, streams, at, 0.0, cols)
        if event.tool is not None:
            for binner, buckets in self._dist:
                if binner.tools is not None and _matches(event, binner.check.where):
                    buckets.add(event.version, streams, at, 1.0, (binner.tools(event.tool),))
            for check in self._novel:
                # Every baseline call is evidence of what it uses; ``where`` picks the
                # candidate calls to judge (e.g. privileged ones).
                if role == "baseline" or _matches(event, check.where):
                    self._novel_call(check, role, event, message)
        return True

    def add_outcome(self, event: OutcomeEvent, joined: Joined, message: Message) -> bool:
        """Count a positive label on a negative decision as a false negative of that inference."""
        if self.role(joined.version) is None:
            return False
        if self._fn and joined.negative and event.label in self._positive:
            self.fn_buckets.add(
                joined.version, joined.streams, joined.time, 0.0, range(len(self._fn))
            )
        return True

    # -- evaluation ------------------------------------------------------------------
    def _new_detector(self, check: Check, stream: Stream) -> AnyDetector:
        """A candidate detector, primed with what the baseline has shown so far."""
        if check.metric is Metric.NOVEL_TOOL:
            return NovelToolDetector.from_state(self._novel_reference[check.name].state())
        if check.metric in _DISTRIBUTIONS:
            binner = self._binners[check.name]
            det = DistributionShiftDetector(
                binner.distance,
                float(check.tolerance.max_distance or 1.0),
                binner.n_bins,
                self.detector_arl0,
            )
            hist = self._reference_hists.get((check.name, stream))
            if hist is not None:
                det.update_reference_counts(hist)
            return det
        tol = check.tolerance
        family: Family = "poisson" if check.metric is Metric.ACTION_RATE else "bernoulli"
        rate = RateShiftDetector(
            family,
            arl0=self.detector_arl0,
            max_increase=tol.max_increase,
            max_decrease=tol.max_decrease,
            max_relative_change=tol.max_relative_change,
        )
        rate.update_reference(*self._reference_totals.get((check.name, stream), (0.0, 0.0)))
        return rate

    def _status(self, check: Check, version: str, stream: Stream) -> CheckStatus:
        key = (check.name, version, stream)
        status = self.statuses.get(key)
        if status is None:
            det = self._new_detector(check, stream)
            status = self.statuses[key] = CheckStatus(check, version, stream, det)
            self._by_check_stream.setdefault((check.name, stream), []).append(status)
            self._touched.add(key)
        return status

    def _novel_call(self, check: Check, role: str, event: ActionEvent, message: Message) -> None:
        tool = str(event.tool)
        if role == "baseline":
            self._novel_reference[check.name].update_reference(tool)
            for status in self._by_check_stream.get((check.name, ()), ()):
                det = status.detector
                if isinstance(det, NovelToolDetector):
                    det.update_reference(tool)
                    self._after_update(status, det, event.time, message)
            return
        status = self._status(check, event.version, ())
        det = status.detector
        if isinstance(det, NovelToolDetector):
            det.update(tool)
            self._after_update(status, det, event.time, message)

    def _after_update(
        self,
        status: CheckStatus,
        det: AnyDetector,
        event_time: datetime,
        message: Message,
    ) -> None:
        self._touched.add((status.check.name, status.version, status.stream))
        if status.firing is None:
            if det.drift_detected:
                status.firing = self._alert(status, det, event_time, message)
                self._alerts.append(status.firing)
                if isinstance(det, RateShiftDetector):
                    status.recovery = RateRecovery()
                elif isinstance(det, DistributionShiftDetector):
                    status.recovery = DistributionRecovery(det.n_bins)
        elif status.recovery is not None and status.recovery.cleared(det):
            self._alerts.append(self._resolve(status, event_time))

    def _resolve(self, status: CheckStatus, event_time: datetime) -> AlertRecord:
        """The resolved record of the firing alert; a fresh detector starts the next episode."""
        firing = status.firing
        assert firing is not None  # only called while firing
        recovery = status.recovery
        assert recovery is not None  # resolved only by a recovery test
        observed, since_breach = recovery.summary(status.detector)
        evidence = {**firing.evidence, "since_breach": since_breach}
        resolved = firing.model_copy(
            update={
                "status": "resolved",
                "observed": observed,
                "resolved_at": self._now(event_time).isoformat(),
                "evidence": evidence,
            }
        )
        status.firing, status.recovery = None, None
        status.episode += 1
        status.detector = self._new_detector(status.check, status.stream)
        return resolved

    def _now(self, event_time: datetime) -> datetime:
        if self._clock == "event":
            return event_time
        if self._clock is None:
            return datetime.now(UTC)
        return self._clock()

    def _evaluate(
        self,
        checks: list[Check],
        released: dict[tuple[str, Stream], Released],
        event_time: datetime,
        message: Message,
    ) -> None:
        baseline = self.policy.baseline
        # The baseline first, so that the candidate's buckets are judged against
        # every baseline bucket of the same seconds.
        for (version, stream), (exposures, counts) in released.items():
            if version != baseline:
                continue
            exposure = float(exposures.sum())
            for j, check in enumerate(checks):
                key = (check.name, stream)
                count = float(counts[:, j].sum())
                c0, e0 = self._reference_totals.get(key, (0.0, 0.0))
                self._reference_totals[key] = (c0 + count, e0 + exposure)
                for status in self._by_check_stream.get(key, ()):
                    if isinstance(status.detector, RateShiftDetector):
                        status.detector.update_reference(count, exposure)
        for (version, stream), (exposures, counts) in released.items():
            if version == baseline:
                continue
            for j, check in enumerate(checks):
                status = self._status(check, version, stream)
                det = status.detector
                if isinstance(det, RateShiftDetector):
                    det.update_many(counts[:, j], exposures)
                    if isinstance(status.recovery, RateRecovery):
                        status.recovery.add(counts[:, j], exposures, det)
                    self._after_update(status, det, event_time, message)

    def _evaluate_distribution(
        self,
        check: Check,
        released: dict[tuple[str, Stream], Released],
        event_time: datetime,
        message: Message,
    ) -> None:
        baseline = self.policy.baseline
        for (version, stream), (_, counts) in released.items():
            if version != baseline:
                continue
            hist = counts.sum(axis=0)
            key = (check.name, stream)
            total = self._reference_hists.get(key)
            self._reference_hists[key] = hist if total is None else total + hist
            for status in self._by_check_stream.get(key, ()):
                if isinstance(status.detector, DistributionShiftDetector):
                    status.detector.update_reference_counts(hist)
        for (version, stream), (_, counts) in released.items():
            if version == baseline:
                continue
            status = self._status(check, version, stream)
            det = status.detector
            if isinstance(det, DistributionShiftDetector):
                hist = counts.sum(axis=0)
                det.update_counts(hist)
                if isinstance(status.recovery, DistributionRecovery):
                    status.recovery.add(hist, det)
                self._after_update(status, det, event_time, message)

    def end_batch(self) -> list[AlertRecord]:
        """Alerts raised while the batch was processed (each exactly once)."""
        alerts, self._alerts = self._alerts, []
        return alerts

    def _alert(
        self,
        status: CheckStatus,
        det: AnyDetector,
        event_time: datetime,
        message: Message,
    ) -> AlertRecord:
        check, policy = status.check, self.policy
        segment = dict([status.stream]) if status.stream else {}
        now = self._now(event_time)
        evidence: dict[str, object] = {
            "detector": type(det).__name__,
            "statistic": det.statistic,
            "threshold": det.threshold,
        }
        observed, reference = status.observed_reference
        if isinstance(det, DistributionShiftDetector):
            evidence["distance"] = det.distance
            evidence["events_seen"] = {
                "baseline": det.reference_exposure,
                "candidate": det.exposure,
            }
        elif isinstance(det, NovelToolDetector):
            evidence["tool"] = det.novel_tool
            evidence["baseline_rate_upper_95"] = det.upper_rate
            evidence["events_seen"] = {"baseline": det.statistic, "candidate": det.observations}
        else:
            evidence["detector_arl0"] = self.detector_arl0
            evidence["events_seen"] = {
                "baseline": det.reference_exposure,
                "candidate": det.exposure,
            }
        evidence["source"] = {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
        }
        return AlertRecord(
            alert_id=alert_id(policy.name, status.version, check.name, segment, status.episode),
            status="firing",
            check=check.name,
            metric=check.metric.value,
            model=policy.name,
            version=status.version,
            baseline=policy.baseline,
            segment=segment,
            action=check.action,
            severity=check.resolved_severity,
            observed=observed,
            reference=reference,
            tolerance=check.tolerance.model_dump(exclude_none=True),
            event_time=event_time.isoformat(),
            fired_at=now.isoformat(),
            owner=policy.owner,
            controls=list(policy.controls),
            evidence=evidence,
            rollback_to=policy.baseline,
            runbook_url=policy.runbook_url or RUNBOOK_URL,
        )

    def drain_late(self) -> int:
        """Counts that came after their bucket was judged, in every bucket set, since last call."""
        sets = [self.buckets, self.fn_buckets, *(buckets for _, buckets in self._dist)]
        late = sum(b.late for b in sets)
        for b in sets:
            b.late = 0
        return late

    def drain_touched(self) -> list[CheckStatus]:
        """Statuses changed since the last call (for once-per-batch metric updates)."""
        out = [self.statuses[k] for k in self._touched if k in self.statuses]
        self._touched.clear()
        return out
