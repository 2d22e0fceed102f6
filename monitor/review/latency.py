"""Latency quantiles from binned counts, as the history stores them.

The history keeps each version's latencies as counts in fixed bins (edges
``e_0 < ... < e_{k-1}``, ``k + 1`` bins with the underflow ``[0, e_0)`` and
the overflow ``[e_{k-1}, inf)``). A quantile is found as Prometheus's
``histogram_quantile`` does it — the bin holding the target rank, then
interpolation inside it — but log-linearly, since the edges are log-spaced
(the latencies within a bin are taken as log-uniform). The error is then at
most one bin's width ratio. The underflow bin interpolates linearly from 0;
a quantile in the overflow bin is reported as its lower edge, ``e_{k-1}``
(a lower bound: the data say nothing beyond it).

References
----------
Prometheus, "Histograms and summaries", ``histogram_quantile()``:
https://prometheus.io/docs/practices/histograms/

Examples
--------
>>> round(quantile_from_bins([0, 10, 10, 0], [1.0, 10.0, 100.0], 0.5), 6)
10.0
>>> quantile_from_bins([0, 0, 0, 0], [1.0, 10.0, 100.0], 0.5) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["quantile_from_bins"]


def quantile_from_bins(bins: Sequence[int], edges: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of the latencies counted in ``bins``, or None when there are none.

    Parameters
    ----------
    bins
        Counts per bin: ``len(edges) + 1`` of them, underflow first.
    edges
        The increasing, positive bin edges in milliseconds.
    q
        The quantile, in [0, 1].

    Raises
    ------
    ValueError
        When ``bins`` and ``edges`` do not match, or ``q`` is outside [0, 1].
    """
    if len(bins) != len(edges) + 1:
        raise ValueError(f"{len(bins)} latency bins for {len(edges)} edges (want edges + 1)")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    total = sum(bins)
    if total <= 0:
        return None
    rank = q * total
    below = 0.0
    for i, count in enumerate(bins):
        if count > 0 and below + count >= rank:
            share = (rank - below) / count
            if i == 0:
                return share * edges[0]
            if i == len(edges):
                return float(edges[-1])
            lo, hi = edges[i - 1], edges[i]
            return math.exp(math.log(lo) + share * (math.log(hi) - math.log(lo)))
        below += count
    return float(edges[-1])
