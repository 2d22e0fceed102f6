"""The distribution checks: ``score_distribution``, ``latency`` and ``tool_distribution``.

Each check bins its values (:mod:`monitor.binning`) into per-second buckets,
one column per bin, and feeds a
:class:`~detectors.DistributionShiftDetector` per (candidate version, stream)
one histogram per released bucket. Scores and latencies are known at
inference time (released at once). Tool calls follow their inference within
``action_window_seconds`` and are released after it; they are counted by
name and given their bins at release, in name order, so a tool's bin never
depends on the order events arrived in.

Scores and latencies are binned at the baseline's quantiles
(:class:`QuantileCounts`). Until the edges are frozen every value is kept
raw in its event-time bucket, and released buckets are *held*: once the
held buckets have :data:`~monitor.binning.REFERENCE_SAMPLE` baseline values
the edges are computed from the first of them in event-time order, frozen,
and the held buckets are binned and judged, oldest first, as if they had
been released then. The sample is taken from released (final) buckets only,
so the edges depend on the events and their times, not on how they were
batched or interleaved. Until then the check has no status (the verdict
shows it as inconclusive, "no candidate data yet").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors import DistributionRecovery, DistributionShiftDetector
from monitor.binning import (
    Binner,
    ToolBins,
)
from monitor.buckets import TallyBuckets
from monitor.episodes import CheckStatus, Episodes
from monitor.messages import SourcePosition
from monitor.policy import Check, Metric, ModelPolicy
from monitor.runners.base import CheckRunner, Locate
from monitor.runners.quantiles import Hists, QuantileCounts
from monitor.streams import Stream, decode_stream, encode_stream
from monitor.work import ModelWork, spread

__all__ = ["DistributionRunner", "QuantileCounts"]


class DistributionRunner(CheckRunner[DistributionShiftDetector, DistributionRecovery]):
    """Runs the distribution checks of one model (see the module docstring)."""

    detector_type = DistributionShiftDetector

    def __init__(
        self,
        policy: ModelPolicy,
        checks: list[Check],
        detector_arl0: float,
        episodes: Episodes,
    ) -> None:
        super().__init__(policy, checks, detector_arl0, episodes)
        self._binned: list[tuple[Binner, QuantileCounts]] = []
        self._tools: list[tuple[Binner, ToolBins, TallyBuckets]] = []
        for check in checks:
            binner = Binner(check)
            if binner.tools is not None:
                # Tools are counted by name and binned at release, in name order.
                tallies = TallyBuckets(policy.action_window_seconds)
                self._tools.append((binner, binner.tools, tallies))
            else:
                self._binned.append((binner, QuantileCounts(binner, policy.baseline)))
        self._binners = {b.check.name: b for b, _ in self._binned}
        self._binners.update({b.check.name: b for b, _, _ in self._tools})
        self._counts = {b.check.name: counts for b, counts in self._binned}
        #: The baseline's histogram per (check, stream), to prime new detectors.
        self._reference: dict[tuple[str, Stream], NDArray[np.float64]] = {}

    def feed(self, work: ModelWork) -> None:
        actions = work.actions
        if self._tools and len(actions):
            tools, with_tool = actions.values("tool"), actions.with_tool()
            for binner, _, tallies in self._tools:
                chosen = np.flatnonzero(with_tool & actions.matching(binner.check.where))
                if len(chosen):
                    late = tallies.add_columns(
                        work.table,
                        actions.times()[chosen],
                        actions.groups()[chosen],
                        [tools[i] for i in chosen.tolist()],
                    )
                    actions.mark_late(spread(late, chosen, len(actions)))
        inferences = work.inferences
        if not len(inferences):
            return
        for binner, counts in self._binned:
            if binner.check.metric is Metric.SCORE_DISTRIBUTION:
                values = inferences.scores()
            else:
                values = inferences.latencies()
            chosen = np.flatnonzero(~np.isnan(values))
            if not len(chosen):
                continue
            late = counts.add_columns(
                work.table,
                inferences.times()[chosen],
                inferences.groups()[chosen],
                values[chosen],
            )
            inferences.mark_late(spread(late, chosen, len(inferences)))

    def release(self, watermark: float, locate: Locate) -> None:
        for binner, quantiles in self._binned:
            for index, binned in quantiles.release(watermark):
                final = quantiles.final_at(index)
                self._judge_bucket(binner.check, binned, final, locate(final))
        for binner, tools, tallies in self._tools:
            for index, calls in tallies.release(watermark):
                hists = {}
                for key, counts in calls.items():
                    hist = np.zeros(binner.n_bins, dtype=np.float64)
                    for tool, n in counts.items():
                        hist[tools(tool) if tool else binner.n_bins - 1] += n
                    hists[key] = hist
                final = tallies.final_at(index)
                self._judge_bucket(binner.check, hists, final, locate(final))

    def _judge_bucket(
        self,
        check: Check,
        hists: Hists,
        end: float,
        source: SourcePosition | None,
    ) -> None:
        for (version, stream), hist in hists.items():
            if version != self.baseline:
                continue
            key = (check.name, stream)
            total = self._reference.get(key)
            self._reference[key] = hist if total is None else total + hist
            self.baseline_drift.observe_histogram(check, stream, end, hist)
            for status in self.watching(check, stream):
                status.detector.update_reference_counts(hist)
        for (version, stream), hist in hists.items():
            if version == self.baseline:
                continue
            status = self.status(check, version, stream)
            status.detector.update_counts(hist)
            if status.recovery is not None:
                status.recovery.add(hist)
            self.judge(status, end, source)

    def new_detector(self, check: Check, stream: Stream) -> DistributionShiftDetector:
        binner = self._binners[check.name]
        counts = self._counts.get(check.name)
        det = DistributionShiftDetector(
            binner.distance,
            float(check.tolerance.max_distance or 1.0),
            binner.n_bins if counts is None else counts.n_bins,
            self.detector_arl0,
            widths=None if counts is None else counts.widths,
        )
        hist = self._reference.get((check.name, stream))
        if hist is not None:
            det.update_reference_counts(hist)
        return det

    def recovery(
        self, status: CheckStatus[DistributionShiftDetector, DistributionRecovery]
    ) -> DistributionRecovery:
        return DistributionRecovery(status.detector)

    def _restore_recovery(
        self, detector: DistributionShiftDetector, state: dict[str, Any]
    ) -> DistributionRecovery:
        return DistributionRecovery.from_state(detector, state)

    def _buckets_state(self) -> dict[str, Any]:
        return {
            # Per score or latency check: its edges, buckets and raw values (after 0.2.0;
            # before, "buckets" held each check's equal-width buckets).
            "bins": {b.check.name: counts.state() for b, counts in self._binned},
            "tallies": {b.check.name: tallies.state() for b, _, tallies in self._tools},
            "tools": {b.check.name: tools.state() for b, tools, _ in self._tools},
            "reference": [
                {"check": check, "stream": encode_stream(stream), "hist": hist}
                for (check, stream), hist in self._reference.items()
            ],
        }

    def _restore_buckets(self, state: dict[str, Any]) -> None:
        bins = state.get("bins", {})
        for binner, counts in self._binned:
            if binner.check.name in bins:
                counts.restore(bins[binner.check.name])
            else:  # a checkpoint of 0.2.0: equal-width bins, as then
                counts.restore_legacy(state["buckets"][binner.check.name])
        for binner, tools, tallies in self._tools:
            tallies.restore(state["tallies"][binner.check.name])
            tools.restore(state["tools"][binner.check.name])
        self._reference = {
            (str(item["check"]), decode_stream(item["stream"])): np.asarray(
                item["hist"], dtype=np.float64
            )
            for item in state["reference"]
        }
