"""Bins for the distribution checks, so every histogram has a bounded size.

Scores and latencies are binned at the **baseline's quantiles**
(:func:`quantile_edges`): the check runner keeps the first
:data:`REFERENCE_SAMPLE` (2,000) baseline values of a check raw, computes at
most ``max_bins - 1`` edges at their empirical quantiles (:data:`SCORE_BINS`:
at most 200 bins for KS and Wasserstein, 32 for Jensen-Shannon;
:data:`LATENCY_BINS`: 200) and freezes them. A value ``x`` falls in bin
``searchsorted(edges, x, side="right")``, so the binned CDF at an edge ``e``
is the share of values ``< e``. A value the sample holds often (a score of
exactly 0 or 1, a coarse int8 score) gets the edges ``v`` and the next float
above ``v``: a bin of its own, so the binned KS sees both ``P(X < v)`` and
``P(X <= v)`` as the exact KS does. The finite ends of the range (scores 0
and 1, latency 0) always get bins of their own, so a candidate piling there
while the baseline does not is measured exactly too.

Why 200. Within a bin holding baseline mass ``m`` the binned KS can miss at
most ``m`` of the exact KS, which happens when the *candidate* has point
masses the baseline lacks (scores quantised to sixteenths against a
continuous baseline). With 50 bins (2% each) the binned KS of such a
candidate was up to 0.016 below ``scipy.stats.ks_2samp``; with 200 bins (10
sample values each, so about 0.5% +- 0.16%) it stayed within 0.006 on every
shape measured (``tests/monitor/test_quantile_bins.py``, ``BENCHMARKS.md``).
The KS and Wasserstein radii do not depend on the number of bins, so more
bins cost only memory (8 bytes per bin per histogram) and a few more
comparisons per value. The Jensen-Shannon radius grows with the number of
bins (about as its square root), so JS keeps fewer: 32 bins are within 0.01
of the JS on a fine grid for the shapes tested, 20 were not for a shift
with a hard edge (0.016 off). 2,000 baseline values freeze the edges after
20 s at 100 inferences per second; 4,000 gave no better agreement at 200
bins.

Up to 0.2.0 scores had equal-width bins (:data:`LEGACY_SCORE_BINS`) and
latencies log-spaced bins from 0.1 ms to 10^6 ms
(:data:`LEGACY_LATENCY_BINS`; :func:`score_bin`, :func:`latency_bin`); a
checkpoint of that layout is continued with them. Tools get one bin each, in
order of first sight, up to a cap; later tools share the last bin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors.distribution import Distance
from monitor.policy import Check, Metric

__all__ = [
    "BUFFER_CAP",
    "LATENCY_BINS",
    "LEGACY_LATENCY_BINS",
    "LEGACY_SCORE_BINS",
    "REFERENCE_SAMPLE",
    "SCORE_BINS",
    "Binner",
    "ToolBins",
    "bin_widths",
    "latency_bin",
    "quantile_bins",
    "quantile_edges",
    "score_bin",
]

#: Most bins per distance for scores at the baseline's quantiles.
SCORE_BINS = {"js": 32, "ks": 200, "wasserstein": 200}
#: Most bins for latencies at the baseline's quantiles.
LATENCY_BINS = 200
#: Equal-width score bins per distance of 0.2.0, continued by its checkpoints.
LEGACY_SCORE_BINS = {"js": 20, "ks": 50, "wasserstein": 50}
#: Log-spaced latency bins of 0.2.0, continued by its checkpoints.
LEGACY_LATENCY_BINS = 50
#: Baseline values (overall stream, in event-time order) the bin edges are computed from.
REFERENCE_SAMPLE = 2_000
#: Values per version kept raw while the edges are not frozen; more are counted as unbinned.
BUFFER_CAP = 100_000
_LAT_LO, _LAT_HI = math.log10(0.1), math.log10(1e6)
TOOL_BINS = 16


def score_bin(score: float, n_bins: int) -> int:
    """Equal-width bin of a score in [0, 1] (1.0 falls in the last bin)."""
    return min(int(score * n_bins), n_bins - 1)


def latency_bin(ms: float) -> int:
    """Log-spaced bin of a latency in milliseconds."""
    if ms <= 0.1:
        return 0
    x = (math.log10(ms) - _LAT_LO) / (_LAT_HI - _LAT_LO)
    return min(max(int(x * LEGACY_LATENCY_BINS), 0), LEGACY_LATENCY_BINS - 1)


def quantile_edges(
    sample: ArrayLike, max_bins: int, lower: float = -math.inf, upper: float = math.inf
) -> NDArray[np.float64]:
    """Bin edges at the empirical quantiles of ``sample``, ties given bins of their own.

    Parameters
    ----------
    sample
        The baseline values (finite floats).
    max_bins
        Most bins: at most ``max_bins - 1`` edges are returned.
    lower, upper
        The values' range: edges ``<= lower`` (an always empty first bin) and
        ``> upper`` (an always empty last bin) are dropped.

    Returns
    -------
    numpy.ndarray
        Sorted distinct edges; a value ``x`` is in bin
        ``searchsorted(edges, x, side="right")`` of ``len(edges) + 1``.

    Notes
    -----
    The edges are the ``k / (m + 1)`` quantiles (``inverted_cdf``: sample
    values), merged where they coincide, with the largest ``m <= max_bins - 1``
    that fits. Every value holding at least ``1 / max_bins`` of the sample
    (at most ``(max_bins - 1 - ends) // 2`` of them, the heaviest first) also
    gets the edges ``v`` and ``nextafter(v, inf)``: a bin holding ``v`` alone.
    So does each finite end of [lower, upper] (``ends`` of them), with one
    edge (``nextafter(lower, inf)``, ``upper``), when ``max_bins`` leaves room
    for at least as many other edges.

    Examples
    --------
    >>> x = np.array([0.0] * 45 + [1.0] * 45 + list(np.linspace(0.05, 0.95, 10)))
    >>> edges = quantile_edges(x, 5, 0.0, 1.0)
    >>> bins = np.searchsorted(edges, [0.0, 0.5, 1.0], side="right")
    >>> len(edges) + 1, bins.tolist()
    (3, [0, 1, 2])
    """
    x = np.sort(np.asarray(sample, dtype=np.float64).reshape(-1))
    if x.size == 0:
        raise ValueError("need at least one value")
    if max_bins < 2:
        raise ValueError("need max_bins >= 2")
    values, counts = np.unique(x, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    # A finite end of the range gets a bin of its own (one edge each), unless the bins
    # are too few: a candidate piling at 0 or 1 where the baseline has nothing is then
    # measured exactly (KS, and Wasserstein, whose last bin would otherwise be wide).
    ends = [v for v in (lower, upper) if math.isfinite(v)]
    if max_bins - 1 < 2 * len(ends):
        ends = []
    room = (max_bins - 1 - len(ends)) // 2
    heavy = values[order][counts[order] * max_bins >= x.size][:room]
    alone = np.concatenate([heavy, np.nextafter(heavy, np.inf), ends, np.nextafter(ends, np.inf)])
    edges = np.empty(0, dtype=np.float64)
    for levels in range(max_bins - 1, -1, -1):
        cuts = np.quantile(x, np.arange(1, levels + 1) / (levels + 1), method="inverted_cdf")
        edges = np.unique(np.concatenate([cuts, alone]))
        edges = edges[(edges > lower) & (edges <= upper)]
        if edges.size <= max_bins - 1:
            break
    if edges.size == 0:  # every value at ``lower``: one bin for it, one for the rest
        edges = np.array([np.nextafter(x[0], np.inf)])
    return edges


def quantile_bins(edges: NDArray[np.float64], values: ArrayLike) -> NDArray[np.int64]:
    """The bins of ``values`` under ``edges`` (see :func:`quantile_edges`).

    >>> quantile_bins(np.array([0.5, 0.75]), [0.1, 0.5, 0.6, 0.9]).tolist()
    [0, 1, 1, 2]
    """
    return np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right").astype(
        np.int64
    )


def bin_widths(edges: NDArray[np.float64], lower: float, upper: float) -> list[float]:
    """Widths of the bins of ``edges`` within [lower, upper], scaled to sum to 1.

    >>> bin_widths(np.array([0.25, 0.5]), 0.0, 1.0)
    [0.25, 0.25, 0.5]
    """
    bounds = np.clip(np.concatenate([[lower], edges, [upper]]), lower, upper)
    widths = np.diff(bounds) / (upper - lower)
    return [float(w) for w in widths]


class ToolBins:
    """Tool name -> bin, first come first served, the last bin shared by the overflow."""

    def __init__(self, n_bins: int = TOOL_BINS) -> None:
        self.n_bins = n_bins
        self._index: dict[str, int] = {}
        self.folded = 0

    def state(self) -> dict[str, Any]:
        """The tools in bin order, and how many calls were folded into the last bin."""
        return {"tools": list(self._index), "folded": self.folded}

    def restore(self, state: dict[str, Any]) -> None:
        self._index = {str(tool): i for i, tool in enumerate(state["tools"])}
        self.folded = int(state["folded"])

    def __call__(self, tool: str) -> int:
        index = self._index.get(tool)
        if index is None:
            if len(self._index) < self.n_bins - 1:
                index = self._index[tool] = len(self._index)
            else:
                self.folded += 1
                return self.n_bins - 1
        return index


class Binner:
    """The binning of one distribution check: its distance, bin count and (for tools) names.

    For scores and latencies ``n_bins`` is the most bins at the baseline's
    quantiles, ``legacy_bins`` the equal-width or log-spaced count a
    checkpoint of 0.2.0 continues with, ``lower`` and ``upper`` the values'
    range.
    """

    def __init__(self, check: Check) -> None:
        self.check = check
        self.tools: ToolBins | None = None
        self.distance: Distance
        self.lower, self.upper = 0.0, math.inf
        if check.metric is Metric.SCORE_DISTRIBUTION:
            self.distance = check.distance or "ks"
            self.n_bins = SCORE_BINS[self.distance]
            self.legacy_bins = LEGACY_SCORE_BINS[self.distance]
            self.upper = 1.0
        elif check.metric is Metric.LATENCY:
            self.distance = "ks"
            self.n_bins = LATENCY_BINS
            self.legacy_bins = LEGACY_LATENCY_BINS
        elif check.metric is Metric.TOOL_DISTRIBUTION:
            self.distance = "tv"
            self.tools = ToolBins()
            self.n_bins = self.legacy_bins = self.tools.n_bins
        else:
            raise ValueError(f"{check.metric.value} is not a distribution metric")
