"""What each request of a block becomes once a model version has served it.

:func:`serve` applies the scenario to a block's :class:`~monitor.demo.draws.Draws`:
which version served each request (the canary share), the published score
(the baseline's, or the candidate's from :class:`~monitor.demo.candidate.CandidateModel`)
and the decision taken on it, the latency, whether the request escalates or
calls the novel privileged tool, and which requests get a label reported.
Only arithmetic on the draws happens here, no randomness.

Examples
--------
>>> from monitor.demo.draws import draw
>>> sc = Scenario(seed=1)
>>> d = draw(np.random.default_rng([sc.seed, 0]), 1000)
>>> served = serve(sc, CandidateModel.from_scenario(sc), d)
>>> bool((served.decision[served.score > DENY_ABOVE] == 2).all())
True
>>> bool((served.decision[served.score <= REVIEW_ABOVE] == 0).all())
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.demo.candidate import CandidateModel
from monitor.demo.draws import Draws
from monitor.demo.scenario import Scenario
from monitor.demo.traffic import (
    DENY_ABOVE,
    ESCALATION_P,
    FAST_LABEL_MEAN_S,
    LATENCY_MEDIAN_MS,
    LATENCY_SIGMA,
    LEGIT_AUDIT_P,
    NOVEL_TOOL_P,
    REVIEW_ABOVE,
    BoolArray,
    FloatArray,
    IntArray,
)

__all__ = ["Served", "serve"]


@dataclass(frozen=True, slots=True)
class Served:
    """The requests of one block as served, one row per request.

    ``candidate`` says which version served each request; ``score`` is the
    published score (rounded to 6 decimals) and ``decision`` the index in
    ``DECISIONS`` taken on it; ``latency_ms`` is rounded to the microsecond.
    ``escalate`` and ``novel`` mark the requests that escalate and that call
    the novel privileged tool; ``reported`` lists the rows whose label is
    reported, and ``mean_delay_s`` is the mean delay of those labels.
    """

    candidate: BoolArray
    score: FloatArray
    decision: IntArray
    latency_ms: FloatArray
    escalate: BoolArray
    novel: BoolArray
    reported: IntArray
    mean_delay_s: float


def serve(sc: Scenario, model: CandidateModel, d: Draws, first: int = 0) -> Served:
    """Serve a block's requests with the baseline or the candidate.

    Parameters
    ----------
    sc
        The scenario.
    model
        The candidate's deviations, derived from ``sc``.
    d
        The block's draws.
    first
        Number of the block's first request (its time: after the world change?).

    Returns
    -------
    Served
        What each request became.
    """
    n = len(d.serve_u)
    candidate: BoolArray = d.serve_u < sc.canary_share
    request = np.arange(first, first + n)
    # Served by the candidate once its degradations act (before: as the baseline).
    degraded: BoolArray = candidate
    if sc.degrade_from > 0:
        degraded = candidate & (request >= sc.degrade_from * sc.requests_per_second)
    baseline_score: FloatArray = np.where(
        d.fraud, d.fraud_score, np.where(d.risky, d.risky_score, d.legit_score)
    )
    changed = np.zeros(n, dtype=np.bool_)
    if sc.world_change_at is not None:
        changed = request >= sc.world_change_at * sc.requests_per_second
        shift = np.where(changed, sc.world_score_shift, 0.0)
        baseline_score = np.clip(baseline_score + shift, 0.0, 1.0)
    # Each degradation acts inside its own window of the scenario (default: always).
    stretched = np.ones(n, dtype=np.bool_)
    if sc.deny_window != (0.0, None):
        stretched = sc.acts(sc.deny_window, request)
    served_score: FloatArray = np.where(
        degraded,
        model.scores(
            baseline_score,
            d.lang,
            d.fraud,
            d.miss_score,
            d.deviate_u,
            d.catch_score,
            stretched=stretched,
        ),
        baseline_score,
    )
    # Decisions are taken on the published (rounded) score so a consumer
    # can recompute them.
    score: FloatArray = np.round(served_score, 6)
    decision = (score > REVIEW_ABOVE).astype(np.int64) + (score > DENY_ABOVE)
    raw_latency_ms = np.exp(math.log(LATENCY_MEDIAN_MS) + LATENCY_SIGMA * d.latency_z)
    latency_ms: FloatArray = np.round(
        raw_latency_ms * np.where(degraded, sc.latency_factor, 1.0), 3
    )

    fewer_escalations = degraded
    if sc.escalation_window != (0.0, None):
        fewer_escalations = degraded & sc.acts(sc.escalation_window, request)
    escalation_p = ESCALATION_P[decision] * np.where(fewer_escalations, sc.escalation_factor, 1.0)
    escalation_p = escalation_p * np.where(changed, sc.world_escalation_factor, 1.0)
    escalate = d.escalate_u < escalation_p
    novel = (
        degraded & (d.novel_u < NOVEL_TOOL_P)
        if sc.novel_privileged_tool
        else np.zeros(n, dtype=np.bool_)
    )
    report_fraud = d.fraud & (decision == 0) & (d.outcome_u < sc.outcome_share)
    report_legit = ~d.fraud & (d.outcome_u < LEGIT_AUDIT_P)
    reported = np.flatnonzero(report_fraud | report_legit)
    mean_delay_s = sc.label_delay_days * 86_400.0 if sc.label_delay_days > 0 else FAST_LABEL_MEAN_S
    return Served(
        candidate=candidate,
        score=score,
        decision=decision,
        latency_ms=latency_ms,
        escalate=escalate,
        novel=novel,
        reported=reported,
        mean_delay_s=mean_delay_s,
    )
