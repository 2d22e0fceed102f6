"""How long a rollout gate waits before each check of a policy can be conclusive.

``shiftwatch policy check FILE --events-per-second N`` prints, per check, the
event time after which the check can be ``ok`` (and the verdict ``pass``) for a
candidate that is no different from its baseline, given the traffic. It is an
estimate for sizing an Argo Rollouts analysis or a Flagger canary, not a
promise: it uses expected counts and the stated assumptions.

``false_negative_rate`` at label age ``a`` (docs/detectors.md): ``n`` candidate
negatives ``a`` seconds old are enough once the time-uniform bounds at the
expected counts ``x = n p F(a)`` (candidate) and ``x_b = n_b p F(a)`` (baseline,
``n_b = n (1 - c) / c``) put the candidate inside the tolerance, with
``F(a) = 1 - exp(-a / D)`` for a mean label delay ``D`` (exponential delays).
The time is ``a + n / (lambda c q)`` (``lambda`` inferences/s, ``c`` the
candidate's share, ``q`` the share of negative decisions); the check uses the
best of its ages and the horizon (``horizon + 200 / (lambda c q)``). Segments
need ``1 / segment share`` times as long; an absolute tolerance passes before
the horizon only if the baseline has been watched a whole horizon already.

The other rate checks and the distribution checks are conclusive on enough
data (1,000 baseline and 200 candidate observations, 2,000 baseline values to
fix the score bins), ``novel_tool`` never before ``min_baseline_calls``
baseline tool calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from detectors.bounds import share_bounds
from monitor.policy import Check, ModelPolicy
from monitor.runners.expected_fn import MIN_CALIBRATION_POSITIVES
from monitor.vocabulary import RATE_METRICS, Metric

__all__ = ["Traffic", "check_estimate", "format_duration"]

_MIN_LABELS = 20.0
_ALPHA = 1e-3
_MIN_CANDIDATE = 200.0
_MIN_BASELINE = 1000.0
_REFERENCE_SAMPLE = 2000.0


@dataclass(frozen=True, slots=True)
class Traffic:
    """The traffic a gate is sized for, and the assumptions where the policy says nothing."""

    events_per_second: float
    candidate_share: float = 0.5
    negative_share: float = 0.9
    baseline_rate: float = 0.01
    label_delay_seconds: float | None = None  # None: horizon / 10

    def __post_init__(self) -> None:
        if not (math.isfinite(self.events_per_second) and self.events_per_second > 0):
            raise ValueError("events per second must be a positive number")
        for name in ("candidate_share", "negative_share", "baseline_rate"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be in (0, 1), got {value}")
        delay = self.label_delay_seconds
        if delay is not None and not (math.isfinite(delay) and delay > 0):
            raise ValueError(f"label delay must be a positive number of seconds, got {delay}")


def format_duration(seconds: float) -> str:
    """``1h05m``, ``12m``, ``3d04h``; ``never`` for infinity.

    >>> format_duration(3900), format_duration(720), format_duration(273600), format_duration(45)
    ('1h05m', '12m', '3d04h', '45s')
    """
    if not math.isfinite(seconds):
        return "never"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _inside(
    check: Check, x_c: float, n_c: float, x_b: float, n_b: float, scale: float, ages: int
) -> bool:
    """The detector's pass rule (detectors.label_age) at expected counts."""
    tol = check.tolerance
    sides = (
        2
        if tol.max_relative_change is not None
        else ((tol.max_increase is not None) + (tol.max_decrease is not None))
    )
    alpha = _ALPHA / (2 * sides * max(ages, 1))
    low_b, high_b = share_bounds(x_b, n_b, alpha)
    low_c, high_c = share_bounds(x_c, n_c, alpha)
    if tol.max_relative_change is not None:
        rel = tol.max_relative_change
        return high_c < low_b * (1 + rel) and low_c > high_b * (1 - rel)
    ok = True
    if tol.max_increase is not None:
        ok = ok and high_c < low_b + tol.max_increase * scale
    if tol.max_decrease is not None:
        ok = ok and low_c > high_b - tol.max_decrease * scale
    return ok


def _negatives_needed(check: Check, traffic: Traffic, share: float, ages: int) -> float:
    """Candidate negatives at one age for the pass bound (inf if beyond 10^9)."""
    c, p = traffic.candidate_share, traffic.baseline_rate
    ratio = (1 - c) / c

    def enough(n: float) -> bool:
        n_b = n * ratio
        x_b = n_b * p * share
        if x_b < _MIN_LABELS or n < _MIN_CANDIDATE:
            return False
        x_c = min(n * p * share, n)
        return _inside(check, x_c, n, min(x_b, n_b), n_b, share, ages)

    low, high = 1.0, 1e9
    if not enough(high):
        return math.inf
    while high / low > 1.01:
        mid = math.sqrt(low * high)
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def check_estimate(model: ModelPolicy, check: Check, traffic: Traffic) -> str:
    """One line: when ``check`` can first be conclusive under ``traffic``, and on what."""
    lam, c = traffic.events_per_second, traffic.candidate_share
    cand, base = lam * c, lam * (1 - c)
    if check.metric is Metric.FALSE_NEGATIVE_RATE:
        return _fn_estimate(model, check, traffic)
    if check.metric in RATE_METRICS:
        window = model.action_window_seconds if check.metric is Metric.ACTION_RATE else 0.0
        t = max(_MIN_BASELINE / base, 0.0) + _MIN_CANDIDATE / cand + window
        return f"~{format_duration(t)} (1,000 baseline and 200 candidate inferences)"
    if check.metric is Metric.EXPECTED_FALSE_NEGATIVE_RATE:
        return (
            f"once the baseline has {MIN_CALIBRATION_POSITIVES} positive labels older than "
            f"{format_duration(model.label_horizon_seconds)} (its calibration), then ~"
            f"{format_duration(_MIN_CANDIDATE / cand)} of candidate negative decisions"
        )
    if check.metric is Metric.NOVEL_TOOL:
        calls = check.min_baseline_calls or 1000
        return f"after {calls:,} baseline tool calls (rate of tool calls not known)"
    if check.metric is Metric.TOOL_DISTRIBUTION:
        return "after 500 baseline and 200 candidate tool calls (rate of tool calls not known)"
    t = max(_REFERENCE_SAMPLE / base, _MIN_CANDIDATE / cand)
    return f"~{format_duration(t)} (2,000 baseline values fix the bins, 200 candidate values)"


def _fn_estimate(model: ModelPolicy, check: Check, traffic: Traffic) -> str:
    horizon = model.label_horizon_seconds
    delay = traffic.label_delay_seconds or horizon / 10
    negatives = traffic.events_per_second * traffic.candidate_share * traffic.negative_share
    ages = model.label_ages
    best = (horizon + _MIN_CANDIDATE / negatives, "at the label horizon")
    for age in ages:
        share = 1 - math.exp(-age / delay)
        n = _negatives_needed(check, traffic, share, len(ages))
        t = age + n / negatives
        if t < best[0]:
            best = (t, f"at label age {format_duration(age)}, F={share:.2f}, {n:,.0f} negatives")
    absolute = check.tolerance.max_relative_change is None
    note = (
        "; absolute tolerance: the baseline must have been watched a full horizon"
        if (absolute and best[1] != "at the label horizon")
        else ""
    )
    return f"~{format_duration(best[0])} ({best[1]}{note})"
