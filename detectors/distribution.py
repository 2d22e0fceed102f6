"""Sequential two-sample test that a distance between binned distributions exceeds a tolerance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors.base import Detector, Evidence
from detectors.radii import dkw_radius, js_radius, tv_radius

__all__ = ["Distance", "DistributionShiftDetector", "distance"]

Distance = Literal["ks", "js", "wasserstein", "tv"]
_DISTANCES = ("ks", "js", "wasserstein", "tv")


def distance(
    kind: Distance,
    p: NDArray[np.float64],
    q: NDArray[np.float64],
    widths: Sequence[float] | NDArray[np.float64] | None = None,
) -> float:
    """Distance between two histograms over the same ordered bins (normalised inside).

    Parameters
    ----------
    kind
        ``ks``: largest gap between the CDFs at the bin edges; ``wasserstein``:
        the area between the CDFs with the support scaled to [0, 1]; ``js``:
        Jensen-Shannon distance, base 2; ``tv``: total variation (half the L1 norm).
    p, q
        Counts per bin.
    widths
        Bin widths, for ``wasserstein`` only (scaled to sum to 1 inside);
        ``None``: equal widths. The gap between the CDFs after bin ``i`` is
        taken over bin ``i``'s width (exact for equal-width bins, as before).

    Returns
    -------
    float
        The distance, in [0, 1].

    Examples
    --------
    >>> round(distance("tv", np.array([1., 0.]), np.array([1., 1.])), 3)
    0.5
    >>> p, q = np.array([1., 0., 0.]), np.array([0., 0., 1.])
    >>> round(distance("wasserstein", p, q), 3), distance("wasserstein", p, q, [0.5, 0.5, 0.])
    (0.667, 1.0)
    """
    p = p / p.sum()
    q = q / q.sum()
    if kind == "tv":
        return float(0.5 * np.abs(p - q).sum())
    if kind == "js":
        m = 0.5 * (p + q)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
            kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
        return float(math.sqrt(max(0.0, 0.5 * (kl_p + kl_q))))
    gap = np.abs(np.cumsum(p) - np.cumsum(q))
    if kind == "ks":
        return float(gap.max())
    if widths is None:
        # Bins of equal width 1/k over [0, 1]: the area between the CDFs.
        return float(gap.sum() / len(p))
    w = np.asarray(widths, dtype=np.float64)
    return float((gap * w).sum() / w.sum())


class DistributionShiftDetector(Detector):
    """Fires when the candidate's distribution is provably further than ``max_distance`` away.

    Candidate and baseline observations are bin indices. At evaluation the
    detector computes the plug-in distance between the two histograms and
    subtracts a confidence radius for each sample, valid uniformly over time;
    the ``statistic`` is that lower confidence bound on the true distance, and
    the alarm is raised when it exceeds ``max_distance`` (the ``threshold``).
    A candidate whose distance stays within the tolerance therefore alarms
    only with the calibrated probability.

    Radii. For ``ks`` and ``wasserstein`` the Dvoretzky-Kiefer-Wolfowitz
    inequality with Massart's constant bounds the CDF error of ``n``
    observations: ``P(sup |F_n - F| > e) <= 2 exp(-2 n e^2)``; the
    Wasserstein-1 distance on [0, 1] is at most that sup. For ``tv`` the L1
    deviation bound of Weissman et al. (2003) gives
    ``P(TV(p_n, p) >= e) <= (2^k - 2) exp(-2 n e^2)`` for ``k`` bins. For
    the Jensen-Shannon distance ``JSD_bits(p_n, p) <= KL_nats(p_n || p) / 2``
    (an f-divergence comparison) and the relative entropy of an empirical
    distribution concentrates as a Gamma(``k - 1``, ``n``) variable (Agrawal
    2020): the radius ``sqrt(e / 2)``, with ``e`` the KL radius, shrinks as
    ``sqrt(k log(n) / n)`` (:func:`detectors.radii.js_radius` has the
    derivation; in 0.2.0 it was the square root of the TV radius, ``JS <=
    sqrt(TV)``, Lin 1991, which shrinks as ``(k / n)^(1/4)``). Each distance
    is a metric, so the triangle inequality gives
    ``D >= D_hat - r_candidate - r_baseline``. The radii assume independent
    observations within each sample and bins fixed before them.

    Time-uniform validity. Evaluations happen only when the candidate count
    passes a point of a fixed grid: ``evaluations`` points per doubling epoch
    ``[2^j, 2^(j+1))``. Epoch ``j`` is given a false-alarm probability of
    ``2^j / arl0`` (split evenly over its points and the two samples), so the
    probability of a false alarm within the first ``n`` candidate
    observations is at most about ``2 n / arl0`` — the same order as a CUSUM
    with that ARL0 (``n / arl0``, Lorden 1971). This is the stitching idea of
    Howard et al. (2021).

    Parameters
    ----------
    distance
        ``"ks"``, ``"js"``, ``"wasserstein"`` (ordered bins) or ``"tv"`` (categories).
    max_distance
        Tolerance: the distance the candidate may be from the baseline.
    n_bins
        Number of bins (or categories, including any ``other``).
    arl0
        Calibration target for this detector (its share of the model's budget).
    evaluations
        Evaluation points per doubling of the candidate count.
    min_reference, min_observations
        Baseline and candidate counts before the state can be conclusive.
    widths
        Bin widths for ``wasserstein`` (bins at quantiles are not equally
        wide); ``None``: equal widths over [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> det = DistributionShiftDetector("ks", max_distance=0.1, n_bins=50, arl0=1e6)
    >>> det.update_reference(np.minimum((rng.beta(2, 5, 20_000) * 50).astype(int), 49))
    >>> det.update_many(np.minimum((rng.beta(3, 4, 5_000) * 50).astype(int), 49))
    >>> det.drift_detected, det.statistic > 0.1
    (True, True)

    References
    ----------
    P. Massart, "The tight constant in the Dvoretzky-Kiefer-Wolfowitz
    inequality", Ann. Probab. 18(3), 1269-1283, 1990.
    T. Weissman, E. Ordentlich, G. Seroussi, S. Verdu, M. J. Weinberger,
    "Inequalities for the L1 deviation of the empirical distribution",
    HP Labs HPL-2003-97, 2003 (Theorem 2.1).
    R. Agrawal, "Finite-sample concentration of the multinomial in relative
    entropy", IEEE Trans. Inf. Theory 66(10), 6297-6302, 2020.
    D. M. Endres, J. E. Schindelin, "A new metric for probability
    distributions", IEEE Trans. Inf. Theory 49(7), 1858-1860, 2003.
    S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform,
    nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2),
    1055-1080, 2021 (stitching, section 3).
    """

    state_keys: ClassVar[tuple[str, ...]] = (
        "ref",
        "cand",
        "next_eval",
        "detected",
        "alarm_index",
        "last",
        "evaluated",
    )
    param_keys: ClassVar[tuple[str, ...]] = (
        "distance",
        "max_distance",
        "n_bins",
        "arl0",
        "evaluations",
        "min_reference",
        "min_observations",
        "widths",
    )

    def __init__(
        self,
        distance: Distance,
        max_distance: float,
        n_bins: int,
        arl0: float,
        *,
        evaluations: int = 16,
        min_reference: int = 500,
        min_observations: int = 200,
        widths: Sequence[float] | None = None,
    ) -> None:
        if distance not in _DISTANCES:
            raise ValueError(f"distance must be one of {_DISTANCES}, got {distance!r}")
        if not 0 < max_distance <= 1:
            raise ValueError(f"max_distance must be in (0, 1], got {max_distance}")
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        if not arl0 > 1:
            raise ValueError(f"arl0 must be > 1, got {arl0}")
        if evaluations < 1 or min_reference < 1 or min_observations < 1:
            raise ValueError("evaluations, min_reference and min_observations must be >= 1")
        if widths is not None and (len(widths) != n_bins or min(widths) < 0 or not sum(widths) > 0):
            raise ValueError(f"widths must be {n_bins} non-negative numbers with a positive sum")
        self.distance: Distance = distance
        self.widths = None if widths is None else [float(w) for w in widths]
        self.max_distance = float(max_distance)
        self.n_bins = int(n_bins)
        self.arl0 = float(arl0)
        self.evaluations = int(evaluations)
        self.min_reference = int(min_reference)
        self.min_observations = int(min_observations)
        self._ref = np.zeros(self.n_bins, dtype=np.int64)
        self._cand = np.zeros(self.n_bins, dtype=np.int64)
        self._next_eval = self.min_observations
        self._detected = False
        self._alarm_index = -1
        self._last = 0.0  # the latest lower confidence bound
        self._evaluated = False

    # -- calibration (a function of counts only; never learned from data) -----------
    def _alpha(self, n: int) -> float:
        """False-alarm probability spent at one evaluation with ``n`` candidate observations."""
        epoch_start = 1 << max(0, n.bit_length() - 1)
        return min(1.0, epoch_start / self.arl0) / (2 * self.evaluations)

    def radius(self, n: int, alpha: float) -> float:
        """Confidence radius of a sample of ``n`` for this distance at level ``alpha``."""
        if self.distance in ("ks", "wasserstein"):
            return dkw_radius(n, alpha)
        if self.distance == "js":
            return js_radius(n, self.n_bins, alpha)
        return tv_radius(n, self.n_bins, alpha)

    def _grid_after(self, n: int) -> int:
        """The first evaluation point strictly after candidate count ``n``."""
        epoch = 1 << max(0, n.bit_length() - 1)
        step = max(1, epoch // self.evaluations)
        return max(self.min_observations, (n // step + 1) * step)

    # -- updates -------------------------------------------------------------------
    def update_reference(self, bins: ArrayLike) -> None:
        """Add baseline observations (bin indices)."""
        self._ref += np.bincount(self._check(bins), minlength=self.n_bins)

    def update_reference_counts(self, counts: ArrayLike) -> None:
        """Add a baseline histogram (counts per bin)."""
        self._ref += self._check_counts(counts)

    def update(self, x: Any) -> None:
        """Add one candidate observation (a bin index)."""
        self.update_many([x])

    def update_many(self, xs: ArrayLike) -> None:
        """Add candidate observations (bin indices) in order.

        The batch is cut at the evaluation grid, so the result does not depend
        on how observations are split into calls.
        """
        bins = self._check(xs)
        start = 0
        while start < bins.size:
            if self._detected:
                self._cand += np.bincount(bins[start:], minlength=self.n_bins)
                return
            n = int(self._cand.sum())
            stop = min(bins.size, start + max(1, self._next_eval - n))
            self.update_counts(np.bincount(bins[start:stop], minlength=self.n_bins))
            start = stop

    def update_counts(self, counts: ArrayLike) -> None:
        """Add a candidate histogram, then evaluate if a grid point was passed."""
        self._cand += self._check_counts(counts)
        n = int(self._cand.sum())
        if self._detected or n < self._next_eval:
            return
        self._next_eval = self._grid_after(n)
        n_ref = int(self._ref.sum())
        if n_ref < self.min_reference:
            return
        alpha = self._alpha(n)
        d = self.distance_between(self._cand.astype(np.float64))
        self._last = d - self.radius(n, alpha) - self.radius(n_ref, alpha)
        self._evaluated = True
        if self._last > self.max_distance:
            self._detected = True
            self._alarm_index = n

    def _check(self, xs: ArrayLike) -> NDArray[np.int64]:
        bins = np.asarray(xs, dtype=np.int64).reshape(-1)
        if bins.size and (bins.min() < 0 or bins.max() >= self.n_bins):
            raise ValueError(f"bin indices must be in [0, {self.n_bins})")
        return bins

    def _check_counts(self, counts: ArrayLike) -> NDArray[np.int64]:
        arr = np.asarray(counts, dtype=np.int64).reshape(-1)
        if arr.shape != (self.n_bins,) or (arr < 0).any():
            raise ValueError(f"counts must be {self.n_bins} non-negative integers")
        return arr

    # -- read-only results ---------------------------------------------------------
    @property
    def drift_detected(self) -> bool:
        return self._detected

    @property
    def statistic(self) -> float:
        """The latest lower confidence bound on the distance (0 before the first evaluation)."""
        return float(self._last)

    @property
    def threshold(self) -> float:
        return self.max_distance

    @property
    def alarm_index(self) -> int:
        """Candidate observations seen when the alarm was raised (-1: none)."""
        return self._alarm_index

    @property
    def observed_distance(self) -> float:
        """The plug-in distance between candidate and baseline now (nan without data)."""
        if not self._cand.any() or not self._ref.any():
            return math.nan
        return self.distance_between(self._cand.astype(np.float64))

    def distance_between(self, counts: NDArray[np.float64]) -> float:
        """The plug-in distance between a candidate histogram and the baseline's."""
        return distance(self.distance, counts, self._ref.astype(np.float64), self.widths)

    @property
    def exposure(self) -> float:
        return float(self._cand.sum())

    @property
    def reference_counts(self) -> NDArray[np.int64]:
        """The baseline's histogram so far (a copy)."""
        return self._ref.copy()

    @property
    def reference_exposure(self) -> float:
        return float(self._ref.sum())

    @property
    def ready(self) -> bool:
        return int(self._ref.sum()) >= self.min_reference

    @property
    def conclusive(self) -> bool:
        return self._detected or (self._evaluated and self.ready)

    def reset(self) -> None:
        """Forget the candidate's histogram and evidence; keep the baseline's."""
        self._cand[:] = 0
        self._next_eval = self.min_observations
        self._detected = False
        self._alarm_index = -1
        self._last = 0.0
        self._evaluated = False

    def evidence(self) -> Evidence:
        """The plug-in distance now (the baseline's reference value is 0) and the counts."""
        return Evidence(
            self.observed_distance,
            0.0,
            self.reference_exposure,
            self.exposure,
            {"distance": self.distance},
        )
