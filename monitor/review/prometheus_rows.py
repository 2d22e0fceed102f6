"""History rows from Prometheus series sampled on one grid of steps.

Used by :mod:`monitor.review.prometheus`. Each function takes series keyed by
their label values (``Key``), each a mapping from step time to value
(``Points``), and returns rows in time order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from monitor.history.rows import (
    CheckSample,
    DriftSample,
    VerdictChange,
    VersionSample,
    VersionSpan,
)
from monitor.metrics import CHECK_STATES

__all__ = [
    "Key",
    "Points",
    "check_samples",
    "drift_samples",
    "increments",
    "spans",
    "verdict_changes",
    "version_samples",
]

#: Event kinds counted by ``shiftwatch_model_events_total`` -> VersionSample field.
EVENT_KINDS = {"inference": "inferences", "action": "actions", "outcome": "outcomes"}
_STATE_NAMES = {float(code): name for name, code in CHECK_STATES.items()}

#: A series' values by step time.
Points = dict[float, float]
#: A series' identity: the values of the labels asked for, in order.
Key = tuple[str, ...]


def _num(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


def increments(points: Points, base_at: float) -> Points:
    """What a counter gained at each step, from its values on the step grid.

    The point at ``base_at`` (the step before the period) is the base, not an
    increase; a series that first appears later counts from zero; a value lower
    than the one before is a counter reset, and all of it is new.

    >>> increments({0.0: 5.0, 1.0: 7.0, 2.0: 7.0, 3.0: 2.0}, base_at=0.0)
    {1.0: 2.0, 2.0: 0.0, 3.0: 2.0}
    >>> increments({1.0: 3.0, 2.0: 4.0}, base_at=0.0)
    {1.0: 3.0, 2.0: 1.0}
    """
    out: Points = {}
    before: float | None = None
    for t in sorted(points):
        value = points[t]
        if t > base_at:
            out[t] = value if before is None or value < before else value - before
        before = value
    return out


def check_samples(
    states: dict[Key, Points], gauges: dict[str, dict[Key, Points]], seen: dict[Key, Points]
) -> list[CheckSample]:
    rows = []
    for key, points in states.items():
        model, version, check, segment = key
        for t, code in points.items():
            values = {field: _num(series.get(key, {}).get(t)) for field, series in gauges.items()}
            rows.append(
                CheckSample(
                    model=model,
                    version=version,
                    check=check,
                    segment=segment,
                    at=t,
                    state=_STATE_NAMES.get(code, "inconclusive"),
                    candidate_seen=seen.get((*key, "candidate"), {}).get(t, 0.0),
                    baseline_seen=seen.get((*key, "baseline"), {}).get(t, 0.0),
                    **values,
                )
            )
    rows.sort(key=lambda r: (r.at, r.model, r.version, r.check, r.segment))
    return rows


def version_samples(
    events: dict[Key, Points], latency: dict[str, dict[Key, Points]], baselines: set[Key]
) -> list[VersionSample]:
    counts: dict[tuple[str, str, float], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (model, version, kind), points in events.items():
        if kind in EVENT_KINDS:
            for t, n in points.items():
                counts[(model, version, t)][EVENT_KINDS[kind]] += n
    for part, series in latency.items():
        for (model, version), points in series.items():
            for t, x in points.items():
                counts[(model, version, t)][part] += x
    rows = [
        VersionSample(
            model=model,
            version=version,
            at=t,
            baseline=(model, version) in baselines,
            inferences=round(c["inferences"]),
            actions=round(c["actions"]),
            outcomes=round(c["outcomes"]),
            latency_count=round(c["count"]),
            latency_sum_ms=c["sum"] * 1000.0,
        )
        for (model, version, t), c in counts.items()
        if any(c.values())
    ]
    rows.sort(key=lambda r: (r.at, r.model, r.version))
    return rows


def spans(samples: Iterable[VersionSample]) -> list[VersionSpan]:
    spans: dict[tuple[str, str], VersionSpan] = {}
    for s in samples:
        if not s.inferences:
            continue
        held = spans.get((s.model, s.version))
        spans[(s.model, s.version)] = VersionSpan(
            model=s.model,
            version=s.version,
            baseline=s.baseline,
            first_at=s.at if held is None else min(held.first_at, s.at),
            last_at=s.at if held is None else max(held.last_at, s.at),
            inferences=s.inferences + (0 if held is None else held.inferences),
        )
    return sorted(spans.values(), key=lambda s: (s.model, s.first_at, s.version))


def verdict_changes(
    states: dict[Key, Points], info: dict[Key, Points], rollback: dict[Key, Points]
) -> list[VerdictChange]:
    """The verdict of :func:`monitor.verdict.model_verdict`, step by step, kept on change."""
    actions: dict[tuple[str, str, str], str] = {}
    for model, version, check, _, action, _ in info:
        actions[(model, version, check)] = action
    streams: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for model, version, check, segment in states:
        streams[(model, version)].append((check, segment))
    rows = []
    for (model, version), keys in sorted(streams.items()):
        times = sorted({t for c, s in keys for t in states[(model, version, c, s)]})
        checks = {c for c, _ in keys} | {c for (m, v, c) in actions if (m, v) == (model, version)}
        before: str | None = None
        for t in times:
            state = {
                k: _STATE_NAMES.get(code, "inconclusive")
                for k in keys
                if (code := states[(model, version, *k)].get(t)) is not None
            }
            breached = sorted(k for k, s in state.items() if s == "breach")
            to_roll = [k for k in breached if actions.get((model, version, k[0])) == "rollback"]
            waiting = sorted(c for c in checks if state.get((c, ""), "inconclusive") != "ok")
            if rollback.get((model, version), {}).get(t) == 1.0:
                verdict, reasons = "fail", to_roll or breached
            elif breached:
                verdict, reasons = "inconclusive", breached
            else:
                verdict, reasons = (
                    ("inconclusive" if waiting else "pass"),
                    [(c, "") for c in waiting],
                )
            if verdict == before:
                continue
            before = verdict
            rows.append(
                VerdictChange(
                    model=model,
                    version=version,
                    at=t,
                    verdict=verdict,
                    reasons=tuple(
                        {"check": c, "segment": s, "state": state.get((c, s), "inconclusive")}
                        for c, s in reasons
                    ),
                )
            )
    rows.sort(key=lambda r: (r.at, r.model, r.version))
    return rows


def drift_samples(drift: dict[Key, Points], changes: dict[Key, Points]) -> list[DriftSample]:
    by_step: dict[tuple[str, float], dict[str, Any]] = defaultdict(
        lambda: {"checks": [], "changes": {}}
    )
    for (model, check), points in drift.items():
        for t, flag in points.items():
            row = by_step[(model, t)]
            if flag == 1.0:
                row["checks"].append(check)
            row["changes"][check] = round(changes.get((model, check), {}).get(t, 0.0))
    return [
        DriftSample(
            model=model,
            at=t,
            detected=bool(row["checks"]),
            checks=tuple(sorted(row["checks"])),
            changes=dict(sorted(row["changes"].items())),
        )
        for (model, t), row in sorted(by_step.items(), key=lambda item: (item[0][1], item[0][0]))
    ]
