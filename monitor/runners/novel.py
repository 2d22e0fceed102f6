"""The ``novel_tool`` checks: a candidate calls a tool its baseline never called.

Tool calls are counted per (version, tool) in per-second buckets of their
inference's time and released after ``action_window_seconds``, like every
other action count: within a bucket the baseline's calls are shown to the
detectors first, then each candidate's, in tool-name order, so the verdict
depends on the events and their times, never on arrival order. Every
baseline call is evidence of what the baseline uses; ``where`` picks the
candidate calls to judge (e.g. privileged ones). The check runs on the
overall stream only.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from detectors import NovelToolDetector, RateRecovery
from monitor.episodes import CheckStatus, Episodes
from monitor.events import ActionEvent
from monitor.messages import SourcePosition
from monitor.policy import Check, ModelPolicy
from monitor.router import ModelWork
from monitor.runners.base import CheckRunner
from monitor.runners.rates import matches
from monitor.streams import Stream

__all__ = ["NovelToolRunner"]

#: Distinct tools kept per (bucket, version); more calls fold into :data:`_FOLDED`.
MAX_TOOLS_PER_BUCKET = 1024
#: The key of folded calls: no tool has this name (tool names are not empty).
_FOLDED = ""


class NovelToolRunner(CheckRunner[NovelToolDetector, RateRecovery]):
    """Runs the novel_tool checks of one model (see the module docstring).

    A novel tool has no recovery test: the alert stays firing (the type
    parameter of the recovery is never instantiated).
    """

    detector_type = NovelToolDetector

    def __init__(
        self,
        policy: ModelPolicy,
        checks: list[Check],
        detector_arl0: float,
        episodes: Episodes,
    ) -> None:
        super().__init__(policy, checks, detector_arl0, episodes)
        self.window = policy.action_window_seconds
        #: bucket -> (version, check name or "" for the baseline) -> tool -> calls
        self._open: dict[int, dict[tuple[str, str], Counter[str]]] = {}
        self._released_below = -math.inf
        #: The baseline's calls per check, copied into each new candidate's detector.
        self._reference = {c.name: self._detector(c) for c in checks}

    @staticmethod
    def _detector(check: Check) -> NovelToolDetector:
        return NovelToolDetector(check.min_baseline_calls or 1000)

    def feed(self, work: ModelWork) -> None:
        for row in work.inferences:
            if not row.baseline:
                for check in self.checks:  # listed (inconclusive) from the first inference
                    self.status(check, row.version, ())
        for row in work.actions:
            action = row.event
            assert isinstance(action, ActionEvent)  # routed as an action
            if action.tool is None:
                continue
            b = math.floor(row.at)
            if b < self._released_below:
                row.late = True
                continue
            bucket = self._open.setdefault(b, {})
            if row.baseline:
                self._count(bucket, (row.version, ""), action.tool)
                continue
            for check in self.checks:
                if matches(action, check.where):
                    self._count(bucket, (row.version, check.name), action.tool)

    @staticmethod
    def _count(
        bucket: dict[tuple[str, str], Counter[str]], key: tuple[str, str], tool: str
    ) -> None:
        calls = bucket.setdefault(key, Counter())
        if tool in calls or len(calls) < MAX_TOOLS_PER_BUCKET:
            calls[tool] += 1
        else:
            calls[_FOLDED] += 1

    def release(self, watermark: float, source: SourcePosition | None) -> None:
        if not math.isfinite(watermark):
            return  # no event time yet
        limit = math.floor(watermark - self.window)
        if limit <= self._released_below:
            return
        self._released_below = limit
        for b in sorted(i for i in self._open if i < limit):
            self._judge_bucket(self._open.pop(b), b + 1.0 + self.window, source)

    def _judge_bucket(
        self, bucket: dict[tuple[str, str], Counter[str]], end: float, source: SourcePosition | None
    ) -> None:
        for (version, _), calls in sorted(bucket.items()):
            if version != self.baseline:
                continue
            for check in self.checks:
                reference = self._reference[check.name]
                watching = self.watching(check, ())
                for tool, n in sorted(calls.items()):
                    reference.update_reference(tool, n)
                    for status in watching:
                        status.detector.update_reference(tool, n)
                for status in watching:
                    self.judge(status, end, source)
        by_name = {c.name: c for c in self.checks}
        for (version, check_name), calls in sorted(bucket.items()):
            if version == self.baseline:
                continue
            status = self.status(by_name[check_name], version, ())
            calls.pop(_FOLDED, None)
            status.detector.update_counts(calls)
            self.judge(status, end, source)

    def new_detector(self, check: Check, stream: Stream) -> NovelToolDetector:
        return NovelToolDetector.from_state(self._reference[check.name].state())

    def recovery(self, status: CheckStatus[NovelToolDetector, RateRecovery]) -> None:
        return None  # the candidate did call the tool: a new version or policy ends it

    def _restore_recovery(self, detector: NovelToolDetector, state: dict[str, Any]) -> RateRecovery:
        raise ValueError("a novel_tool check has no recovery state")

    def _buckets_state(self) -> dict[str, Any]:
        return {
            "released_below": self._released_below,
            "open": [
                [b, version, check, dict(calls)]
                for b, bucket in self._open.items()
                for (version, check), calls in bucket.items()
            ],
            "reference": {name: det.state() for name, det in self._reference.items()},
        }

    def _restore_buckets(self, state: dict[str, Any]) -> None:
        self._released_below = float(state["released_below"])
        self._open = {}
        for b, version, check, calls in state["open"]:
            key = (str(version), str(check))
            self._open.setdefault(int(b), {})[key] = Counter(
                {str(t): int(n) for t, n in calls.items()}
            )
        for name, det_state in state["reference"].items():
            if name in self._reference:
                self._reference[name] = NovelToolDetector.from_state(det_state)
