"""The tool-use mix and escalations of the baseline and the candidate over the period.

Each action (and tool) is counted per version from the history's tool
samples and given two ways: per 1,000 inferences of that version (the rate
the ``action_rate`` checks compare; the canary share does not bias it), and
as a share of that version's actions (the mix ``tool_distribution``
compares). Privileged tools are marked, and so is any action the candidate
took that the baseline never took in the period.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from monitor.history.rows import ToolSample, VersionSample
from monitor.review.model import ToolShare

__all__ = ["tool_mix"]


def tool_mix(
    tools: Iterable[ToolSample],
    served: Iterable[VersionSample],
    *,
    baseline: str,
    candidate: str,
) -> tuple[ToolShare, ...]:
    """Each action and tool of either version: privileged first, then by the candidate's rate."""
    counts: dict[str, Counter[tuple[str, str]]] = {baseline: Counter(), candidate: Counter()}
    privileged: set[tuple[str, str]] = set()
    for t in tools:
        if t.version in counts:
            counts[t.version][(t.action, t.tool)] += t.count
            if t.privileged:
                privileged.add((t.action, t.tool))
    inferences = Counter[str]()
    for s in served:
        inferences[s.version] += s.inferences
    totals = {v: sum(c.values()) for v, c in counts.items()}

    def per_1000(version: str, key: tuple[str, str]) -> float:
        n = inferences[version]
        return 1000.0 * counts[version][key] / n if n else 0.0

    def share(version: str, key: tuple[str, str]) -> float:
        n = totals[version]
        return counts[version][key] / n if n else 0.0

    keys = set(counts[baseline]) | set(counts[candidate])
    rows = [
        ToolShare(
            action=action,
            tool=tool,
            privileged=(action, tool) in privileged,
            baseline_per_1000=per_1000(baseline, (action, tool)),
            candidate_per_1000=per_1000(candidate, (action, tool)),
            baseline_share=share(baseline, (action, tool)),
            candidate_share=share(candidate, (action, tool)),
            baseline_count=counts[baseline][(action, tool)],
            candidate_count=counts[candidate][(action, tool)],
        )
        for action, tool in keys
    ]
    rows.sort(key=lambda r: (not r.privileged, -r.candidate_per_1000, r.action, r.tool))
    return tuple(rows)
