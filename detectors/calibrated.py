"""A score's probability of a positive label, learned by isotonic regression on binned scores.

The expected false-negative rate (``expected_false_negative_rate``) needs
``P(positive | score)`` for a negative decision. :class:`ScoreCalibration`
counts, per score bin, labelled decisions and positives among them; its
:meth:`~ScoreCalibration.fit` is the weighted isotonic (non-decreasing)
regression of the bins' positive shares, by pool-adjacent-violators. The bins
are fixed and equal-width in the logit of the score (:func:`score_bins`):
real classifier scores pile up near 0 and 1, where equal-width bins of the
score would lump them together, and fixed edges need no reference sample
before counting starts.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["N_SCORE_BINS", "ScoreCalibration", "isotonic_fit", "score_bins"]

#: Score bins of a calibration: equal-width in logit(score) over [-LOGIT_RANGE, LOGIT_RANGE].
N_SCORE_BINS: Final = 64
#: Scores beyond this logit (about 3.4e-4 and 1 - 3.4e-4) share the end bins.
LOGIT_RANGE: Final = 8.0


def score_bins(scores: ArrayLike) -> NDArray[np.int64]:
    """The bin of each score in [0, 1]: equal-width in logit, the ends open.

    >>> score_bins([0.0, 0.5, 1.0]).tolist()
    [0, 32, 63]
    """
    s = np.clip(np.asarray(scores, dtype=np.float64), 1e-12, 1 - 1e-12)
    logit = np.log(s) - np.log1p(-s)
    width = 2 * LOGIT_RANGE / N_SCORE_BINS
    return np.clip(np.floor((logit + LOGIT_RANGE) / width), 0, N_SCORE_BINS - 1).astype(np.int64)


def score_bin(score: float) -> int:
    """The bin of one score (as :func:`score_bins`, without the array set-up)."""
    s = min(max(score, 1e-12), 1 - 1e-12)
    logit = math.log(s) - math.log1p(-s)
    width = 2 * LOGIT_RANGE / N_SCORE_BINS
    return min(max(math.floor((logit + LOGIT_RANGE) / width), 0), N_SCORE_BINS - 1)


def isotonic_fit(positives: ArrayLike, totals: ArrayLike) -> NDArray[np.float64]:
    """The non-decreasing shares closest to ``positives / totals`` in weighted least squares.

    Pool-adjacent-violators: adjacent bins whose shares decrease are pooled
    into one block with their weighted mean, until the blocks increase.
    Bins without data take the share of the nearest bin below (or, before the
    first bin with data, above): a step function, flat beyond the data.

    Parameters
    ----------
    positives, totals
        Per bin, in score order: positive labels and labelled decisions.

    Examples
    --------
    >>> isotonic_fit([0, 3, 1, 5], [10, 10, 10, 10]).round(2).tolist()
    [0.0, 0.2, 0.2, 0.5]

    References
    ----------
    M. Ayer, H. D. Brunk, G. M. Ewing, W. T. Reid and E. Silverman, "An
    empirical distribution function for sampling with incomplete information",
    Ann. Math. Statist. 26(4), 641-647, 1955 (the pool-adjacent-violators algorithm).
    B. Zadrozny and C. Elkan, "Transforming classifier scores into accurate
    multiclass probability estimates", KDD 2002 (isotonic calibration of scores, section 3).
    """
    pos = np.asarray(positives, dtype=np.float64)
    tot = np.asarray(totals, dtype=np.float64)
    if pos.shape != tot.shape or pos.ndim != 1:
        raise ValueError("positives and totals must be 1-d arrays of the same length")
    if (pos < 0).any() or (pos > tot).any():
        raise ValueError("need 0 <= positives <= totals in every bin")
    used = np.flatnonzero(tot > 0)
    out = np.zeros(len(tot))
    if not len(used):
        return out
    # Blocks as a stack of (weighted sum, weight, bins in block).
    sums: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for i in used.tolist():
        sums.append(float(pos[i]))
        weights.append(float(tot[i]))
        sizes.append(1)
        while len(sums) > 1 and sums[-2] / weights[-2] > sums[-1] / weights[-1]:
            s, w, n = sums.pop(), weights.pop(), sizes.pop()
            sums[-1] += s
            weights[-1] += w
            sizes[-1] += n
    fitted = np.repeat([s / w for s, w in zip(sums, weights, strict=True)], sizes)
    # Spread to the empty bins: each takes the fitted share of the last used bin at or below.
    at = np.searchsorted(used, np.arange(len(tot)), side="right") - 1
    out = fitted[np.maximum(at, 0)]
    return np.asarray(out, dtype=np.float64)


class ScoreCalibration:
    """Labelled decisions and positive labels per score bin, and their isotonic fit.

    Parameters
    ----------
    min_positives
        Positive labels needed before :attr:`ready`: below that the fit is too
        coarse to lean on.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.random(20_000)
    >>> labels = rng.random(20_000) < scores ** 2   # P(positive | s) = s^2
    >>> cal = ScoreCalibration()
    >>> cal.add(score_bins(scores), labels)
    >>> cal.ready, round(float(cal.fit()[score_bin(0.7)]), 1)
    (True, 0.5)
    """

    def __init__(self, min_positives: int = 50) -> None:
        if min_positives < 1:
            raise ValueError(f"min_positives must be >= 1, got {min_positives}")
        self.min_positives = int(min_positives)
        self._totals = np.zeros(N_SCORE_BINS)
        self._positives = np.zeros(N_SCORE_BINS)

    def add(self, bins: ArrayLike, positive: ArrayLike) -> None:
        """Count labelled decisions: their score bins and whether each was labelled positive."""
        b = np.asarray(bins, dtype=np.int64).reshape(-1)
        p = np.asarray(positive, dtype=np.float64).reshape(-1)
        if b.shape != p.shape:
            raise ValueError("bins and positive must have the same length")
        self.add_counts(
            np.bincount(b, minlength=N_SCORE_BINS), np.bincount(b, p, minlength=N_SCORE_BINS)
        )

    def add_counts(self, totals: ArrayLike, positives: ArrayLike) -> None:
        """Add per-bin counts of labelled decisions and of positives among them."""
        t = np.asarray(totals, dtype=np.float64)
        p = np.asarray(positives, dtype=np.float64)
        if t.shape != (N_SCORE_BINS,) or p.shape != (N_SCORE_BINS,):
            raise ValueError(f"need {N_SCORE_BINS} bins of totals and of positives")
        if (t < 0).any() or (p < 0).any():
            raise ValueError("counts must be >= 0")
        self._totals += t
        # A positive label whose decision was not counted (joined late) adds a decision too.
        self._positives += p
        self._totals = np.maximum(self._totals, self._positives)

    @property
    def positives(self) -> float:
        """Positive labels counted."""
        return float(self._positives.sum())

    @property
    def decisions(self) -> float:
        """Labelled decisions counted."""
        return float(self._totals.sum())

    @property
    def ready(self) -> bool:
        """Whether ``min_positives`` positive labels were counted."""
        return self.positives >= self.min_positives

    def fit(self) -> NDArray[np.float64]:
        """``P(positive | score bin)``, non-decreasing in the score (see :func:`isotonic_fit`)."""
        return isotonic_fit(self._positives, self._totals)

    def state(self) -> dict[str, Any]:
        """Plain data: the per-bin counts."""
        return {
            "min_positives": self.min_positives,
            "totals": self._totals.copy(),
            "positives": self._positives.copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ScoreCalibration:
        """The calibration :meth:`state` was taken of."""
        cal = cls(int(state["min_positives"]))
        cal.add_counts(
            np.asarray(state["totals"], dtype=np.float64),
            np.asarray(state["positives"], dtype=np.float64),
        )
        return cal
