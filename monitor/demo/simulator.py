"""Deterministic traffic of a fraud-scoring agent served by a baseline and a candidate.

The simulated service scores payment requests with one of two versions of the
same model: the baseline (``v7-fp32``) and an optimised candidate
(``v7-int8``) that takes a share of the traffic, as in a canary rollout. Every
request produces an ``inference`` event, then a few ``action`` events (tool
calls, sometimes an escalation to a human) a few hundred milliseconds later,
and sometimes an ``outcome`` event (a chargeback or an audit label) seconds
to days later. The events follow the contract in ``monitor.events``.

Both versions see the same input distribution; the candidate behaves like the
baseline except for the degradations its :class:`Scenario` switches on, so a
monitor that is working should find exactly those.

The stream is a pure function of the scenario. Randomness is drawn per block
of :data:`BLOCK_REQUESTS` requests from a generator seeded with
``(seed, block index)``, and the same draws are made whatever the scenario's
degradations, so the output does not depend on how the stream is cut into
batches, and two scenarios with the same seed differ only where their
parameters act.

Examples
--------
>>> sim = TrafficSimulator(Scenario(seed=1))
>>> events = sim.next_batch(1000)
>>> first = events[0]
>>> first["kind"], first["id"], first["request_id"], first["time"]
('inference', 'i-0', 'r-0', '2026-11-02T09:00:00.000000Z')
>>> sum(e["kind"] == "inference" for e in events)
1000
>>> sim.now.isoformat()
'2026-11-02T09:00:00.999000+00:00'
"""

from __future__ import annotations

import heapq
import json
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "AMOUNT_BANDS",
    "BLOCK_REQUESTS",
    "DECISIONS",
    "LANGS",
    "NOVEL_TOOL",
    "RARE_LANG",
    "TOOLS",
    "EventDict",
    "Scenario",
    "TrafficSimulator",
    "generate",
    "write_jsonl",
]

EventDict: TypeAlias = dict[str, object]
# (microseconds since the scenario start, stream sequence number, event). The
# sequence number is request * _SLOTS + slot, unique, so the pair orders the
# stream totally and the event itself is never compared.
_Keyed: TypeAlias = tuple[int, int, EventDict]
_FloatArray: TypeAlias = npt.NDArray[np.float64]
_IntArray: TypeAlias = npt.NDArray[np.int64]
_BoolArray: TypeAlias = npt.NDArray[np.bool_]

#: Requests generated together from one seeded generator.
BLOCK_REQUESTS: Final = 4096

LANGS: Final = ("en", "de", "fr", "ga")
_LANG_P: Final = (0.60, 0.20, 0.15, 0.05)
#: The rare language segment where the candidate's degradations concentrate.
RARE_LANG: Final = "ga"
_RARE_LANG_INDEX: Final = LANGS.index(RARE_LANG)
AMOUNT_BANDS: Final = ("low", "mid", "high")
_BAND_P: Final = (0.6, 0.3, 0.1)
_FRAUD_P_BY_BAND: Final = (0.01, 0.02, 0.08)  # 2 % overall

# Scores are Beta distributed. A minority of legitimate requests look risky
# (new device, travel), which gives the deny decision a realistic ~2 % rate
# without putting most legitimate traffic into review.
_LEGIT_BETA: Final = (1.5, 6.0)
_RISKY_LEGIT_BETA: Final = (3.0, 2.0)
_RISKY_LEGIT_SHARE: Final = 0.08
_FRAUD_BETA: Final = (5.0, 2.0)
DENY_ABOVE: Final = 0.8
REVIEW_ABOVE: Final = 0.5
DECISIONS: Final = ("allow", "review", "deny")

