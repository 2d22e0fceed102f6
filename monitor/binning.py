"""Fixed bins for the distribution checks, so every histogram has a bounded size.

Scores live in [0, 1] and get equal-width bins (20 for Jensen-Shannon, 50
for KS and Wasserstein). Latencies get log-spaced bins
from 0.1 ms to 10^6 ms (over- and underflow in the end bins). Tools get one bin
each, in order of first sight, up to a cap; later tools share the last bin.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.distribution import Distance
from monitor.policy import Check, Metric

__all__ = ["Binner", "ToolBins", "latency_bin", "score_bin"]

SCORE_BINS = {"js": 20, "ks": 50, "wasserstein": 50}
LATENCY_BINS = 50
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
    return min(max(int(x * LATENCY_BINS), 0), LATENCY_BINS - 1)


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
    """The binning of one distribution check: its distance, bin count and (for tools) names."""

    def __init__(self, check: Check) -> None:
        self.check = check
        self.tools: ToolBins | None = None
        self.distance: Distance
        if check.metric is Metric.SCORE_DISTRIBUTION:
            self.distance = check.distance or "ks"
            self.n_bins = SCORE_BINS[self.distance]
        elif check.metric is Metric.LATENCY:
            self.distance = "ks"
            self.n_bins = LATENCY_BINS
        elif check.metric is Metric.TOOL_DISTRIBUTION:
            self.distance = "tv"
            self.tools = ToolBins()
            self.n_bins = self.tools.n_bins
        else:
            raise ValueError(f"{check.metric.value} is not a distribution metric")
