"""Sequential test that a candidate's rate has left a tolerance around the baseline's rate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors.base import Detector, Evidence
from detectors.boundary import (
    arm_coefficients,
    arm_thresholds,
    check_test,
    check_tolerance,
    tolerance_boundaries,
)
from detectors.calibration import DEFAULT_SHIFTS, Family

__all__ = ["RateShiftDetector"]


class RateShiftDetector(Detector):
    """Mixture CUSUM for a Bernoulli or Poisson rate moving beyond a tolerance.

    The candidate's observations are tested against the *boundary* of the
    tolerance region around the baseline rate ``r``: ``r + max_increase`` (or
    ``r * (1 + max_relative_change)``) upwards and ``r - max_decrease`` (or
    ``r * (1 - max_relative_change)``) downwards. A shift that stays inside the
    tolerance therefore drifts every CUSUM down, and only a shift beyond it
    accumulates evidence. The post-change rate is unknown, so one CUSUM runs
    per alternative in ``shifts``, each with its own threshold chosen so that
    every arm has the same in-control run length (a CUSUM multi-chart, Han et
    al. 2007): with one common threshold, as in a discretised GLR CUSUM
    (Lorden 1971), the large-shift arms would set it and slow the small ones.

    The baseline rate is estimated from the baseline's own stream
    (:meth:`update_reference`), so the false-alarm promise is made
    *conditionally* on the baseline's sample: the boundaries tested are put
    around exact one-sided confidence bounds of the baseline rate
    (Clopper-Pearson, Garwood; :func:`detectors.boundary.tolerance_boundaries`),
    so that with probability ``baseline_confidence`` over that sample they lie
    at or beyond the true boundaries, where the in-control run length is at
    least ``arl0`` (Jensen et al. 2006; Gandy & Kvaloy 2013). An uncertain
    baseline delays an alarm rather than causing a false one.

    Each candidate observation is a pair (count, exposure): a Bernoulli trial
    is ``(x, 1)`` with ``x`` in {0, 1}; for a Poisson rate per inference an
    inference is ``(0, 1)`` and a matching action ``(1, 0)``. The
    log-likelihood ratio of one observation is ``count * a - exposure * b``.

    Parameters
    ----------
    family
        ``"bernoulli"`` (a share of inferences) or ``"poisson"`` (events per inference).
    h
        One CUSUM threshold for every arm, or None to calibrate per-arm
        thresholds for ``arl0``: when the baseline first has enough data,
        :meth:`calibrate` takes them from
        :func:`detectors.calibration.rate_thresholds` at the tolerance boundary
        (the worst in-control case), each direction getting half the
        false-alarm budget; then they are fixed.
    arl0
        Target in-control run length, in candidate observations (with ``h=None``).
    max_increase, max_decrease
        Absolute tolerances on the rate (either or both).
    max_relative_change
        Two-sided tolerance relative to the baseline rate (instead of the two above).
    shifts
        Alternatives, as multiples (up) or divisors (down) of the boundary rate
        (:data:`~detectors.calibration.NEAR_BOUNDARY_SHIFTS` adds arms just past it).
    min_reference
        Baseline exposure needed before the test starts (``inconclusive`` until then).
    min_observations
        Candidate exposure needed before the state can be ``ok``.
    baseline_confidence
        Probability, over the baseline's sample, that the tested boundaries lie
        at or beyond the true ones (split evenly between two sides).
    z
        None (default), or the normal approximation of releases before 0.3: the
        boundary moved out by ``z`` standard errors instead of to a confidence
        bound (detectors restored from their checkpoints carry ``z = 2``).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> det = RateShiftDetector("bernoulli", arl0=1e6, max_relative_change=0.25)
    >>> det.update_reference(count=int((rng.random(50_000) < 0.08).sum()), exposure=50_000)
    >>> det.update_many(rng.random(20_000) < 0.04)   # escalations halved
    >>> det.drift_detected, det.alarm_index < 5_000
    (True, True)

    References
    ----------
    E. S. Page, "Continuous inspection schemes", Biometrika 41, 100-115, 1954.
    G. Lorden, "Procedures for reacting to a change in distribution",
    Ann. Math. Statist. 42(6), 1897-1908, 1971 (eq. 2.1, the CUSUM as a
    maximum of log-likelihood ratios; Theorem 2 for ARL0 >= exp(h)).
    D. Han, F. Tsung, X. Hu and K. Wang, "CUSUM and EWMA multi-charts for
    detecting a range of mean shifts", Statistica Sinica 17, 1139-1164, 2007.
    W. A. Jensen, L. A. Jones-Farmer, C. W. Champ and W. H. Woodall, "Effects of
    parameter estimation on control chart properties: a literature review",
    J. Quality Technology 38(4), 349-364, 2006.
    A. Gandy and J. T. Kvaloy, "Guaranteed conditional performance of control
    charts via bootstrap methods", Scand. J. Statistics 40(4), 647-668, 2013.
    """

    state_keys: ClassVar[tuple[str, ...]] = (
        "ref_count",
        "ref_exposure",
        "count",
        "exposure",
        "tested",
        "n",
        "cusum",
        "detected",
        "alarm_index",
        "thresholds",
    )
    param_keys: ClassVar[tuple[str, ...]] = (
        "family",
        "h",
        "arl0",
        "max_increase",
        "max_decrease",
        "max_relative_change",
        "shifts",
        "min_reference",
        "min_observations",
        "baseline_confidence",
        "z",
    )

    def __init__(
        self,
        family: Family,
        h: float | None = None,
        *,
        arl0: float | None = None,
        max_increase: float | None = None,
        max_decrease: float | None = None,
        max_relative_change: float | None = None,
        shifts: Sequence[float] = DEFAULT_SHIFTS,
        min_reference: float = 1000.0,
        min_observations: float = 200.0,
        baseline_confidence: float = 0.9,
        z: float | None = None,
    ) -> None:
        check_test(family, h, arl0)
        check_tolerance(max_increase, max_decrease, max_relative_change, shifts)
        if min_reference < 0 or min_observations < 0 or (z is not None and z < 0):
            raise ValueError("min_reference, min_observations and z must be >= 0")
        if not 0.5 <= baseline_confidence < 1:
            raise ValueError(f"baseline_confidence must be in [0.5, 1), got {baseline_confidence}")
        self.family: Family = family
        self.h = float(h) if h is not None else None
        self.arl0 = float(arl0) if arl0 is not None else None
        self.max_increase = max_increase
        self.max_decrease = max_decrease
        self.max_relative_change = max_relative_change
        self.shifts = tuple(float(s) for s in shifts)
        self.min_reference = float(min_reference)
        self.min_observations = float(min_observations)
        self.baseline_confidence = float(baseline_confidence)
        self.z = float(z) if z is not None else None
        self._ref_count = 0.0
        self._ref_exposure = 0.0
        self._count = 0.0
        self._exposure = 0.0
        self._tested = 0.0  # candidate exposure fed while the test was running
        self._n = 0
        # One CUSUM per (direction, shift): the first half tests increases.
        self._cusum = np.zeros(2 * len(self.shifts))
        self._detected = False
        self._alarm_index = -1
        # Per-arm thresholds, nan until calibrated; inf for an arm without a boundary.
        self._thresholds = np.full(2 * len(self.shifts), self.h if self.h is not None else np.nan)
        self._coef: (
            tuple[NDArray[np.float64], NDArray[np.float64], float | None, float | None] | None
        ) = None

    # -- reference -----------------------------------------------------------------
    def update_reference(self, count: float, exposure: float) -> None:
        """Add baseline observations: ``count`` events over ``exposure`` inferences."""
        if count < 0 or exposure < 0:
            raise ValueError("count and exposure must be >= 0")
        self._ref_count += float(count)
        self._ref_exposure += float(exposure)
        self._coef = None
        if self.reference_ready and not self.calibrated:
            self.calibrate()

    @property
    def reference_rate(self) -> float:
        """The baseline's rate so far (``nan`` before any baseline exposure)."""
        return self._ref_count / self._ref_exposure if self._ref_exposure else math.nan

    @property
    def reference_exposure(self) -> float:
        """Baseline exposure (inferences) seen so far."""
        return self._ref_exposure

    @property
    def exposure(self) -> float:
        """Candidate exposure (Bernoulli trials or inferences) seen so far."""
        return self._exposure

    @property
    def observed_rate(self) -> float:
        """The candidate's rate so far (``nan`` before any candidate exposure)."""
        return self._count / self._exposure if self._exposure else math.nan

    @property
    def boundaries(self) -> tuple[float | None, float | None]:
        """The tolerance boundaries tested now, (upper, lower); None where there is none."""
        _, _, up, down = self._coefficients()
        return up, down

    @property
    def reference_ready(self) -> bool:
        """Whether the baseline has shown the ``min_reference`` exposure the test needs."""
        return self._ref_exposure >= self.min_reference and self._ref_exposure > 0

    @property
    def calibrated(self) -> bool:
        """Whether every arm has its threshold (given as ``h``, or from :meth:`calibrate`)."""
        return not bool(np.isnan(self._thresholds).any())

    @property
    def ready(self) -> bool:
        """Whether the baseline has enough data and the thresholds are set: the test runs."""
        return self.reference_ready and self.calibrated

    def calibrate(self) -> None:
        """Fix the per-arm thresholds for ``arl0`` at the current tolerance boundaries.

        Taken once, when the baseline first has ``min_reference`` exposure
        (:meth:`update_reference` calls it then); never inside :meth:`update`.
        Does nothing when the thresholds are already set.
        """
        if self.calibrated:
            return
        if not self.reference_ready:
            raise ValueError("calibrate() needs min_reference baseline exposure first")
        if self.arl0 is None:  # unreachable: with h the thresholds are set in __init__
            raise ValueError("no threshold h and no arl0 to calibrate one")
        _, _, up, down = self._coefficients()
        self._thresholds = arm_thresholds(self.family, (up, down), self.shifts, self.arl0)

    @property
    def conclusive(self) -> bool:
        """Whether both sides have enough data for ``ok`` to mean something."""
        return self._detected or (self.ready and self._tested >= self.min_observations)

    def _coefficients(
        self,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], float | None, float | None]:
        """Per arm (a, b) and the boundaries (up, down) they test: a function of the
        baseline's totals only, so cached until they change."""
        if self._coef is None:
            boundaries = tolerance_boundaries(
                self.family,
                self._ref_count,
                self._ref_exposure,
                confidence=self.baseline_confidence,
                z=self.z,
                max_increase=self.max_increase,
                max_decrease=self.max_decrease,
                max_relative_change=self.max_relative_change,
            )
            a, b = arm_coefficients(self.family, boundaries, self.shifts)
            self._coef = (a, b, *boundaries)
        return self._coef

    # -- candidate -----------------------------------------------------------------
    def _observe(self, n: int, count: float, exposure: float) -> bool:
        """Count ``n`` observations; whether the test runs on them (ready, not yet alarmed)."""
        self._n += n
        self._count += count
        self._exposure += exposure
        if self._detected or not self.ready:
            return False
        self._tested += exposure
        return True

    def update(self, x: Any) -> None:
        """Feed one Bernoulli outcome ``x`` or one ``(count, exposure)`` pair."""
        count, exposure = (float(x[0]), float(x[1])) if isinstance(x, tuple) else (float(x), 1.0)
        if count < 0 or exposure < 0:
            raise ValueError("count and exposure must be >= 0")
        # One observation: the Lindley step S = max(0, S + z) of every arm at once, the
        # same arithmetic as update_many's on a batch of one, without its array set-up.
        if not self._observe(1, count, exposure):
            return
        a, b, _, _ = self._coefficients()
        live = np.isfinite(b)
        if not live.any():
            return
        z = count * a[live] - exposure * b[live]
        s = z - np.minimum(z, -self._cusum[live])
        self._cusum[live] = s
        if (s > self._thresholds[live]).any():
            self._detected = True
            self._alarm_index = self._n

    def update_many(self, xs: ArrayLike, exposures: ArrayLike | None = None) -> None:
        """Feed candidate observations in order.

        ``xs`` are counts; ``exposures`` default to 1 each (Bernoulli trials or
        one inference each).
        """
        counts = np.asarray(xs, dtype=np.float64).reshape(-1)
        if counts.size == 0:
            return
        expo = (
            np.ones_like(counts)
            if exposures is None
            else np.asarray(exposures, dtype=np.float64).reshape(-1)
        )
        if expo.shape != counts.shape:
            raise ValueError("xs and exposures must have the same length")
        start = self._n
        if not self._observe(counts.size, float(counts.sum()), float(expo.sum())):
            return
        a, b, _, _ = self._coefficients()
        # Arms without a valid boundary (e.g. no decrease tolerance) never accumulate: skip them.
        live = np.flatnonzero(np.isfinite(b))
        if live.size == 0:
            return
        z = counts[:, None] * a[live] - expo[:, None] * b[live]
        # Lindley recursion S_n = max(0, S_{n-1} + z_n), vectorised as
        # S_n = C_n - min(-S_0, min_{k<=n} C_k) with C the running sum of z.
        c = np.cumsum(z, axis=0)
        s = c - np.minimum(np.minimum.accumulate(c, axis=0), -self._cusum[live])
        over = np.flatnonzero((s > self._thresholds[live]).any(axis=1))
        self._cusum[live] = s[over[0]] if over.size else s[-1]
        if over.size:
            self._detected = True
            self._alarm_index = start + int(over[0]) + 1

    # -- read-only results ---------------------------------------------------------
    @property
    def drift_detected(self) -> bool:
        return self._detected

    @property
    def threshold(self) -> float:
        """The lowest arm threshold (nan until calibrated), which ``statistic`` is compared with."""
        finite = self._thresholds[np.isfinite(self._thresholds)]
        return float(finite.min()) if finite.size else math.nan

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Each arm's threshold: increase arms first, then decrease arms (inf: no such arm)."""
        return tuple(float(t) for t in self._thresholds)

    @property
    def statistic(self) -> float:
        """The evidence in units of the lowest threshold: ``max_i (S_i - h_i) + min_i h_i``.

        The alarm is raised when it exceeds :attr:`threshold`; before
        calibration it is the largest CUSUM.
        """
        arms = np.isfinite(self._thresholds)
        if not arms.any():
            return float(self._cusum.max())
        return float((self._cusum[arms] - self._thresholds[arms]).max()) + self.threshold

    @property
    def alarm_index(self) -> int:
        """How many candidate observations had been fed when the alarm was raised (-1: none)."""
        return self._alarm_index

    @property
    def observations(self) -> int:
        """Candidate observations fed so far."""
        return self._n

    def reset(self) -> None:
        """Clear the candidate's evidence (keeps the baseline estimate and the thresholds)."""
        self._cusum[:] = 0.0
        self._count = self._exposure = self._tested = 0.0
        self._n = 0
        self._detected = False
        self._alarm_index = -1

    def evidence(self) -> Evidence:
        """The candidate's and the baseline's rates and exposures, and this detector's ARL0."""
        details: dict[str, Any] = {"detector_arl0": self.arl0} if self.arl0 is not None else {}
        return Evidence(
            self.observed_rate,
            self.reference_rate,
            self._ref_exposure,
            self._exposure,
            details,
        )