# ~8 % of requests escalate; reviews far more often than the rest.
_ESCALATION_P_BY_DECISION: Final = (0.05, 0.35, 0.20)
_TOOL_COUNT_P: Final = (0.35, 0.35, 0.20, 0.10)
_MAX_TOOL_CALLS: Final = len(_TOOL_COUNT_P) - 1
TOOLS: Final = ("crm.lookup", "payments.history", "kyc.verify", "refund.issue")
_TOOL_P: Final = (0.45, 0.35, 0.198, 0.002)
_TOOL_PRIVILEGED: Final = (False, False, False, True)
#: The privileged tool only a degraded candidate calls.
NOVEL_TOOL: Final = "iam.grant_admin"
_NOVEL_TOOL_P: Final = 0.005
# Action codes: an index into these, or the escalation code.
_CALLABLE_TOOLS: Final = (*TOOLS, NOVEL_TOOL)
_CALLABLE_PRIVILEGED: Final = (*_TOOL_PRIVILEGED, True)
_NOVEL_TOOL_CODE: Final = len(TOOLS)
_ESCALATION_CODE: Final = -1

_LEGIT_AUDIT_P: Final = 0.02
_FAST_LABEL_MEAN_S: Final = 60.0
_MIN_LABEL_DELAY_S: Final = 1.0
_LATENCY_MEDIAN_MS: Final = 35.0
_LATENCY_SIGMA: Final = 0.3
_ACTION_GAP_MIN_MS: Final = 50.0
_ACTION_GAP_MEAN_MS: Final = 150.0
# One gap before each tool call, then one before the novel tool and one before
# the escalation, each counted from the previous step.
_ACTION_GAPS: Final = _MAX_TOOL_CALLS + 2
_QUANTISATION_LEVELS: Final = 16
# Rare-segment candidate scores below this are left alone by the deny stretch.
_STRETCH_FROM: Final = 0.4

# Stream sequence slots within one request, in causal order.
_SLOTS: Final = 8
_SLOT_INFERENCE: Final = 0
_SLOT_FIRST_TOOL: Final = 1
_SLOT_NOVEL_TOOL: Final = 4
_SLOT_ESCALATION: Final = 5
_SLOT_OUTCOME: Final = 6

_GRID: Final = np.linspace(0.0, 1.0, 20_001)


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
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and non-negative, got {value}")
        if self.rare_lang_deny_factor == 0:
            raise ValueError("rare_lang_deny_factor must be positive")
        if not (math.isfinite(self.score_shift) and -1.0 <= self.score_shift <= 1.0):
            raise ValueError(f"score_shift must be in [-1, 1], got {self.score_shift}")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")

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


def _cumulative(p: tuple[float, ...]) -> _FloatArray:
    # Without the final 1.0, searchsorted(..., side="right") maps [0, 1) onto
    # 0..len(p)-1 even when the probabilities' float sum is a hair below 1.
    return np.cumsum(np.asarray(p, dtype=np.float64))[:-1]


_LANG_CUM: Final = _cumulative(_LANG_P)
_BAND_CUM: Final = _cumulative(_BAND_P)
_TOOL_COUNT_CUM: Final = _cumulative(_TOOL_COUNT_P)
_TOOL_CUM: Final = _cumulative(_TOOL_P)
_FRAUD_P: Final = np.asarray(_FRAUD_P_BY_BAND, dtype=np.float64)
_ESCALATION_P: Final = np.asarray(_ESCALATION_P_BY_DECISION, dtype=np.float64)
_FRAUD_PRIOR: Final = float(np.dot(_BAND_P, _FRAUD_P_BY_BAND))


def _beta_cdf(a: float, b: float) -> _FloatArray:
    """CDF of Beta(a, b) on ``_GRID`` by trapezoidal integration (a, b > 1)."""
    x = _GRID
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    with np.errstate(divide="ignore"):
        log_pdf = (a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x) + log_norm
    pdf = np.nan_to_num(np.exp(log_pdf))
    cdf = np.concatenate(([0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))))
    result: _FloatArray = cdf / cdf[-1]
    return result


