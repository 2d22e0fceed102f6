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

from collections import Counter
from typing import Any

import numpy as np

from detectors import NovelToolDetector, RateRecovery
from monitor.buckets import TallyBuckets
from monitor.episodes import CheckStatus, Episodes
from monitor.messages import SourcePosition
from monitor.policy import Check, ModelPolicy
from monitor.runners.base import CheckRunner, Locate
from monitor.streams import Stream
from monitor.work import ModelWork, baseline_flags, overall_groups, spread

__all__ = ["NovelToolRunner"]


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
        #: Per check: the baseline's calls and the candidates' calls matching ``where``.
        self._tallies = {c.name: TallyBuckets(policy.action_window_seconds) for c in checks}
        #: The baseline's calls per check, copied into each new candidate's detector.
        self._reference = {c.name: NovelToolDetector(c.min_baseline_calls or 1000) for c in checks}

    def feed(self, work: ModelWork) -> None:
        groups = work.table.groups
        for code in dict.fromkeys(work.inferences.group):  # in order of first appearance
            group = groups[code]
            if not group.baseline:
                for check in self.checks:  # listed (inconclusive) from the first inference
                    self.status(check, group.version, ())
        actions = work.actions
        if not len(actions):
            return
        with_tool = actions.with_tool()
        if not with_tool.any():
            return
        tools = actions.values("tool")
        baseline = baseline_flags(work.table, actions.groups())
        overall = overall_groups(work.table, actions.groups())
        for check in self.checks:
            chosen = np.flatnonzero(with_tool & (baseline | actions.matching(check.where)))
            if len(chosen):
                late = self._tallies[check.name].add_columns(
                    work.table,
                    actions.times()[chosen],
                    overall[chosen],
                    [tools[i] for i in chosen.tolist()],
                )
                actions.mark_late(spread(late, chosen, len(actions)))

    def release(self, watermark: float, locate: Locate) -> None:
        for check in self.checks:
            tally = self._tallies[check.name]
            for index, rows in tally.release(watermark):
                final = tally.final_at(index)
                self._judge_bucket(check, rows, final, locate(final))

    def _judge_bucket(
        self,
        check: Check,
        rows: dict[tuple[str, Stream], Counter[str]],
        end: float,
        source: SourcePosition | None,
    ) -> None:
        reference = self._reference[check.name]
        watching = self.watching(check, ())
        for (version, _), calls in rows.items():
            if version != self.baseline:
                continue
            for tool, n in calls.items():
                reference.update_reference(tool, n)
                for status in watching:
                    status.detector.update_reference(tool, n)
            for status in watching:  # a tool held while the baseline was not ready
                self.judge(status, end, source)
        for (version, _), calls in rows.items():
            if version == self.baseline:
                continue
            status = self.status(check, version, ())
            calls.pop(TallyBuckets.FOLDED, None)
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
            "tallies": {name: tally.state() for name, tally in self._tallies.items()},
            "reference": {name: det.state() for name, det in self._reference.items()},
        }

    def _restore_buckets(self, state: dict[str, Any]) -> None:
        for name, tally in self._tallies.items():
            tally.restore(state["tallies"][name])
            self._reference[name] = NovelToolDetector.from_state(state["reference"][name])
