"""The scenario: what the simulated service serves and how its candidate degrades.

:class:`Scenario` is the whole input of the demo simulator: the seed, the
model and its two versions, the canary share and request rate, the label
delay, and the switches and factors of the candidate's degradations (fewer
escalations, more denials or missed fraud in the rare language segment, a
novel privileged tool, quantised and shifted scores, lower latency), and a
world change that moves both versions at once. It only validates and holds
them; :mod:`monitor.demo.candidate` turns them into the candidate's score
maths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Scenario"]


@dataclass(frozen=True)
class Scenario:
    """What the candidate does differently from the baseline.

    The defaults are the demo's degradations: half the escalations (the
    quantised agent stops asking humans) and three times the deny rate in the
    rare language segment. A factor of 1.0, a shift of 0.0 and ``False`` leave
    that behaviour identical to the baseline; :meth:`identical` turns them all
    off.

    Parameters
    ----------
    seed
        Seed of the whole stream (non-negative).
    model, baseline, candidate
        Model name and the two version labels.
    canary_share
        Share of requests served by the candidate, in [0, 1].
    requests_per_second
        Simulated event-time rate: request ``k`` arrives ``k / rate`` seconds
        after ``start``.
    escalation_factor
        Candidate escalation probability = baseline probability times this
        (the baseline escalates ~8 % of requests).
    rare_lang_deny_factor
        In the ``lang=ga`` segment (~5 % of traffic) the candidate's deny rate
        is the baseline's times this. The candidate's borderline scores there
        are stretched monotonically, so its scores stay consistent with its
        decisions while the bulk of the score distribution stays put.
    fn_segment_factor
        In ``lang=ga``, the candidate's share of fraud among allowed requests
        (the false-negative proxy) is the baseline's times this, by giving
        some fraud cases a legitimate-looking score (or, below 1, by catching
        some allowed fraud).
    novel_privileged_tool
        The candidate calls the privileged tool ``iam.grant_admin`` on ~0.5 %
        of its requests; the baseline never does.
    score_shift
        When not 0, candidate scores are quantised to sixteenths and shifted:
        ``clip(round(score * 16) / 16 + score_shift, 0, 1)``.
    latency_factor
        Candidate inference latency = baseline latency times this (the
        quantised model is faster).
    label_delay_days
        Mean outcome delay in days (exponential). 0 means labels arrive within
        seconds to minutes (mean one minute).
    outcome_share
        Share of fraud cases among ``allow`` decisions whose chargeback is
        eventually reported. About 2 % of legitimate requests also get an
        ``audit`` label ``legit``.
    start
        Event time of the first request; must be timezone-aware.
    degrade_from
        Seconds after ``start`` from which the candidate's degradations act;
        before, it behaves exactly as the baseline (a canary that goes bad).
    world_change_at
        Seconds after ``start`` at which the world changes under *both*
        versions (a new fraud pattern, a new traffic mix); None: never.
    world_escalation_factor
        From the world change on, both versions' escalation probability is
        multiplied by this.
    world_score_shift
        From the world change on, the baseline's score of every request is
        ``clip(score + world_score_shift, 0, 1)`` before the candidate's own
        deviations, so both versions' scores, and the decisions taken on them,
        move together.
    escalation_window, deny_window
        ``(from, until)`` in seconds after ``start``: when the candidate's
        escalation change (``escalation_factor``) and its rare-segment deny
        change (``rare_lang_deny_factor``) act, on top of ``degrade_from``;
        ``until`` None: to the end. The default ``(0.0, None)`` is always, so
        a window only matters for a story such as the demo's week, where one
        degradation is fixed and another starts later.

    Raises
    ------
    ValueError
        If a parameter is out of range.

    Examples
    --------
    >>> Scenario().escalation_factor
    0.5
    >>> Scenario.identical(seed=3).escalation_factor, Scenario.identical().seed
    (1.0, 7)
    """

    seed: int = 7
    model: str = "fraud-scorer"
    baseline: str = "v7-fp32"
    candidate: str = "v7-int8"
    canary_share: float = 0.3
    requests_per_second: float = 1000.0
    escalation_factor: float = 0.5
    rare_lang_deny_factor: float = 3.0
    fn_segment_factor: float = 1.0
    novel_privileged_tool: bool = False
    score_shift: float = 0.0
    latency_factor: float = 0.8
    label_delay_days: float = 0.0
    outcome_share: float = 1.0
    start: datetime = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    degrade_from: float = 0.0
    world_change_at: float | None = None
    world_escalation_factor: float = 1.0
    world_score_shift: float = 0.0
    escalation_window: tuple[float, float | None] = (0.0, None)
    deny_window: tuple[float, float | None] = (0.0, None)

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        for name in ("model", "baseline", "candidate"):
            if not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        if self.baseline == self.candidate:
            raise ValueError("baseline and candidate must be different versions")
        for name in ("canary_share", "outcome_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not (math.isfinite(self.requests_per_second) and self.requests_per_second > 0):
            raise ValueError(
                f"requests_per_second must be positive, got {self.requests_per_second}"
            )
        for name in (
            "escalation_factor",
            "rare_lang_deny_factor",
            "fn_segment_factor",
            "latency_factor",
            "label_delay_days",
            "world_escalation_factor",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and non-negative, got {value}")
        if self.rare_lang_deny_factor == 0:
            raise ValueError("rare_lang_deny_factor must be positive")
        if not (math.isfinite(self.score_shift) and -1.0 <= self.score_shift <= 1.0):
            raise ValueError(f"score_shift must be in [-1, 1], got {self.score_shift}")
        if not (math.isfinite(self.degrade_from) and self.degrade_from >= 0):
            raise ValueError(f"degrade_from must be >= 0 seconds, got {self.degrade_from}")
        at = self.world_change_at
        if at is not None and not (math.isfinite(at) and at >= 0):
            raise ValueError(f"world_change_at must be None or >= 0 seconds, got {at}")
        if not (math.isfinite(self.world_score_shift) and -1.0 <= self.world_score_shift <= 1.0):
            raise ValueError(f"world_score_shift must be in [-1, 1], got {self.world_score_shift}")
        for name in ("escalation_window", "deny_window"):
            _check_window(name, getattr(self, name))
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")

    def acts(self, window: tuple[float, float | None], request: Any) -> Any:
        """Whether a degradation with this window acts on request number(s) ``request``."""
        seconds = request / self.requests_per_second
        until = math.inf if window[1] is None else window[1]
        return (seconds >= window[0]) & (seconds < until)

    @classmethod
    def identical(cls, **overrides: Any) -> Scenario:
        """Build a scenario whose candidate behaves exactly as the baseline.

        Parameters
        ----------
        **overrides
            Any :class:`Scenario` field, applied after the degradations are
            switched off (seed, share, rate, label delay...).

        Returns
        -------
        Scenario
            The scenario, with every degradation and the latency gain off.
        """
        params: dict[str, Any] = {
            "escalation_factor": 1.0,
            "rare_lang_deny_factor": 1.0,
            "fn_segment_factor": 1.0,
            "novel_privileged_tool": False,
            "score_shift": 0.0,
            "latency_factor": 1.0,
        }
        params.update(overrides)
        return cls(**params)


def _check_window(name: str, window: object) -> None:
    """Refuse a window that is not ``(from, until)`` seconds with ``0 <= from < until``."""
    if not (isinstance(window, tuple) and len(window) == 2):
        raise ValueError(f"{name} must be a (from, until) pair of seconds, got {window!r}")
    start, until = window
    if not (isinstance(start, int | float) and math.isfinite(start) and start >= 0):
        raise ValueError(f"{name}: from must be >= 0 seconds, got {start!r}")
    if until is not None and not (
        isinstance(until, int | float) and math.isfinite(until) and until > start
    ):
        raise ValueError(f"{name}: until must be None or a number of seconds > from, got {until!r}")