@dataclass(frozen=True)
class _CandidateModel:
    """Constants of the candidate's deviations, derived once per scenario.

    In the rare segment the candidate's score is a piecewise-linear, monotone
    function of the baseline's through the knots ``stretch_x`` -> ``stretch_y``:
    identity up to a low score, then ``stretch_x[2]`` sent to the deny
    threshold. Only borderline scores move, so the decision rates change while
    the bulk of the score distribution does not. ``miss_p`` / ``catch_p`` are the
    probabilities of turning a caught fraud into an allowed one / an allowed
    fraud into a review there.
    """

    stretch_x: tuple[float, float, float, float]
    stretch_y: tuple[float, float, float, float]
    miss_p: float
    catch_p: float

    @classmethod
    def from_scenario(cls, sc: Scenario) -> _CandidateModel:
        legit_cdf = (1.0 - _RISKY_LEGIT_SHARE) * _beta_cdf(*_LEGIT_BETA)
        legit_cdf += _RISKY_LEGIT_SHARE * _beta_cdf(*_RISKY_LEGIT_BETA)
        fraud_cdf = _beta_cdf(*_FRAUD_BETA)
        # Language is independent of amount and fraud, so the rare segment
        # has the overall score distribution.
        score_cdf = (1.0 - _FRAUD_PRIOR) * legit_cdf + _FRAUD_PRIOR * fraud_cdf

        knee = DENY_ABOVE
        if sc.rare_lang_deny_factor != 1.0:
            deny = 1.0 - float(np.interp(DENY_ABOVE, _GRID, score_cdf))
            target = min(max(sc.rare_lang_deny_factor * deny, 1e-9), 1.0 - 1e-9)
            knee = float(np.interp(1.0 - target, score_cdf, _GRID))
            knee = min(max(knee, 1e-6), 1.0 - 1e-6)

        start = min(_STRETCH_FROM, 0.75 * knee)
        stretch_x = (0.0, start, knee, 1.0)
        stretch_y = (0.0, start, DENY_ABOVE, 1.0)
        # After the stretch, "allow" (score <= REVIEW_ABOVE) in the rare segment
        # means a baseline score below this.
        allow_below = float(np.interp(REVIEW_ABOVE, stretch_y, stretch_x))
        fraud_allowed = _FRAUD_PRIOR * float(np.interp(allow_below, _GRID, fraud_cdf))
        legit_allowed = (1.0 - _FRAUD_PRIOR) * float(np.interp(allow_below, _GRID, legit_cdf))
        allowed = fraud_allowed + legit_allowed
        factor = sc.fn_segment_factor
        miss_p = catch_p = 0.0
        if factor > 1.0 and fraud_allowed > 0.0:
            # Move m fraud cases into "allow": (F + m) / (A + m) = factor * F / A.
            wanted = min(factor * fraud_allowed / allowed, 1.0 - 1e-9)
            moved = (wanted * allowed - fraud_allowed) / (1.0 - wanted)
            miss_p = min(1.0, moved / max(_FRAUD_PRIOR - fraud_allowed, 1e-12))
        elif factor < 1.0 and fraud_allowed > 0.0:
            # Keep a share k of allowed fraud: kF / (L + kF) = factor * F / A.
            kept = factor * legit_allowed / (allowed - factor * fraud_allowed)
            catch_p = min(1.0, max(0.0, 1.0 - kept))
        return cls(stretch_x=stretch_x, stretch_y=stretch_y, miss_p=miss_p, catch_p=catch_p)


@dataclass(slots=True)
class _Block:
    """Generated events of one block not yet emitted, with the block's far events gone.

    ``events`` are the block's events up to its last inference, in stream
    order; ``inference_pos[j]`` is the position of request ``first + j``'s
    inference in it; ``cursor`` is the next position to emit.
    """

    first: int
    events: list[_Keyed]
    inference_pos: list[int]
    cursor: int = 0


def _key(item: _Keyed) -> tuple[int, int]:
    return item[0], item[1]


