"""The baseline's own drift: has the world changed, whatever the candidate does?

Every check compares a candidate with its baseline. When the environment
shifts — a new fraud pattern, a new traffic mix — the baseline moves too, and
the candidate is judged against a moving reference (the runners' reference
is the baseline's data since the start). :class:`BaselineDrift` watches, for
one model, the baseline version's *overall* stream of each rate and
distribution check (``novel_tool`` has no baseline stream to drift), from the
buckets the runners already release to the detectors, oldest first: the rate
runner hands it each released bucket's ``(count, exposure)``, the
distribution runner each released histogram
(:mod:`detectors.baseline_change`: ADWIN on standardised chunks).

A change found at event time ``t`` makes the check's baseline *drifting* for
:data:`HOLD_SECONDS` of event time after ``t``; ``since`` is the first change
of that spell. The verdict shows it with a reason
(:func:`monitor.verdict.model_verdict`), the metrics export it
(``shiftwatch_baseline_drift``, ``shiftwatch_baseline_drift_changes_total``),
and an alert fired while its own check's baseline drifts carries it in its
evidence — its own check only, so that the record depends on the events and
their times, not on how they were batched.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from detectors.baseline_change import HistogramChangeDetector, RateChangeDetector
from monitor.policy import Check, Metric, ModelPolicy
from monitor.streams import Stream

__all__ = ["HOLD_SECONDS", "BaselineDrift", "watched"]

#: Event-time seconds a check's baseline counts as drifting after a change was found.
HOLD_SECONDS: Final = 3600.0

ChangeDetector = RateChangeDetector | HistogramChangeDetector


def watched(check: Check) -> bool:
    """Whether the baseline's own stream of ``check`` is watched.

    Every metric but ``novel_tool`` (no baseline stream) and
    ``expected_false_negative_rate`` (its baseline is the calibration's own
    fit; the baseline's labels are watched by ``false_negative_rate``).
    """
    return check.metric not in (Metric.NOVEL_TOOL, Metric.EXPECTED_FALSE_NEGATIVE_RATE)


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


class BaselineDrift:
    """Watches the baseline's own overall stream of each check of one model.

    Parameters
    ----------
    policy
        The model's policy: its checks say which change detector each gets.
    """

    def __init__(self, policy: ModelPolicy) -> None:
        self.policy = policy
        self._checks = {c.name: c for c in policy.checks if watched(c)}
        self._detectors: dict[str, ChangeDetector] = {}
        self._since: dict[str, float] = {}
        self._last: dict[str, float] = {}
        #: The latest event time a released bucket was final at.
        self.now = -math.inf
        self._shown: tuple[object, ...] = ()

    # -- the runners' hooks (baseline data of released buckets, oldest first) ----------
    def observe_rate(
        self, check: Check, stream: Stream, final_at: float, count: float, exposure: float
    ) -> None:
        """One released bucket of the baseline's ``(count, exposure)`` for a rate check."""
        if stream or check.name not in self._checks:
            return
        det = self._detectors.get(check.name)
        if not isinstance(det, RateChangeDetector):
            poisson = check.metric is Metric.ACTION_RATE
            det = RateChangeDetector("poisson" if poisson else "bernoulli")
            self._detectors[check.name] = det
        det.update((count, exposure))
        self._after(check.name, det, final_at)

    def observe_histogram(
        self, check: Check, stream: Stream, final_at: float, hist: NDArray[np.float64]
    ) -> None:
        """One released bucket of the baseline's histogram for a distribution check."""
        if stream or check.name not in self._checks:
            return
        det = self._detectors.get(check.name)
        if not isinstance(det, HistogramChangeDetector) or det.n_bins != len(hist):
            ordered = check.metric is not Metric.TOOL_DISTRIBUTION
            det = self._detectors[check.name] = HistogramChangeDetector(len(hist), ordered)
        det.update(hist)
        self._after(check.name, det, final_at)

    def _after(self, name: str, det: ChangeDetector, at: float) -> None:
        self.now = max(self.now, at)
        if det.drift_detected:
            if not self._drifting(name, at):
                self._since[name] = at
            self._last[name] = at

    # -- what it shows --------------------------------------------------------------------
    def _drifting(self, name: str, at: float) -> bool:
        last = self._last.get(name)
        return last is not None and at - last <= HOLD_SECONDS

    def evidence(self, check: str, at: float) -> dict[str, Any] | None:
        """An alert's ``evidence.baseline_drift``: its own check's baseline drifts at ``at``."""
        if not self._drifting(check, at):
            return None
        return {
            "detected": True,
            "since": _iso(self._since[check]),
            "last": _iso(self._last[check]),
            "checks": [check],
        }

    def view(self) -> dict[str, Any]:
        """The model's baseline drift now, as the verdict shows it (``baseline_drift``)."""
        drifting = sorted(n for n in self._last if self._drifting(n, self.now))
        since = min((self._since[n] for n in drifting), default=None)
        view: dict[str, Any] = {
            "detected": bool(drifting),
            "since": _iso(since),
            "checks": drifting,
            "changes": {
                name: self._detectors[name].detections if name in self._detectors else 0
                for name in self._checks
            },
        }
        if drifting:
            view["reason"] = (
                f"the baseline {self.policy.baseline} itself drifted since {view['since']} "
                f"({', '.join(drifting)}); the candidate is judged against the moving baseline"
            )
        return view

    def drain_changed(self) -> bool:
        """Whether what :meth:`view` shows changed since the last call (to republish)."""
        drifting = tuple(n for n in self._last if self._drifting(n, self.now))
        shown = (drifting, *(det.detections for det in self._detectors.values()))
        changed, self._shown = shown != self._shown, shown
        return changed

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain data: each check's change detector, its spell of drift, and event time."""
        return {
            "detectors": {name: det.state() for name, det in self._detectors.items()},
            "since": dict(self._since),
            "last": dict(self._last),
            "now": self.now,
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from :meth:`state`; ``None`` (a checkpoint from before it) starts afresh."""
        self._detectors, self._since, self._last = {}, {}, {}
        self.now, self._shown = -math.inf, ()
        if state is None:
            return
        kinds: dict[str, type[ChangeDetector]] = {
            "RateChangeDetector": RateChangeDetector,
            "HistogramChangeDetector": HistogramChangeDetector,
        }
        for name, snapshot in state["detectors"].items():
            if str(name) in self._checks:
                self._detectors[str(name)] = kinds[snapshot["type"]].from_state(snapshot)
        self._since = {str(k): float(v) for k, v in state["since"].items()}
        self._last = {str(k): float(v) for k, v in state["last"].items()}
        self.now = float(state["now"])
