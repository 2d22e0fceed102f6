"""Check runners: one per metric family (rates, distributions, novel tool) and model.

:func:`model_runners` builds the runners of a model's policy and splits its
false-alarm budget among their detectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detectors import detector_arl0
from monitor.baseline_drift import BaselineDrift
from monitor.episodes import CheckStatus, Clock, Episodes
from monitor.policy import Check, ModelPolicy
from monitor.router import MAX_CANDIDATES
from monitor.runners.base import CheckRunner
from monitor.runners.distributions import DistributionRunner
from monitor.runners.expected_fn import ExpectedFNRunner
from monitor.runners.novel import NovelToolRunner
from monitor.runners.rates import RateRunner
from monitor.vocabulary import DISTANCE_METRICS, RATE_METRICS, Metric

__all__ = [
    "CheckRunner",
    "DistributionRunner",
    "ExpectedFNRunner",
    "ModelRunners",
    "NovelToolRunner",
    "RateRunner",
    "model_runners",
]

#: Which runner runs each metric family: a new family is a new entry here.
_FAMILIES: tuple[tuple[frozenset[Metric], type[CheckRunner[Any, Any]]], ...] = (
    (RATE_METRICS, RateRunner),
    (DISTANCE_METRICS, DistributionRunner),
    (frozenset({Metric.NOVEL_TOOL}), NovelToolRunner),
    (frozenset({Metric.EXPECTED_FALSE_NEGATIVE_RATE}), ExpectedFNRunner),
)


@dataclass(slots=True)
class ModelRunners:
    """The runners of one model, what they share (episodes, baseline watch), each budget."""

    policy: ModelPolicy
    runners: list[CheckRunner[Any, Any]]
    episodes: Episodes
    detector_arl0: float

    @property
    def baseline_drift(self) -> BaselineDrift:
        """The watch on the baseline's own drift (shared through the episodes)."""
        return self.episodes.baseline_drift

    def statuses(self) -> list[CheckStatus[Any, Any]]:
        """Every status of every runner."""
        return [s for runner in self.runners for s in runner.statuses.values()]

    def drain_touched(self) -> set[str]:
        """Candidate versions whose statuses changed since the last call.

        Every candidate seen, when what the baseline watch shows changed: each
        verdict carries it.
        """
        touched: set[str] = set()
        for runner in self.runners:
            touched |= runner.touched
            runner.touched = set()
        if self.baseline_drift.drain_changed():
            touched |= {s.version for s in self.statuses()}
        return touched


def model_runners(policy: ModelPolicy, *, segment_cap: int, clock: Clock = None) -> ModelRunners:
    """The runners of ``policy``'s checks, sharing its false-alarm budget.

    The budget ``false_alarm.arl0`` is split evenly over every detector the
    model can have: checks x streams (the overall one plus each segment key's
    capped values and ``other``) x candidate versions.
    """
    streams = 1 + len(policy.segments) * (segment_cap + 1)
    versions = len(policy.candidates) if policy.candidates else MAX_CANDIDATES
    arl0 = detector_arl0(policy.false_alarm.arl0, len(policy.checks) * streams * versions)
    episodes = Episodes(policy, clock, BaselineDrift(policy))
    runners: list[CheckRunner[Any, Any]] = []
    for metrics, runner_type in _FAMILIES:
        checks: list[Check] = [c for c in policy.checks if c.metric in metrics]
        if checks:
            runners.append(runner_type(policy, checks, arl0, episodes))
    return ModelRunners(policy, runners, episodes, arl0)
