"""When a firing alert resolves: evidence since the breach that the check is back in tolerance.

A check fires when a sequential test finds, at the calibrated false-alarm
rate, that the candidate is *outside* its tolerance. It resolves only when the
candidate's data since the breach show, with confidence, that it is *inside*
again: the mirror test. Between the two the alert stays firing: that gap is the
hysteresis, so an alert does not flap while the candidate sits near the
boundary.

- Rates: the one-sided score test of ``rate >= upper boundary`` (and of
  ``rate <= lower boundary``) on the counts since the breach, rejected at
  ``z = 3``: ``(upper - p) / sqrt(upper (1 - upper) / n) > 3`` for a Bernoulli
  share (``upper / n`` as the variance for a Poisson rate). The variance is
  taken at the boundary, so a window with no events yet does not clear at once.
- Distributions: the plug-in distance between the candidate's histogram since
  the breach and the baseline's, plus both samples' confidence radii (the
  detector's own DKW / Weissman radii at level ``alpha = 0.001``), is below
  ``max_distance``.
- ``novel_tool``: never: the candidate did call the tool; a new version or an
  edited policy ends the alert.

While the evidence since the breach still shows the check *outside* tolerance
(the same tests the other way), the window restarts, so a long breach that
ends is recognised from the data after it, not diluted by the breach itself.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from detectors import DistributionShiftDetector, RateShiftDetector
from detectors.distribution import distance

__all__ = ["Z_RESOLVE", "DistributionRecovery", "RateRecovery"]

#: One-sided z of the score test that a rate is back inside its tolerance.
Z_RESOLVE = 3.0
#: Level of the confidence radii of the distribution test.
ALPHA_RESOLVE = 1e-3


class RateRecovery:
    """Counts since the breach of a rate check, and whether they clear it.

    >>> det = RateShiftDetector("bernoulli", h=5.0, max_increase=0.01, z=0.0)
    >>> det.update_reference(count=50_000, exposure=1_000_000)   # 5%: boundary 6%
    >>> rec = RateRecovery()
    >>> rec.add(np.full(2000, 0.0), np.ones(2000), det)           # 2,000 clean trials
    >>> rec.cleared(det)
    True
    """

    __slots__ = ("count", "exposure")

    def __init__(self) -> None:
        self.count = 0.0
        self.exposure = 0.0

    def add(self, counts: NDArray[np.float64], exposures: NDArray[np.float64], det: object) -> None:
        """Add candidate (count, exposure) pairs; restart while they still show a breach."""
        self.count += float(np.sum(counts))
        self.exposure += float(np.sum(exposures))
        if isinstance(det, RateShiftDetector) and self._score(det, outside=True):
            self.count = self.exposure = 0.0

    def summary(self, det: object) -> tuple[float | None, dict[str, float]]:
        """The rate since the breach, and the counts behind it (for the resolved record)."""
        rate = self.count / self.exposure if self.exposure else None
        return rate, {"count": self.count, "exposure": self.exposure}

    def cleared(self, det: object) -> bool:
        """Whether the counts since the breach put the rate inside its tolerance, confidently."""
        if not isinstance(det, RateShiftDetector) or self.exposure < det.min_observations:
            return False
        return self._score(det, outside=False)

    def _score(self, det: RateShiftDetector, *, outside: bool) -> bool:
        n = self.exposure
        if n <= 0:
            return False
        p = self.count / n
        up, down = det.boundaries
        tests = []
        for bound, sign in ((up, 1.0), (down, -1.0)):
            if bound is None:
                continue
            var = bound * (1.0 - bound) if det.family == "bernoulli" else bound
            z = sign * (bound - p) / math.sqrt(max(var, 1e-300) / n)
            tests.append(z < -Z_RESOLVE if outside else z > Z_RESOLVE)
        if not tests:
            return False
        return any(tests) if outside else all(tests)


class DistributionRecovery:
    """The candidate's histogram since the breach of a distribution check."""

    __slots__ = ("hist",)

    def __init__(self, n_bins: int) -> None:
        self.hist = np.zeros(n_bins, dtype=np.float64)

    def add(self, counts: NDArray[np.float64], det: object) -> None:
        """Add a candidate histogram; restart while it is still provably too far away."""
        self.hist += counts
        if isinstance(det, DistributionShiftDetector) and self._bounds(det)[0] > det.max_distance:
            self.hist[:] = 0.0

    def summary(self, det: object) -> tuple[float | None, dict[str, float]]:
        """The distance since the breach, and the observations behind it."""
        observed = self._distance(det) if isinstance(det, DistributionShiftDetector) else None
        return observed, {"exposure": float(self.hist.sum())}

    def cleared(self, det: object) -> bool:
        """Whether an upper confidence bound on the distance since the breach is in tolerance."""
        if not isinstance(det, DistributionShiftDetector):
            return False
        if self.hist.sum() < det.min_observations:
            return False
        return self._bounds(det)[1] <= det.max_distance

    def _distance(self, det: DistributionShiftDetector) -> float:
        """The plug-in distance between the histogram since the breach and the baseline's."""
        return distance(det.distance, self.hist, det.reference_counts.astype(np.float64))

    def _bounds(self, det: DistributionShiftDetector) -> tuple[float, float]:
        """(lower, upper) confidence bounds on the distance between the histograms."""
        n, n_ref = int(self.hist.sum()), int(det.reference_exposure)
        if n == 0 or n_ref == 0:
            return -math.inf, math.inf
        d = self._distance(det)
        r = det.radius(n, ALPHA_RESOLVE) + det.radius(n_ref, ALPHA_RESOLVE)
        return d - r, d + r
