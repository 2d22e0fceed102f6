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
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from detectors.distribution import DistributionShiftDetector
from detectors.rate import RateShiftDetector

__all__ = ["ALPHA_RESOLVE", "Z_RESOLVE", "DistributionRecovery", "RateRecovery", "Recovery"]

#: One-sided z of the score test that a rate is back inside its tolerance.
Z_RESOLVE = 3.0
#: Level of the confidence radii of the distribution test.
ALPHA_RESOLVE = 1e-3


class Recovery(Protocol):
    """The data since a breach, and whether they show the check back in tolerance."""

    def cleared(self) -> bool: ...

    def summary(self) -> tuple[float | None, dict[str, float]]: ...

    def state(self) -> dict[str, Any]: ...


class RateRecovery:
    """Counts since the breach of a rate check, and whether they clear it.

    Parameters
    ----------
    detector
        The breached detector: its tolerance boundaries and ``min_observations``.

    Examples
    --------
    >>> det = RateShiftDetector("bernoulli", h=5.0, max_increase=0.01, z=0.0)
    >>> det.update_reference(count=50_000, exposure=1_000_000)   # 5%: boundary 6%
    >>> rec = RateRecovery(det)
    >>> rec.add(0.0, 2000.0)                                      # 2,000 clean trials
    >>> rec.cleared()
    True

    References
    ----------
    C. R. Rao, "Large sample tests of statistical hypotheses concerning several
    parameters", Proc. Cambridge Philos. Soc. 44, 50-57, 1948 (the score test).
    """

    __slots__ = ("count", "detector", "exposure")

    def __init__(self, detector: RateShiftDetector) -> None:
        self.detector = detector
        self.count = 0.0
        self.exposure = 0.0

    def add(self, count: float, exposure: float) -> None:
        """Add candidate counts over an exposure; restart while they still show a breach."""
        self.count += count
        self.exposure += exposure
        if self._score(outside=True):
            self.count = self.exposure = 0.0

    def summary(self) -> tuple[float | None, dict[str, float]]:
        """The rate since the breach, and the counts behind it (for the resolved record)."""
        rate = self.count / self.exposure if self.exposure else None
        return rate, {"count": self.count, "exposure": self.exposure}

    def cleared(self) -> bool:
        """Whether the counts since the breach put the rate inside its tolerance, confidently."""
        if self.exposure < self.detector.min_observations:
            return False
        return self._score(outside=False)

    def _score(self, *, outside: bool) -> bool:
        n = self.exposure
        if n <= 0:
            return False
        det = self.detector
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

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "exposure": self.exposure}

    @classmethod
    def from_state(cls, detector: RateShiftDetector, state: dict[str, Any]) -> RateRecovery:
        rec = cls(detector)
        rec.count, rec.exposure = float(state["count"]), float(state["exposure"])
        return rec


class DistributionRecovery:
    """The candidate's histogram since the breach of a distribution check.

    Parameters
    ----------
    detector
        The breached detector: its distance, baseline histogram and radii.

    Examples
    --------
    >>> det = DistributionShiftDetector("tv", max_distance=0.2, n_bins=2, arl0=1e6)
    >>> det.update_reference_counts([5_000, 5_000])
    >>> rec = DistributionRecovery(det)
    >>> rec.add(np.array([1_000.0, 1_000.0]))
    >>> rec.cleared()
    True
    """

    __slots__ = ("detector", "hist")

    def __init__(self, detector: DistributionShiftDetector) -> None:
        self.detector = detector
        self.hist = np.zeros(detector.n_bins, dtype=np.float64)

    def add(self, counts: NDArray[np.float64]) -> None:
        """Add a candidate histogram; restart while it is still provably too far away."""
        self.hist += counts
        if self._bounds()[0] > self.detector.max_distance:
            self.hist[:] = 0.0

    def summary(self) -> tuple[float | None, dict[str, float]]:
        """The distance since the breach, and the observations behind it."""
        observed = self._distance() if self.hist.any() else None
        return observed, {"exposure": float(self.hist.sum())}

    def cleared(self) -> bool:
        """Whether an upper confidence bound on the distance since the breach is in tolerance."""
        if self.hist.sum() < self.detector.min_observations:
            return False
        return self._bounds()[1] <= self.detector.max_distance

    def _distance(self) -> float:
        """The plug-in distance between the histogram since the breach and the baseline's."""
        det = self.detector
        return det.distance_between(self.hist)

    def _bounds(self) -> tuple[float, float]:
        """(lower, upper) confidence bounds on the distance between the histograms."""
        det = self.detector
        n, n_ref = int(self.hist.sum()), int(det.reference_exposure)
        if n == 0 or n_ref == 0:
            return -math.inf, math.inf
        d = self._distance()
        r = det.radius(n, ALPHA_RESOLVE) + det.radius(n_ref, ALPHA_RESOLVE)
        return d - r, d + r

    def state(self) -> dict[str, Any]:
        return {"hist": self.hist.copy()}

    @classmethod
    def from_state(
        cls, detector: DistributionShiftDetector, state: dict[str, Any]
    ) -> DistributionRecovery:
        rec = cls(detector)
        rec.hist = np.asarray(state["hist"], dtype=np.float64).reshape(detector.n_bins).copy()
        return rec