class TrafficSimulator:
    """An endless, deterministic event stream for one :class:`Scenario`.

    The stream is a fixed sequence of events ordered by event time (ties
    broken by request and causal order); :meth:`next_batch` cuts it after the
    inference of the last requested request. Actions and outcomes whose time
    has not yet come wait in a heap keyed by due time, so memory is bounded
    by the outstanding ones.

    Parameters
    ----------
    scenario
        The traffic and the candidate's degradations.

    Examples
    --------
    >>> sim = TrafficSimulator(Scenario(seed=5, label_delay_days=2.0))
    >>> live = sim.next_batch(2000)
    >>> {e["kind"] for e in live} == {"inference", "action"}
    True
    >>> late = sim.drain_outcomes()
    >>> late[-1]["kind"], late[-1]["time"] > live[-1]["time"]
    ('outcome', True)
    """

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._candidate = _CandidateModel.from_scenario(scenario)
        utc_start = scenario.start.astimezone(UTC).replace(tzinfo=None)
        self._start64 = np.datetime64(utc_start, "us")
        self._us_per_request = 1e6 / scenario.requests_per_second
        self._blocks: deque[_Block] = deque()
        self._pending: list[_Keyed] = []
        self._next_block = 0
        self._generated = 0
        self._emitted = 0
        self._action_seq = 0
        self._outcome_seq = 0
        self._now_us = 0
        self._drained = False

    @property
    def scenario(self) -> Scenario:
        """The scenario this stream simulates."""
        return self._scenario

    @property
    def now(self) -> datetime:
        """Event time of the latest emitted request (the scenario start before any)."""
        return self._scenario.start + timedelta(microseconds=self._now_us)

    @property
    def requests(self) -> int:
        """Number of requests whose inference has been emitted."""
        return self._emitted

    @property
    def pending(self) -> int:
        """Actions and outcomes generated but not yet due (bounded memory check)."""
        return len(self._pending)

    def next_batch(self, n_requests: int) -> list[EventDict]:
        """Return the events of the next requests, in event-time order.

        Parameters
        ----------
        n_requests
            How many more requests to simulate.

        Returns
        -------
        list of dict
            The inferences of the next ``n_requests`` requests, interleaved by
            time with every action and outcome (of these or earlier requests)
            due no later than the last of those inferences. Later ones follow
            in later batches or from :meth:`drain_outcomes`.

        Raises
        ------
        ValueError
            If ``n_requests`` is negative.
        RuntimeError
            If the stream was already drained.
        """
        if n_requests < 0:
            raise ValueError(f"n_requests must be non-negative, got {n_requests}")
        if self._drained:
            raise RuntimeError("the stream was drained; start a new TrafficSimulator")
        if n_requests == 0:
            return []
        target = self._emitted + n_requests
        while self._generated < target:
            self._generate_block()

        last = target - 1
        near: list[_Keyed] = []
        while True:
            block = self._blocks[0]
            end = block.first + len(block.inference_pos)
            if last < end:
                cut = block.inference_pos[last - block.first] + 1
                near.extend(block.events[block.cursor : cut])
                block.cursor = cut
                if cut == len(block.events):
                    self._blocks.popleft()
                break
            near.extend(block.events[block.cursor :])
            self._blocks.popleft()

        # The cut is the last request's inference, the final near event.
        watermark = _key(near[-1])
        due: list[_Keyed] = []
        pending = self._pending
        while pending and _key(pending[0]) <= watermark:
            due.append(heapq.heappop(pending))
        self._emitted = target
        self._now_us = watermark[0]
        if due:
            # Two sorted runs: timsort merges them in linear time. Keys are
            # unique, so the events themselves are never compared.
            near += due
            near.sort()
        return [item[2] for item in near]

    def drain_outcomes(self) -> list[EventDict]:
        """Return everything still pending for the emitted requests and end the stream.

        Call it at the end of a finite stream. Besides the delayed outcomes
        this includes the actions of the last few hundred milliseconds of
        requests, so the finite stream is complete and still in time order.

        Returns
        -------
        list of dict
            The pending events in event-time order.
        """
        limit = self._emitted * _SLOTS
        rest = [item for item in self._pending if item[1] < limit]
        for block in self._blocks:
            rest.extend(item for item in block.events[block.cursor :] if item[1] < limit)
        self._pending = []
        self._blocks.clear()
        self._drained = True
        rest.sort(key=_key)
        return [item[2] for item in rest]

    def _generate_block(self) -> None:
        sc = self._scenario
        index = self._next_block
        first = index * BLOCK_REQUESTS
        n = BLOCK_REQUESTS
        rng = np.random.default_rng([sc.seed, index])

        # Every draw happens whatever the scenario, in this fixed order, so
        # the stream depends on the degradations only where they act.
        serve_u = rng.random(n)
        lang = np.searchsorted(_LANG_CUM, rng.random(n), side="right")
        band = np.searchsorted(_BAND_CUM, rng.random(n), side="right")
        fraud: _BoolArray = rng.random(n) < _FRAUD_P[band]
        risky: _BoolArray = rng.random(n) < _RISKY_LEGIT_SHARE
        legit_score = rng.beta(*_LEGIT_BETA, size=n)
        risky_score = rng.beta(*_RISKY_LEGIT_BETA, size=n)
        fraud_score = rng.beta(*_FRAUD_BETA, size=n)
        miss_score = np.minimum(rng.beta(*_LEGIT_BETA, size=n), REVIEW_ABOVE)
        deviate_u = rng.random(n)
        catch_score = REVIEW_ABOVE + 0.01 + 0.28 * rng.random(n)
        latency_z = rng.standard_normal(n)
        escalate_u = rng.random(n)
        tool_count = np.searchsorted(_TOOL_COUNT_CUM, rng.random(n), side="right")
        tool = np.searchsorted(_TOOL_CUM, rng.random((n, _MAX_TOOL_CALLS)), side="right")
        gaps_ms = _ACTION_GAP_MIN_MS + rng.exponential(_ACTION_GAP_MEAN_MS, (n, _ACTION_GAPS))
        novel_u = rng.random(n)
        outcome_u = rng.random(n)
        delay_unit = rng.exponential(1.0, n)

        candidate: _BoolArray = serve_u < sc.canary_share
        baseline_score: _FloatArray = np.where(
            fraud, fraud_score, np.where(risky, risky_score, legit_score)
        )
        served_score: _FloatArray = np.where(
            candidate,
            self._candidate_scores(baseline_score, lang, fraud, miss_score, deviate_u, catch_score),
            baseline_score,
        )
        # Decisions are taken on the published (rounded) score so a consumer
        # can recompute them.
        score: _FloatArray = np.round(served_score, 6)
        decision = (score > REVIEW_ABOVE).astype(np.int64) + (score > DENY_ABOVE)
        raw_latency_ms = np.exp(math.log(_LATENCY_MEDIAN_MS) + _LATENCY_SIGMA * latency_z)
        latency_ms: _FloatArray = np.round(
            raw_latency_ms * np.where(candidate, sc.latency_factor, 1.0), 3
        )

        escalation_p = _ESCALATION_P[decision] * np.where(candidate, sc.escalation_factor, 1.0)
        escalate = escalate_u < escalation_p
        novel = (
            candidate & (novel_u < _NOVEL_TOOL_P)
            if sc.novel_privileged_tool
            else np.zeros(n, dtype=np.bool_)
        )
        report_fraud = fraud & (decision == 0) & (outcome_u < sc.outcome_share)
        report_legit = ~fraud & (outcome_u < _LEGIT_AUDIT_P)
        reported = np.flatnonzero(report_fraud | report_legit)
        mean_delay_s = (
            sc.label_delay_days * 86_400.0 if sc.label_delay_days > 0 else _FAST_LABEL_MEAN_S
        )

        # Event times in microseconds since the start.
        request = np.arange(first, first + n, dtype=np.int64)
        t_inference = np.floor(request * self._us_per_request).astype(np.int64)
        t_answered = t_inference + np.rint(latency_ms * 1000.0).astype(np.int64)
        after_us = np.rint(np.cumsum(gaps_ms, axis=1) * 1000.0).astype(np.int64)

        tool_rows, tool_cols = np.nonzero(
            np.arange(_MAX_TOOL_CALLS)[np.newaxis, :] < tool_count[:, np.newaxis]
        )
        novel_rows = np.flatnonzero(novel)
        escalation_rows = np.flatnonzero(escalate)
        action_rows = np.concatenate((tool_rows, novel_rows, escalation_rows))
        action_slots = np.concatenate(
            (
                _SLOT_FIRST_TOOL + tool_cols,
                np.full(len(novel_rows), _SLOT_NOVEL_TOOL),
                np.full(len(escalation_rows), _SLOT_ESCALATION),
            )
        ).astype(np.int64)
        action_after = np.concatenate(
            (
                after_us[tool_rows, tool_cols],
                after_us[novel_rows, _MAX_TOOL_CALLS],
                after_us[escalation_rows, _MAX_TOOL_CALLS + 1],
            )
        )
        action_tool = np.concatenate(
            (
                tool[tool_rows, tool_cols],
                np.full(len(novel_rows), _NOVEL_TOOL_CODE),
                np.full(len(escalation_rows), _ESCALATION_CODE),
            )
        )
        # Action ids count in causal order: by request, then slot.
        order = np.argsort(action_rows * _SLOTS + action_slots, kind="stable")
        action_rows = action_rows[order]
        action_slots = action_slots[order]
        t_action = t_answered[action_rows] + action_after[order]
        action_tool = action_tool[order]
        t_outcome = t_answered[reported] + np.rint(
            (_MIN_LABEL_DELAY_S + mean_delay_s * delay_unit[reported]) * 1e6
        ).astype(np.int64)

        times: _IntArray = np.concatenate((t_inference, t_action, t_outcome))
        seqs: _IntArray = np.concatenate(
            (
                request * _SLOTS + _SLOT_INFERENCE,
                (first + action_rows) * _SLOTS + action_slots,
                (first + reported) * _SLOTS + _SLOT_OUTCOME,
            )
        )
        stamps = np.datetime_as_string(
            self._start64 + times.astype("timedelta64[us]"), unit="us", timezone="UTC"
        ).tolist()
        events = self._inference_events(
            request, stamps, candidate, score, decision, lang, band, latency_ms
        )
        events += self._action_events(
            first, stamps[n : n + len(action_rows)], action_rows, candidate, action_tool
        )
        events += self._outcome_events(first, stamps[n + len(action_rows) :], reported, fraud)

        stream_order = np.lexsort((seqs, times))
        position = np.empty_like(stream_order)
        position[stream_order] = np.arange(len(stream_order))
        time_list: list[int] = times.tolist()
        seq_list: list[int] = seqs.tolist()
        keyed: list[_Keyed] = [
            (time_list[i], seq_list[i], events[i]) for i in stream_order.tolist()
        ]
        inference_pos: list[int] = position[:n].tolist()
        # Everything after the block's last inference waits in the heap: it
        # may interleave with later blocks.
        split = inference_pos[-1] + 1
        for item in keyed[split:]:
            heapq.heappush(self._pending, item)
        self._blocks.append(_Block(first=first, events=keyed[:split], inference_pos=inference_pos))
        self._next_block += 1
        self._generated += n

    def _candidate_scores(
        self,
        score: _FloatArray,
        lang: _IntArray,
        fraud: _BoolArray,
        miss_score: _FloatArray,
        deviate_u: _FloatArray,
        catch_score: _FloatArray,
    ) -> _FloatArray:
        """Candidate scores for every request, as if the candidate had served it."""
        sc = self._scenario
        model = self._candidate
        out = score.copy()
        rare = lang == _RARE_LANG_INDEX
        if model.stretch_x != model.stretch_y:
            # A monotone score change, so the decisions follow the scores.
            out[rare] = np.interp(score[rare], model.stretch_x, model.stretch_y)
        if model.miss_p > 0.0:
            missed = rare & fraud & (out > REVIEW_ABOVE) & (deviate_u < model.miss_p)
            out[missed] = miss_score[missed]
        if model.catch_p > 0.0:
            caught = rare & fraud & (out <= REVIEW_ABOVE) & (deviate_u < model.catch_p)
            out[caught] = catch_score[caught]
        if sc.score_shift != 0.0:
            levels = _QUANTISATION_LEVELS
            out = np.clip(np.round(out * levels) / levels + sc.score_shift, 0.0, 1.0)
        return out

    def _inference_events(
        self,
        request: _IntArray,
        stamps: list[str],
        candidate: _BoolArray,
        score: _FloatArray,
        decision: _IntArray,
        lang: _IntArray,
        band: _IntArray,
        latency_ms: _FloatArray,
    ) -> list[EventDict]:
        sc = self._scenario
        versions = (sc.baseline, sc.candidate)
        return [
            {
                "kind": "inference",
                "id": f"i-{r}",
                "time": stamps[j],
                "request_id": f"r-{r}",
                "model": sc.model,
                "version": versions[c],
                "score": s,
                "decision": DECISIONS[d],
                "segments": {"lang": LANGS[lg], "amount_band": AMOUNT_BANDS[b]},
                "latency_ms": ms,
            }
            for j, (r, c, s, d, lg, b, ms) in enumerate(
                zip(
                    request.tolist(),
                    candidate.tolist(),
                    score.tolist(),
                    decision.tolist(),
                    lang.tolist(),
                    band.tolist(),
                    latency_ms.tolist(),
                    strict=True,
                )
            )
        ]

    def _action_events(
        self,
        first: int,
        stamps: list[str],
        rows: _IntArray,
        candidate: _BoolArray,
        tools: _IntArray,
    ) -> list[EventDict]:
        sc = self._scenario
        model = sc.model
        versions = (sc.baseline, sc.candidate)
        served_by: list[bool] = candidate.tolist()
        seq = self._action_seq
        events: list[EventDict] = [
            {
                "kind": "action",
                "id": f"a-{seq + j}",
                "time": stamps[j],
                "request_id": f"r-{first + row}",
                "model": model,
                "version": versions[served_by[row]],
                "action": "tool_call",
                "tool": _CALLABLE_TOOLS[t],
                "privileged": _CALLABLE_PRIVILEGED[t],
                "status": "ok",
            }
            if t != _ESCALATION_CODE
            else {
                "kind": "action",
                "id": f"a-{seq + j}",
                "time": stamps[j],
                "request_id": f"r-{first + row}",
                "model": model,
                "version": versions[served_by[row]],
                "action": "escalation",
                "status": "ok",
            }
            for j, (row, t) in enumerate(zip(rows.tolist(), tools.tolist(), strict=True))
        ]
        self._action_seq = seq + len(events)
        return events

    def _outcome_events(
        self, first: int, stamps: list[str], rows: _IntArray, fraud: _BoolArray
    ) -> list[EventDict]:
        seq = self._outcome_seq
        is_fraud: list[bool] = fraud.tolist()
        events: list[EventDict] = [
            {
                "kind": "outcome",
                "id": f"o-{seq + j}",
                "time": stamps[j],
                "request_id": f"r-{first + row}",
                "label": "fraud" if is_fraud[row] else "legit",
                "source": "chargeback" if is_fraud[row] else "audit",
            }
            for j, row in enumerate(rows.tolist())
        ]
        self._outcome_seq = seq + len(events)
        return events


