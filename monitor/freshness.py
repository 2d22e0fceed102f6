"""How fresh each watched version's data is: its newest event time, and the model's watermark.

The pipeline records, once per batch, the newest inference time of every
(model, version) it routed and each model's watermark; the metrics collector
reads them at scrape time. A candidate is *stale* when the model's newest
inference (from any watched version, the baseline's included) is more than
``stale_after`` seconds of event time ahead of the candidate's own newest one:
traffic still flows, but no longer to the candidate (a canary scaled to zero, a
router that stopped splitting). Its checks then keep the state of their last
data, so the dashboards and alerts show the staleness beside them.

Event time, not wall-clock time, so a replay judges staleness as a live run
would, and an outage of the whole input (no data for either version) is the
pipeline's freshness alert, not every candidate's.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

__all__ = ["Freshness", "VersionFreshness"]


@dataclass(frozen=True, slots=True)
class VersionFreshness:
    """One (model, version) at a scrape: its newest inference time and whether it is stale."""

    model: str
    version: str
    last_event: float
    stale: bool


class Freshness:
    """Newest inference time per (model, version) and watermark per model, thread-safe.

    Parameters
    ----------
    stale_after
        Event-time seconds a candidate may trail its model's newest inference
        before it is stale (``limits.stale_after_seconds``).
    """

    def __init__(self, stale_after: float = 600.0) -> None:
        if not stale_after > 0:
            raise ValueError(f"stale_after must be > 0, not {stale_after!r}")
        self.stale_after = float(stale_after)
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._baseline: dict[str, str] = {}
        self._watermarks: dict[str, float] = {}

    def observe(self, model: str, version: str, at: float, *, baseline: bool) -> None:
        """Inferences of ``version`` up to event time ``at`` (seconds) were routed."""
        with self._lock:
            key = (model, version)
            if at > self._last.get(key, -math.inf):
                self._last[key] = at
            if baseline:
                self._baseline[model] = version

    def watermark(self, model: str, at: float) -> None:
        """The model's event-time watermark is now ``at`` (ignored until it is finite)."""
        if math.isfinite(at):
            with self._lock:
                self._watermarks[model] = max(at, self._watermarks.get(model, -math.inf))

    def versions(self) -> list[VersionFreshness]:
        """Every version seen, with its staleness (a baseline is never stale)."""
        with self._lock:
            last = dict(self._last)
            baselines = dict(self._baseline)
        newest: dict[str, float] = {}
        for (model, _), at in last.items():
            newest[model] = max(at, newest.get(model, -math.inf))
        return [
            VersionFreshness(
                model,
                version,
                at,
                baselines.get(model) != version and newest[model] - at > self.stale_after,
            )
            for (model, version), at in sorted(last.items())
        ]

    def watermarks(self) -> dict[str, float]:
        """The latest finite watermark of every model."""
        with self._lock:
            return dict(self._watermarks)
