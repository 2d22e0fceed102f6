"""What every check runner shares: its statuses, their episodes and their checkpoints.

A runner runs the checks of one metric family for one model. It has a small
protocol: :meth:`CheckRunner.feed` counts a batch's routed events into its
open event-time buckets, :meth:`CheckRunner.release` hands the buckets the
model's watermark has passed to the detectors — one bucket at a time, in
bucket order, the baseline's data before the candidates' — and lets the
episodes (:mod:`monitor.episodes`) fire or resolve; :meth:`new_detector`,
:meth:`evidence` and :meth:`recovery` are what an episode needs of it.
A new metric family is a new runner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from detectors import Detector, Evidence, Recovery
from monitor.alerts import AlertRecord
from monitor.episodes import CheckStatus, Episodes
from monitor.messages import SourcePosition
from monitor.policy import Check, ModelPolicy
from monitor.streams import Stream, decode_stream
from monitor.work import ModelWork

__all__ = ["CheckRunner", "Locate", "StatusKey"]

D = TypeVar("D", bound=Detector)
R = TypeVar("R", bound=Recovery)

#: (check name, candidate version, stream)
StatusKey = tuple[str, str, Stream]
#: The source position of the message that released a bucket final at the given event time.
Locate = Callable[[float], SourcePosition | None]


class CheckRunner(ABC, Generic[D, R]):
    """The checks of one metric family of one model.

    Parameters
    ----------
    policy
        The model's policy (its baseline tells reference data from candidate data).
    checks
        The checks this runner runs, in policy order.
    detector_arl0
        Each detector's share of the model's false-alarm budget.
    episodes
        Where breaches open and close alert episodes.
    """

    #: The detector class this runner creates (for restoring its state).
    detector_type: type[D]

    def __init__(
        self,
        policy: ModelPolicy,
        checks: Sequence[Check],
        detector_arl0: float,
        episodes: Episodes,
    ) -> None:
        self.policy = policy
        self.checks = tuple(checks)
        self.detector_arl0 = detector_arl0
        self.episodes = episodes
        self.baseline = policy.baseline
        #: Where the baseline's released buckets also go, to watch its own drift.
        self.baseline_drift = episodes.baseline_drift
        self.statuses: dict[StatusKey, CheckStatus[D, R]] = {}
        self._by_check_stream: dict[tuple[str, Stream], list[CheckStatus[D, R]]] = {}
        #: Candidate versions whose statuses changed since :meth:`drain_touched`.
        self.touched: set[str] = set()

    # -- the protocol ---------------------------------------------------------------------
    @abstractmethod
    def feed(self, work: ModelWork) -> None:
        """Count a batch's events into open buckets; mark those whose bucket is gone as late."""

    @abstractmethod
    def release(self, watermark: float, locate: Locate) -> None:
        """Judge every bucket the watermark has passed, oldest first.

        ``locate(final_at)``: where the message was read that released a bucket
        final at ``final_at`` (the alert's ``evidence.source``).
        """

    @abstractmethod
    def new_detector(self, check: Check, stream: Stream) -> D:
        """A candidate detector for ``check`` on ``stream``, primed with the baseline so far."""

    @abstractmethod
    def recovery(self, status: CheckStatus[D, R]) -> R | None:
        """The test that ends a breach of ``status`` (None: it never ends on its own)."""

    def evidence(self, status: CheckStatus[D, R]) -> Evidence:
        """What the alert record of ``status`` reports as observed, reference and counts."""
        return status.detector.evidence()

    # -- shared bookkeeping ---------------------------------------------------------------
    def status(self, check: Check, version: str, stream: Stream) -> CheckStatus[D, R]:
        """The status of a check on a candidate's stream, created on first use."""
        key = (check.name, version, stream)
        status = self.statuses.get(key)
        if status is None:
            status = CheckStatus(check, version, stream, self.new_detector(check, stream))
            self.statuses[key] = status
            self._by_check_stream.setdefault((check.name, stream), []).append(status)
            self.touched.add(version)
        return status

    def watching(self, check: Check, stream: Stream) -> list[CheckStatus[D, R]]:
        """Every candidate's status of ``check`` on ``stream`` (to pass baseline data on)."""
        return self._by_check_stream.get((check.name, stream), [])

    def judge(
        self, status: CheckStatus[D, R], final_at: float, source: SourcePosition | None
    ) -> None:
        """Let the episodes fire or resolve after ``status``'s detector saw a bucket.

        ``final_at``: the event time at which that bucket became final (its end
        plus its window), the alert's ``event_time``.
        """
        self.episodes.judge(self, status, final_at, source)
        self.touched.add(status.version)

    # -- checkpoints ----------------------------------------------------------------------
    @abstractmethod
    def _buckets_state(self) -> dict[str, Any]:
        """The runner's own state: open buckets and the baseline's totals."""

    @abstractmethod
    def _restore_buckets(self, state: dict[str, Any]) -> None: ...

    @abstractmethod
    def _restore_recovery(self, detector: D, state: dict[str, Any]) -> R: ...

    def _restore_detector(self, check: Check, snapshot: dict[str, Any]) -> D:
        """A status's detector from its checkpoint (a runner may migrate older snapshots)."""
        return self.detector_type.from_state(snapshot)

    def state(self) -> dict[str, Any]:
        """Plain data: every status (detector state, firing record, episode) and the buckets."""
        statuses = []
        for status in self.statuses.values():
            statuses.append(
                {
                    "check": status.check.name,
                    "version": status.version,
                    "stream": list(status.stream),
                    "detector": status.detector.state(),
                    "firing": status.firing.model_dump(mode="json") if status.firing else None,
                    "episode": status.episode,
                    "recovery": status.recovery.state() if status.recovery else None,
                }
            )
        return {"statuses": statuses, **self._buckets_state()}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (taken under the same policy)."""
        checks = {c.name: c for c in self.checks}
        self.statuses, self._by_check_stream = {}, {}
        for item in state["statuses"]:
            check = checks[item["check"]]
            stream = decode_stream(item["stream"])
            detector = self._restore_detector(check, item["detector"])
            status: CheckStatus[D, R] = CheckStatus(
                check, str(item["version"]), stream, detector, episode=int(item["episode"])
            )
            if item["firing"] is not None:
                status.firing = AlertRecord.model_validate(item["firing"])
            if item["recovery"] is not None:
                status.recovery = self._restore_recovery(detector, item["recovery"])
            self.statuses[(check.name, status.version, stream)] = status
            self._by_check_stream.setdefault((check.name, stream), []).append(status)
            self.touched.add(status.version)
        self._restore_buckets(state)
