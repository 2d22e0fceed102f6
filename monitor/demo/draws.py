"""The random draws of one block of requests, in their fixed order.

A block's randomness comes from one generator seeded with ``(seed, block
index)``, and :func:`draw` takes every draw whatever the scenario, always in
the same order, so two scenarios with the same seed see the same requests and
differ only where their parameters act. Changing the order or the number of
the draws here changes every seeded stream.

Examples
--------
>>> d = draw(np.random.default_rng([1, 0]), 8)
>>> d.tool.shape, d.gaps_ms.shape, bool((d.miss_score <= 0.5).all())
((8, 3), (8, 5), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.demo.traffic import (
    ACTION_GAP_MEAN_MS,
    ACTION_GAP_MIN_MS,
    ACTION_GAPS,
    BAND_CUM,
    FRAUD_BETA,
    FRAUD_P,
    LANG_CUM,
    LEGIT_BETA,
    MAX_TOOL_CALLS,
    REVIEW_ABOVE,
    RISKY_LEGIT_BETA,
    RISKY_LEGIT_SHARE,
    TOOL_COUNT_CUM,
    TOOL_CUM,
    BoolArray,
    FloatArray,
    IntArray,
)

__all__ = ["Draws", "draw"]


@dataclass(frozen=True, slots=True)
class Draws:
    """Everything random about one block of ``n`` requests, one row per request.

    Uniform draws (``*_u``) are compared with a probability later; the rest
    are already values: segment indices, fraud, the three baseline score
    candidates, the candidate's miss and catch scores, a standard-normal
    latency deviate, tool counts and tools (``n x MAX_TOOL_CALLS``), action
    gaps in milliseconds (``n x ACTION_GAPS``) and unit-mean label delays.
    """

    serve_u: FloatArray
    lang: IntArray
    band: IntArray
    fraud: BoolArray
    risky: BoolArray
    legit_score: FloatArray
    risky_score: FloatArray
    fraud_score: FloatArray
    miss_score: FloatArray
    deviate_u: FloatArray
    catch_score: FloatArray
    latency_z: FloatArray
    escalate_u: FloatArray
    tool_count: IntArray
    tool: IntArray
    gaps_ms: FloatArray
    novel_u: FloatArray
    outcome_u: FloatArray
    delay_unit: FloatArray


def draw(rng: np.random.Generator, n: int) -> Draws:
    """Take a block's draws from ``rng``, in the fixed order.

    Parameters
    ----------
    rng
        The block's generator, fresh from its seed.
    n
        Requests in the block.

    Returns
    -------
    Draws
        The block's draws.
    """
    # Every draw happens whatever the scenario, in this fixed order, so
    # the stream depends on the degradations only where they act.
    serve_u = rng.random(n)
    lang = np.searchsorted(LANG_CUM, rng.random(n), side="right")
    band = np.searchsorted(BAND_CUM, rng.random(n), side="right")
    fraud: BoolArray = rng.random(n) < FRAUD_P[band]
    risky: BoolArray = rng.random(n) < RISKY_LEGIT_SHARE
    legit_score = rng.beta(*LEGIT_BETA, size=n)
    risky_score = rng.beta(*RISKY_LEGIT_BETA, size=n)
    fraud_score = rng.beta(*FRAUD_BETA, size=n)
    miss_score = np.minimum(rng.beta(*LEGIT_BETA, size=n), REVIEW_ABOVE)
    deviate_u = rng.random(n)
    catch_score = REVIEW_ABOVE + 0.01 + 0.28 * rng.random(n)
    latency_z = rng.standard_normal(n)
    escalate_u = rng.random(n)
    tool_count = np.searchsorted(TOOL_COUNT_CUM, rng.random(n), side="right")
    tool = np.searchsorted(TOOL_CUM, rng.random((n, MAX_TOOL_CALLS)), side="right")
    gaps_ms = ACTION_GAP_MIN_MS + rng.exponential(ACTION_GAP_MEAN_MS, (n, ACTION_GAPS))
    novel_u = rng.random(n)
    outcome_u = rng.random(n)
    delay_unit = rng.exponential(1.0, n)
    return Draws(
        serve_u=serve_u,
        lang=lang,
        band=band,
        fraud=fraud,
        risky=risky,
        legit_score=legit_score,
        risky_score=risky_score,
        fraud_score=fraud_score,
        miss_score=miss_score,
        deviate_u=deviate_u,
        catch_score=catch_score,
        latency_z=latency_z,
        escalate_u=escalate_u,
        tool_count=tool_count,
        tool=tool,
        gaps_ms=gaps_ms,
        novel_u=novel_u,
        outcome_u=outcome_u,
        delay_unit=delay_unit,
    )
