"""The distribution checks: ``score_distribution``, ``latency`` and ``tool_distribution``.

Each check bins its values (:mod:`monitor.binning`) into per-second buckets,
one column per bin, and feeds a
:class:`~detectors.DistributionShiftDetector` per (candidate version, stream)
one histogram per released bucket. Scores and latencies are known at
inference time (released at once). Tool calls follow their inference within
``action_window_seconds`` and are released after it; they are counted by
name and given their bins at release, in name order, so a tool's bin never
depends on the order events arrived in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors import DistributionRecovery, DistributionShiftDetector
from monitor.binning import Binner, ToolBins, latency_bin, score_bin
from monitor.buckets import Buckets, TallyBuckets
from monitor.episodes import CheckStatus, Episodes
from monitor.messages import SourcePosition
from monitor.policy import Check, Metric, ModelPolicy
from monitor.router import ModelWork
from monitor.runners.base import CheckRunner, Locate
from monitor.runners.rates import matches
from monitor.streams import Stream, decode_stream, encode_stream

__all__ = ["DistributionRunner"]


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
        self._binned: list[tuple[Binner, Buckets]] = []
        self._tools: list[tuple[Binner, ToolBins, TallyBuckets]] = []
        for check in checks:
            binner = Binner(check)
            if binner.tools is not None:
                # Tools are counted by name and binned at release, in name order.
                tallies = TallyBuckets(policy.action_window_seconds)
                self._tools.append((binner, binner.tools, tallies))
            else:
                self._binned.append((binner, Buckets(binner.n_bins, 0.0)))
        self._binners = {b.check.name: b for b, _ in self._binned}
        self._binners.update({b.check.name: b for b, _, _ in self._tools})
        #: The baseline's histogram per (check, stream), to prime new detectors.
        self._reference: dict[tuple[str, Stream], NDArray[np.float64]] = {}

    def feed(self, work: ModelWork) -> None:
        for binner, _, tallies in self._tools:
            for called in work.actions:
                action = called.event
                if action.tool is None or not matches(action, binner.check.where):
                    continue
                if not tallies.add(called.version, called.streams, called.at, action.tool):
                    called.late = True
        for binner, buckets in self._binned:
            metric = binner.check.metric
            for row in work.inferences:
                event = row.event
                if metric is Metric.SCORE_DISTRIBUTION and event.score is not None:
                    bins = (score_bin(event.score, binner.n_bins),)
                elif metric is Metric.LATENCY and event.latency_ms is not None:
                    bins = (latency_bin(event.latency_ms),)
                else:
                    continue
                if not buckets.add(row.version, row.streams, row.at, 1.0, bins):
                    row.late = True

    def release(self, watermark: float, locate: Locate) -> None:
        for binner, buckets in self._binned:
            for index, rows in buckets.release(watermark):
                hists = {key: np.asarray(row[1:], dtype=np.float64) for key, row in rows.items()}
                final = buckets.final_at(index)
                self._judge_bucket(binner.check, hists, final, locate(final))
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
        hists: dict[tuple[str, Stream], NDArray[np.float64]],
        end: float,
        source: SourcePosition | None,
    ) -> None:
        for (version, stream), hist in hists.items():
            if version != self.baseline:
                continue
            key = (check.name, stream)
            total = self._reference.get(key)
            self._reference[key] = hist if total is None else total + hist
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
        det = DistributionShiftDetector(
            binner.distance,
            float(check.tolerance.max_distance or 1.0),
            binner.n_bins,
            self.detector_arl0,
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
            "buckets": {b.check.name: buckets.state() for b, buckets in self._binned},
            "tallies": {b.check.name: tallies.state() for b, _, tallies in self._tools},
            "tools": {b.check.name: tools.state() for b, tools, _ in self._tools},
            "reference": [
                {"check": check, "stream": encode_stream(stream), "hist": hist}
                for (check, stream), hist in self._reference.items()
            ],
        }

    def _restore_buckets(self, state: dict[str, Any]) -> None:
        for binner, buckets in self._binned:
            buckets.restore(state["buckets"][binner.check.name])
        for binner, tools, tallies in self._tools:
            tallies.restore(state["tallies"][binner.check.name])
            tools.restore(state["tools"][binner.check.name])
        self._reference = {
            (str(item["check"]), decode_stream(item["stream"])): np.asarray(
                item["hist"], dtype=np.float64
            )
            for item in state["reference"]
        }