def generate(scenario: Scenario, n_requests: int, batch: int = 10_000) -> Iterator[EventDict]:
    """Yield the whole finite stream of ``n_requests`` requests, pending events drained last.

    Parameters
    ----------
    scenario
        The traffic to simulate.
    n_requests
        Number of requests.
    batch
        Requests per internal :meth:`TrafficSimulator.next_batch` call; the
        output does not depend on it.

    Yields
    ------
    dict
        Events in event-time order.

    Raises
    ------
    ValueError
        If ``n_requests`` is negative or ``batch`` is not positive.

    Examples
    --------
    >>> events = list(generate(Scenario(seed=2), 100))
    >>> sum(e["kind"] == "inference" for e in events)
    100
    >>> events == list(generate(Scenario(seed=2), 100, batch=7))
    True
    """
    if n_requests < 0:
        raise ValueError(f"n_requests must be non-negative, got {n_requests}")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    sim = TrafficSimulator(scenario)
    left = n_requests
    while left > 0:
        size = min(batch, left)
        yield from sim.next_batch(size)
        left -= size
    yield from sim.drain_outcomes()


def write_jsonl(path: Path | str, scenario: Scenario, n_requests: int) -> int:
    """Write the finite stream as compact JSON, one event per line.

    Parameters
    ----------
    path
        Output file (overwritten).
    scenario
        The traffic to simulate.
    n_requests
        Number of requests.

    Returns
    -------
    int
        Number of events written. The same scenario gives a byte-identical
        file.
    """
    if n_requests < 0:
        raise ValueError(f"n_requests must be non-negative, got {n_requests}")
    encode = json.JSONEncoder(separators=(",", ":")).encode
    sim = TrafficSimulator(scenario)
    written = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as out:
        left = n_requests
        while True:
            size = min(10_000, left)
            events = sim.next_batch(size) if size else sim.drain_outcomes()
            if events:
                out.write("\n".join(map(encode, events)))
                out.write("\n")
                written += len(events)
            if not size:
                return written
            left -= size
