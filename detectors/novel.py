"""A candidate calls a tool its baseline never called."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from detectors.base import Detector, Evidence

__all__ = ["NovelToolDetector"]


class NovelToolDetector(Detector):
    """Fires on the first candidate call of a tool the baseline has never called.

    "Never" means something only once the baseline has made enough calls: if
    the baseline has made ``n`` calls without calling a tool, its rate for that
    tool is below ``3 / n`` with 95% confidence (the "rule of three", Hanley
    and Lippman-Hand 1983). The detector therefore fires only once the
    baseline has made ``min_reference`` calls; a candidate tool seen before
    then is remembered (up to ``max_pending`` of them) and judged when the
    baseline is ready, unless the baseline calls it meanwhile.

    The ``statistic`` is the number of baseline calls made, compared with
    ``threshold`` = ``min_reference``.

    Parameters
    ----------
    min_reference
        Baseline calls needed before an unseen tool counts as novel.
    max_tools
        Distinct baseline tools remembered; more are folded (and counted) so
        memory stays bounded whatever the input.
    max_pending
        Distinct candidate tools held while the baseline is not yet ready.

    Examples
    --------
    >>> det = NovelToolDetector(min_reference=3)
    >>> for tool in ["crm.lookup", "kyc.verify", "crm.lookup"]:
    ...     det.update_reference(tool)
    >>> det.update("crm.lookup"); det.drift_detected
    False
    >>> det.update("iam.grant_admin"); det.drift_detected, det.novel_tool
    (True, 'iam.grant_admin')

    References
    ----------
    J. A. Hanley and A. Lippman-Hand, "If nothing goes wrong, is everything
    all right? Interpreting zero numerators", JAMA 249(13), 1743-1745, 1983.
    """

    state_keys: ClassVar[tuple[str, ...]] = (
        "tools",
        "calls",
        "folded",
        "pending",
        "detected",
        "novel",
        "observations",
    )
    param_keys: ClassVar[tuple[str, ...]] = ("min_reference", "max_tools", "max_pending")

    def __init__(self, min_reference: int = 1000, max_tools: int = 10_000, max_pending: int = 64):
        if min_reference < 1 or max_tools < 1 or max_pending < 0:
            raise ValueError("need min_reference >= 1, max_tools >= 1 and max_pending >= 0")
        self.min_reference = int(min_reference)
        self.max_tools = int(max_tools)
        self.max_pending = int(max_pending)
        self._tools: dict[str, int] = {}
        self._calls = 0
        self._folded = 0
        self._pending: list[str] = []
        self._detected = False
        self._novel = ""
        self._observations = 0

    def update_reference(self, tool: str, count: int = 1) -> None:
        """Record ``count`` baseline calls of ``tool``."""
        self._calls += count
        if tool in self._tools:
            self._tools[tool] += count
        elif len(self._tools) < self.max_tools:
            self._tools[tool] = count
            if tool in self._pending:
                self._pending.remove(tool)
        else:
            self._folded += 1
        if not self._detected and self._pending and self.ready:
            self._fire(self._pending[0])

    def update(self, x: Any) -> None:
        """Record one candidate call of tool ``x``."""
        self._observations += 1
        if self._detected or x in self._tools:
            return
        if self.ready:
            self._fire(str(x))
        elif x not in self._pending and len(self._pending) < self.max_pending:
            self._pending.append(str(x))

    def update_counts(self, counts: Mapping[str, int]) -> None:
        """Record candidate calls given as tool -> count, judged in name order."""
        for tool in sorted(counts):
            self.update(tool)
            self._observations += counts[tool] - 1

    def _fire(self, tool: str) -> None:
        self._detected = True
        self._novel = tool
        self._pending = []

    @property
    def ready(self) -> bool:
        """Whether the baseline has made enough calls for "never called" to mean something."""
        return self._calls >= self.min_reference

    @property
    def conclusive(self) -> bool:
        return self._detected or self.ready

    @property
    def drift_detected(self) -> bool:
        return self._detected

    @property
    def statistic(self) -> float:
        return float(self._calls)

    @property
    def threshold(self) -> float:
        return float(self.min_reference)

    @property
    def novel_tool(self) -> str | None:
        """The tool that fired the detector, if any."""
        return self._novel or None

    @property
    def observations(self) -> int:
        """Candidate calls seen so far."""
        return self._observations

    def reset(self) -> None:
        """Forget the candidate's calls; keep the baseline's tools."""
        self._pending = []
        self._detected = False
        self._novel = ""
        self._observations = 0

    def evidence(self) -> Evidence:
        """1.0 once a novel tool is seen (0.0 before), the tool, and the calls on each side."""
        details: dict[str, Any] = {}
        if self._detected:
            details = {"tool": self._novel, "baseline_rate_upper_95": self.upper_rate}
        return Evidence(
            1.0 if self._detected else 0.0,
            0.0,
            float(self._calls),
            float(self._observations),
            details,
        )

    @property
    def upper_rate(self) -> float:
        """95% upper bound on the baseline's rate of the novel tool (rule of three)."""
        return 3.0 / self._calls if self._calls else math.inf
