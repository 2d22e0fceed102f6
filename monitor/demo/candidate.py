"""The candidate model's maths: how its scores, and so its decisions, deviate.

:class:`CandidateModel` turns a :class:`~monitor.demo.scenario.Scenario`'s
degradation factors into score transformations, derived once per scenario
from the baseline's score distribution (a mixture of Beta distributions whose
CDF is integrated numerically on a fine grid): a monotone stretch of the rare
segment's borderline scores that multiplies its deny rate, probabilities of
missing or catching fraud there that move its false-negative proxy, and the
quantise-and-shift of every score. :meth:`CandidateModel.scores` applies them
to a block of requests.

Examples
--------
>>> from monitor.demo.scenario import Scenario
>>> CandidateModel.from_scenario(Scenario.identical()).stretch_x
(0.0, 0.4, 0.8, 1.0)
>>> model = CandidateModel.from_scenario(Scenario(fn_segment_factor=2.0))
>>> model.stretch_x[2] < DENY_ABOVE, model.miss_p > 0.0, model.catch_p
(True, True, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from monitor.demo.scenario import Scenario
from monitor.demo.traffic import (
    DENY_ABOVE,
    FRAUD_BETA,
    FRAUD_PRIOR,
    LEGIT_BETA,
    RARE_LANG_INDEX,
    REVIEW_ABOVE,
    RISKY_LEGIT_BETA,
    RISKY_LEGIT_SHARE,
    BoolArray,
    FloatArray,
    IntArray,
)

__all__ = ["CandidateModel", "beta_cdf"]

QUANTISATION_LEVELS: Final = 16
# Rare-segment candidate scores below this are left alone by the deny stretch.
STRETCH_FROM: Final = 0.4

GRID: Final = np.linspace(0.0, 1.0, 20_001)


def beta_cdf(a: float, b: float) -> FloatArray:
    """CDF of Beta(a, b) on ``GRID`` by trapezoidal integration (a, b > 1).

    Parameters
    ----------
    a, b
        The Beta distribution's shape parameters, both above 1.

    Returns
    -------
    numpy.ndarray
        The CDF at each point of :data:`GRID`, from 0 to exactly 1.
    """
    x = GRID
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    with np.errstate(divide="ignore"):
        log_pdf = (a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x) + log_norm
    pdf = np.nan_to_num(np.exp(log_pdf))
    cdf = np.concatenate(([0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))))
    result: FloatArray = cdf / cdf[-1]
    return result


@dataclass(frozen=True)
class CandidateModel:
    """Constants of the candidate's deviations, derived once per scenario.

    In the rare segment the candidate's score is a piecewise-linear, monotone
    function of the baseline's through the knots ``stretch_x`` -> ``stretch_y``:
    identity up to a low score, then ``stretch_x[2]`` sent to the deny
    threshold. Only borderline scores move, so the decision rates change while
    the bulk of the score distribution does not. ``miss_p`` / ``catch_p`` are the
    probabilities of turning a caught fraud into an allowed one / an allowed
    fraud into a review there. ``score_shift`` is the scenario's shift of the
    quantised scores (0: no quantisation).
    """

    stretch_x: tuple[float, float, float, float]
    stretch_y: tuple[float, float, float, float]
    miss_p: float
    catch_p: float
    score_shift: float = 0.0

    @classmethod
    def from_scenario(cls, sc: Scenario) -> CandidateModel:
        """Derive the deviations the scenario's degradation factors ask for.

        Parameters
        ----------
        sc
            The scenario.

        Returns
        -------
        CandidateModel
            The stretch knots, the miss and catch probabilities and the shift.
        """
        legit_cdf = (1.0 - RISKY_LEGIT_SHARE) * beta_cdf(*LEGIT_BETA)
        legit_cdf += RISKY_LEGIT_SHARE * beta_cdf(*RISKY_LEGIT_BETA)
        fraud_cdf = beta_cdf(*FRAUD_BETA)
        # Language is independent of amount and fraud, so the rare segment
        # has the overall score distribution.
        score_cdf = (1.0 - FRAUD_PRIOR) * legit_cdf + FRAUD_PRIOR * fraud_cdf

        knee = DENY_ABOVE
        if sc.rare_lang_deny_factor != 1.0:
            deny = 1.0 - float(np.interp(DENY_ABOVE, GRID, score_cdf))
            target = min(max(sc.rare_lang_deny_factor * deny, 1e-9), 1.0 - 1e-9)
            knee = float(np.interp(1.0 - target, score_cdf, GRID))
            knee = min(max(knee, 1e-6), 1.0 - 1e-6)

        start = min(STRETCH_FROM, 0.75 * knee)
        stretch_x = (0.0, start, knee, 1.0)
        stretch_y = (0.0, start, DENY_ABOVE, 1.0)
        # After the stretch, "allow" (score <= REVIEW_ABOVE) in the rare segment
        # means a baseline score below this.
        allow_below = float(np.interp(REVIEW_ABOVE, stretch_y, stretch_x))
        fraud_allowed = FRAUD_PRIOR * float(np.interp(allow_below, GRID, fraud_cdf))
        legit_allowed = (1.0 - FRAUD_PRIOR) * float(np.interp(allow_below, GRID, legit_cdf))
        allowed = fraud_allowed + legit_allowed
        factor = sc.fn_segment_factor
        miss_p = catch_p = 0.0
        if factor > 1.0 and fraud_allowed > 0.0:
            # Move m fraud cases into "allow": (F + m) / (A + m) = factor * F / A.
            wanted = min(factor * fraud_allowed / allowed, 1.0 - 1e-9)
            moved = (wanted * allowed - fraud_allowed) / (1.0 - wanted)
            miss_p = min(1.0, moved / max(FRAUD_PRIOR - fraud_allowed, 1e-12))
        elif factor < 1.0 and fraud_allowed > 0.0:
            # Keep a share k of allowed fraud: kF / (L + kF) = factor * F / A.
            kept = factor * legit_allowed / (allowed - factor * fraud_allowed)
            catch_p = min(1.0, max(0.0, 1.0 - kept))
        return cls(
            stretch_x=stretch_x,
            stretch_y=stretch_y,
            miss_p=miss_p,
            catch_p=catch_p,
            score_shift=sc.score_shift,
        )

    def scores(
        self,
        score: FloatArray,
        lang: IntArray,
        fraud: BoolArray,
        miss_score: FloatArray,
        deviate_u: FloatArray,
        catch_score: FloatArray,
        stretched: BoolArray | None = None,
    ) -> FloatArray:
        """Candidate scores for every request, as if the candidate had served it.

        Parameters
        ----------
        score
            The baseline's score of each request.
        lang
            Index of each request's language in ``LANGS``.
        fraud
            Whether each request is fraud.
        miss_score, deviate_u, catch_score
            The block's draws for missed fraud (a legitimate-looking score),
            for choosing which fraud deviates, and for caught fraud (a review
            score).
        stretched
            Which requests the rare segment's deny stretch acts on (the
            scenario's ``deny_window``); None: all of them.

        Returns
        -------
        numpy.ndarray
            The candidate's unrounded scores, in [0, 1].
        """
        out = score.copy()
        rare = lang == RARE_LANG_INDEX
        if self.stretch_x != self.stretch_y:
            # A monotone score change, so the decisions follow the scores.
            moved = rare if stretched is None else rare & stretched
            out[moved] = np.interp(score[moved], self.stretch_x, self.stretch_y)
        if self.miss_p > 0.0:
            missed = rare & fraud & (out > REVIEW_ABOVE) & (deviate_u < self.miss_p)
            out[missed] = miss_score[missed]
        if self.catch_p > 0.0:
            caught = rare & fraud & (out <= REVIEW_ABOVE) & (deviate_u < self.catch_p)
            out[caught] = catch_score[caught]
        if self.score_shift != 0.0:
            levels = QUANTISATION_LEVELS
            out = np.clip(np.round(out * levels) / levels + self.score_shift, 0.0, 1.0)
        return out
