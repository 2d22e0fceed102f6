"""Has one version's own stream changed? ADWIN on standardised chunks of it.

The comparison detectors ask whether a candidate differs from its baseline;
these ask whether a single stream — in the service, the baseline's — differs
from its own past: "the world changed", rather than "the candidate diverged".

Each detector sums what it is fed into chunks of at least ``chunk`` exposure
(inferences for a rate, values for a histogram). The first chunks, up to
``reference`` exposure, make the stream's reference; every later chunk is
turned into a score ``u`` in [0, 1] that is about uniform while nothing
changes (a probability integral transform of its test statistic against the
reference) and near 1 after a change, and ``u`` is fed to ADWIN
(:class:`~detectors.adaptive_window.AdaptiveWindow`). Why not the raw chunk
rate or distance: ADWIN's cut bound holds for values in [0, 1] and is scaled
to that range, so a rate of 0.08 moving to 0.10, or a KS distance of 0.04
moving to 0.09, is a change too small for it to see in any useful time; the
standardised score makes the same change a move of its mean from 0.5 to near
1, which it finds within a few tens of chunks. Why chunks and not events:
one ADWIN update per chunk costs nothing next to the per-event work, every
chunk weighs about the same, and the normal and Kolmogorov approximations
behind ``u`` hold. When ADWIN finds a change, the reference is learned again
from the next chunks: the new normal, against which the next change is
sought.

- :class:`RateChangeDetector`: ``(count, exposure)`` pairs; ``u = Phi(z)``
  with ``z`` the two-sample z statistic of the chunk's rate against the
  reference rate, Bernoulli or Poisson variance.
- :class:`HistogramChangeDetector`: histograms over fixed bins; for ordered
  bins (scores, latencies) ``u = 1 - Q_KS(sqrt(n_eff) D)``, the two-sample
  Kolmogorov-Smirnov statistic ``D`` against the reference histogram through
  the Kolmogorov distribution; for unordered bins (tools) the chi-square
  distribution function of Pearson's two-sample statistic.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Self

import numpy as np
from numpy.typing import NDArray
from scipy.special import chdtr, kolmogorov, ndtr

from detectors.adaptive_window import AdaptiveWindow

__all__ = ["HistogramChangeDetector", "RateChangeDetector"]

Vector = NDArray[np.float64]


class _ChunkedChange(ABC):
    """Chunks, a reference, a score in [0, 1] per chunk, and ADWIN on the scores."""

    state_keys: ClassVar[tuple[str, ...]] = (
        "chunk_sum",
        "reference_sum",
        "window",
        "detected",
        "detections",
        "chunks",
    )

    def __init__(self, size: int, chunk: float, reference: float, delta: float) -> None:
        if not (chunk > 0 and reference >= chunk):
            raise ValueError(f"need chunk > 0 and reference >= chunk, got {chunk}, {reference}")
        self.chunk = float(chunk)
        self.reference = float(reference)
        self.delta = float(delta)
        self._chunk_sum = np.zeros(size, dtype=np.float64)
        self._reference_sum = np.zeros(size, dtype=np.float64)
        self._window = AdaptiveWindow(delta)
        self._detected = False
        self._detections = 0
        self._chunks = 0

    @abstractmethod
    def _exposure(self, v: Vector) -> float: ...

    @abstractmethod
    def _score(self, chunk: Vector, reference: Vector) -> float:
        """The chunk's statistic against the reference, as a probability in [0, 1]."""

    def _add(self, v: Vector) -> None:
        self._detected = False
        self._chunk_sum += v
        if self._exposure(self._chunk_sum) < self.chunk:
            return
        chunk = self._chunk_sum
        self._chunk_sum = np.zeros_like(chunk)
        self._chunks += 1
        if self._exposure(self._reference_sum) < self.reference:
            self._reference_sum += chunk
            return
        u = self._score(chunk, self._reference_sum)
        self._window.update(min(1.0, max(0.0, u)) if math.isfinite(u) else 0.5)
        if self._window.drift_detected:
            self._detected = True
            self._detections += 1
            self._reference_sum = np.zeros_like(chunk)  # learn the new normal

    @property
    def drift_detected(self) -> bool:
        """Whether the last update completed a chunk at which ADWIN found a change."""
        return self._detected

    @property
    def statistic(self) -> float:
        """Mean score of ADWIN's current window: about 0.5 while the stream is stable."""
        return self._window.statistic

    @property
    def ready(self) -> bool:
        """Whether the reference is complete (chunks are being scored)."""
        return self._exposure(self._reference_sum) >= self.reference

    @property
    def detections(self) -> int:
        """Changes found so far."""
        return self._detections

    def state(self) -> dict[str, Any]:
        """Plain data: parameters, the open chunk, the reference and ADWIN's values."""
        return {
            "type": type(self).__name__,
            "params": {k: getattr(self, k) for k in self.param_keys},
            "state": {
                "chunk_sum": self._chunk_sum.copy(),
                "reference_sum": self._reference_sum.copy(),
                "window": self._window.state(),
                "detected": self._detected,
                "detections": self._detections,
                "chunks": self._chunks,
            },
        }

    param_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_state(cls, snapshot: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`state`; its future decisions are identical."""
        if snapshot.get("type") != cls.__name__:
            raise ValueError(f"snapshot is of {snapshot.get('type')!r}, not {cls.__name__}")
        det = cls(**snapshot["params"])
        saved = snapshot["state"]
        size = det._chunk_sum.shape
        det._chunk_sum = np.asarray(saved["chunk_sum"], dtype=np.float64).reshape(size)
        det._reference_sum = np.asarray(saved["reference_sum"], dtype=np.float64).reshape(size)
        det._window = AdaptiveWindow.from_state(saved["window"])
        det._detected = bool(saved["detected"])
        det._detections = int(saved["detections"])
        det._chunks = int(saved["chunks"])
        return det


class RateChangeDetector(_ChunkedChange):
    """A change in one stream's rate: ADWIN on the chunk rates' z scores.

    Parameters
    ----------
    family
        ``bernoulli`` (a share: count <= exposure) or ``poisson`` (a count per unit).
    chunk
        Least exposure per scored chunk.
    reference
        Exposure of the reference (the first chunks, and again after each change).
    delta
        ADWIN's confidence parameter.

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> det = RateChangeDetector("bernoulli")
    >>> for second in range(120):
    ...     rate = 0.08 if second < 60 else 0.12
    ...     det.update((float(rng.binomial(700, rate)), 700.0))
    ...     if det.drift_detected:
    ...         print(f"change found at second {second}")
    change found at second 94

    References
    ----------
    A. Bifet and R. Gavaldà, "Learning from time-changing data with adaptive
    windowing", SDM 2007 (ADWIN). The chunk's score is the probability
    integral transform ``Phi(z)`` of the two-sample z statistic
    ``z = (c/e - p0) / sqrt(v (1/e + 1/E))``, ``p0 = (C + 1/2) / (E + 1)``
    the reference rate (count ``C``, exposure ``E``) and ``v = p0 (1 - p0)``
    (Bernoulli) or ``p0`` (Poisson).
    """

    param_keys: ClassVar[tuple[str, ...]] = ("family", "chunk", "reference", "delta")

    def __init__(
        self,
        family: Literal["bernoulli", "poisson"],
        chunk: float = 500.0,
        reference: float = 2000.0,
        delta: float = 0.01,
    ) -> None:
        if family not in ("bernoulli", "poisson"):
            raise ValueError(f"family must be 'bernoulli' or 'poisson', got {family!r}")
        super().__init__(2, chunk, reference, delta)
        self.family = family

    def update(self, x: tuple[float, float]) -> None:
        """Feed one ``(count, exposure)`` pair (one bucket)."""
        count, exposure = float(x[0]), float(x[1])
        if not (math.isfinite(count) and math.isfinite(exposure) and count >= 0 and exposure >= 0):
            raise ValueError(f"need finite count >= 0 and exposure >= 0, got {x}")
        if exposure == 0:
            return
        self._add(np.array([count, exposure], dtype=np.float64))

    def _exposure(self, v: Vector) -> float:
        return float(v[1])

    def _score(self, chunk: Vector, reference: Vector) -> float:
        p0 = (reference[0] + 0.5) / (reference[1] + 1.0)
        var = p0 * (1.0 - p0) if self.family == "bernoulli" else p0
        se = math.sqrt(var * (1.0 / chunk[1] + 1.0 / reference[1]))
        return float(ndtr((chunk[0] / chunk[1] - p0) / se))


class HistogramChangeDetector(_ChunkedChange):
    """A change in one stream's distribution over fixed bins: ADWIN on the chunks' test scores.

    Parameters
    ----------
    n_bins
        Length of every histogram fed.
    ordered
        Whether the bins are ordered (scores, latencies: Kolmogorov-Smirnov)
        or not (tools: Pearson's chi-square).
    chunk
        Least observations per scored chunk.
    reference
        Observations in the reference (the first chunks, and again after each change).
    delta
        ADWIN's confidence parameter.

    Examples
    --------
    >>> rng = np.random.default_rng(6)
    >>> det = HistogramChangeDetector(20)
    >>> for second in range(120):
    ...     shift = 0.0 if second < 60 else 0.1
    ...     values = np.clip(rng.beta(2.0, 5.0, 700) + shift, 0.0, 0.999)
    ...     det.update(np.bincount((values * 20).astype(int), minlength=20).astype(float))
    ...     if det.drift_detected:
    ...         print(f"change found at second {second}")
    change found at second 80

    References
    ----------
    A. Bifet and R. Gavaldà, "Learning from time-changing data with adaptive
    windowing", SDM 2007 (ADWIN). Ordered bins: the two-sample
    Kolmogorov-Smirnov statistic ``D`` and Kolmogorov's limit law,
    ``u = 1 - Q_KS(sqrt(n m / (n + m)) D)`` (Smirnov 1948). Unordered bins:
    Pearson's chi-square for two samples, ``X^2 = sum_i (n_i/n - m_i/m)^2 n m
    / (n_i + m_i)`` on the ``k`` bins either sample uses, ``u = F_chi2(X^2;
    k - 1)``.
    """

    param_keys: ClassVar[tuple[str, ...]] = ("n_bins", "ordered", "chunk", "reference", "delta")

    def __init__(
        self,
        n_bins: int,
        ordered: bool = True,
        chunk: float = 500.0,
        reference: float = 2000.0,
        delta: float = 0.01,
    ) -> None:
        if n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {n_bins}")
        super().__init__(int(n_bins), chunk, reference, delta)
        self.n_bins = int(n_bins)
        self.ordered = bool(ordered)

    def update(self, x: NDArray[np.float64]) -> None:
        """Feed one histogram of counts (one bucket)."""
        hist = np.asarray(x, dtype=np.float64).reshape(-1)
        if hist.shape != (self.n_bins,):
            raise ValueError(f"expected {self.n_bins} bins, got {hist.shape[0]}")
        if not (np.isfinite(hist).all() and (hist >= 0).all()):
            raise ValueError("histogram counts must be finite and non-negative")
        if hist.sum() == 0:
            return
        self._add(hist)

    def _exposure(self, v: Vector) -> float:
        return float(v.sum())

    def _score(self, chunk: Vector, reference: Vector) -> float:
        n, m = chunk.sum(), reference.sum()
        if self.ordered:
            d = float(np.abs(np.cumsum(chunk) / n - np.cumsum(reference) / m).max())
            return float(1.0 - kolmogorov(math.sqrt(n * m / (n + m)) * d))
        used = (chunk + reference) > 0
        k = int(used.sum())
        if k < 2:
            return 0.5
        diff = chunk[used] / n - reference[used] / m
        x2 = float((diff * diff * n * m / (chunk[used] + reference[used])).sum())
        return float(chdtr(k - 1, x2))
