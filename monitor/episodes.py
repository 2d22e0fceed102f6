"""Firing and resolving: the alert episodes of every check.

A detector that newly crosses its threshold opens an episode: one *firing*
:class:`~monitor.alerts.AlertRecord`, stamped with the event time at which the
bucket that crossed it became final (its end plus the action window or label
horizon it waited for): the same events give the same record, however they
were cut into batches or interleaved across partitions. From then on the
candidate's data also go to a recovery test (:mod:`detectors.recovery`); when
it shows the check back inside its tolerance, a *resolved* record with the same ``alert_id`` closes
the episode and a fresh detector (the next episode, with its own id) takes
over. A check without a recovery test (``novel_tool``) stays firing until a
new version or an edited policy ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Literal, Protocol, TypeVar

from detectors import Detector, EqualAgeRateDetector, Evidence, Recovery
from monitor.alerts import AlertRecord, firing_record, resolved_record
from monitor.baseline_drift import BaselineDrift
from monitor.messages import SourcePosition
from monitor.policy import Check, ModelPolicy
from monitor.streams import Stream

__all__ = ["CheckStatus", "Clock", "Episodes", "Owner"]

#: Source of ``fired_at``: a callable, ``"event"`` (the crossing bucket's end, for a
#: deterministic replay) or None (wall-clock UTC).
Clock = Callable[[], datetime] | Literal["event"] | None

D = TypeVar("D", bound=Detector)
R = TypeVar("R", bound=Recovery)


@dataclass(slots=True)
class CheckStatus(Generic[D, R]):
    """The state of one check on one stream of one candidate version."""

    check: Check
    version: str
    stream: Stream
    detector: D
    #: The firing alert of the current episode (None: not firing).
    firing: AlertRecord | None = None
    #: Breaches so far that resolved: the episode number of the next alert.
    episode: int = 0
    recovery: R | None = None

    @property
    def state(self) -> str:
        """``breach``, ``ok`` or ``inconclusive`` (too little data: never ``ok``)."""
        det = self.detector
        if self.firing is not None or det.drift_detected:
            return "breach"
        return "ok" if det.conclusive else "inconclusive"

    @property
    def reason(self) -> str:
        det = self.detector
        if self.firing is not None:
            return "candidate outside tolerance (alert firing)"
        if det.drift_detected:
            return "candidate outside tolerance"
        if not det.ready:
            return "baseline has too little data"
        if isinstance(det, EqualAgeRateDetector) and not det.horizon.conclusive:
            age = det.inside_age
            if age is None:
                return "not yet shown inside the tolerance at any label age (labels to come)"
            return f"within tolerance at label age {age:g} s"
        if not det.conclusive:
            return "candidate has too little data"
        return "within tolerance"


class Owner(Protocol[D, R]):
    """What an episode needs of the runner that owns a check."""

    def evidence(self, status: CheckStatus[D, R]) -> Evidence: ...

    def recovery(self, status: CheckStatus[D, R]) -> R | None: ...

    def new_detector(self, check: Check, stream: Stream) -> D: ...


class Episodes:
    """Opens and closes alert episodes for the checks of one model.

    Parameters
    ----------
    policy
        The model's policy: owner, controls and baseline go into each record.
    clock
        Source of ``fired_at`` and ``resolved_at`` (see :data:`Clock`).
    baseline_drift
        The watch on the model's baseline, whose drift a firing record reports
        (default: a new one).
    """

    def __init__(
        self, policy: ModelPolicy, clock: Clock = None, baseline_drift: BaselineDrift | None = None
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.baseline_drift = baseline_drift or BaselineDrift(policy)
        self._alerts: list[AlertRecord] = []

    def _now(self, event_time: datetime) -> datetime:
        if self.clock == "event":
            return event_time
        if self.clock is None:
            return datetime.now(UTC)
        return self.clock()

    def judge(
        self,
        runner: Owner[D, R],
        status: CheckStatus[D, R],
        final_at: float,
        source: SourcePosition | None,
    ) -> None:
        """After the detector of ``status`` saw a bucket final at ``final_at``: fire or resolve."""
        det = status.detector
        if status.firing is None:
            if det.drift_detected:
                event_time = datetime.fromtimestamp(final_at, UTC)
                status.firing = firing_record(
                    self.policy,
                    status.check,
                    status.version,
                    status.stream,
                    status.episode,
                    det,
                    runner.evidence(status),
                    event_time=event_time,
                    fired_at=self._now(event_time),
                    source=source,
                    baseline_drift=self.baseline_drift.evidence(status.check.name, final_at),
                )
                status.recovery = runner.recovery(status)
                self._alerts.append(status.firing)
        elif status.recovery is not None and status.recovery.cleared():
            observed, since_breach = status.recovery.summary()
            resolved_at = self._now(datetime.fromtimestamp(final_at, UTC))
            drift = self.baseline_drift.evidence(status.check.name, final_at)
            resolved = resolved_record(status.firing, observed, since_breach, resolved_at, drift)
            self._alerts.append(resolved)
            status.firing, status.recovery = None, None
            status.episode += 1
            status.detector = runner.new_detector(status.check, status.stream)

    def drain(self) -> list[AlertRecord]:
        """Records raised since the last call, each exactly once, in the order raised."""
        alerts, self._alerts = self._alerts, []
        return alerts
