"""The verdict on a candidate version: ``pass``, ``fail`` or ``inconclusive``, with reasons.

- ``fail``: a check whose action is ``rollback`` is breached (firing), in any
  stream: roll back to the baseline (``rollback_to``).
- ``pass``: every check of the policy is conclusive and ``ok`` on the overall
  stream, and nothing is breached.
- ``inconclusive``: anything else: too little data on either side, or a breach
  of a check whose action is not ``rollback`` (``page``: a person decides).
  Too little data never means roll back.

Every verdict also says whether the baseline itself drifted
(``baseline_drift``, :mod:`monitor.baseline_drift`): then the world changed
under both versions, and each reason on a check whose baseline drifted says
that the candidate is judged against a moving baseline.

The pipeline publishes verdicts once per batch into a :class:`VerdictBoard`;
the HTTP thread and the metrics collector (:mod:`monitor.metrics`) only read
the published snapshots.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from monitor.episodes import CheckStatus
from monitor.policy import ModelPolicy
from monitor.streams import segment_label

__all__ = [
    "NO_BASELINE_DRIFT",
    "Published",
    "VerdictBoard",
    "allowed_band",
    "check_view",
    "model_verdict",
]


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def allowed_band(status: CheckStatus[Any, Any]) -> tuple[float | None, float | None]:
    """The candidate values the check allows, (lower, upper), in the metric's own units.

    A rate check allows what lies between the boundary rates its detector tests
    (:attr:`detectors.rate.RateShiftDetector.boundaries`: the tolerance around
    the baseline's rate, moved out by the baseline's own standard error); a rate
    with no lower tolerance is bounded below by 0, one with no upper tolerance
    has no upper bound (None). A distance check allows 0 to ``max_distance``, and
    a novel-tool check allows no novel tool at all (0 to 0).
    """
    boundaries = getattr(status.detector, "boundaries", None)
    if isinstance(boundaries, tuple):
        up, down = boundaries
        return (0.0 if down is None else _num(down)), _num(up)
    limit = status.check.tolerance.max_distance
    return 0.0, (0.0 if limit is None else float(limit))


def check_view(status: CheckStatus[Any, Any]) -> dict[str, Any]:
    """One check on one stream, as the verdict's JSON shows it.

    ``allowed`` is :func:`allowed_band`; ``seen`` counts the observations behind
    each side and ``needed`` the minimum each side needs before the test runs
    (the detector's ``min_reference`` / ``min_observations``; 1 where it has none).
    """
    det = status.detector
    seen = det.evidence()
    lower, upper = allowed_band(status)
    view: dict[str, Any] = {
        "check": status.check.name,
        "metric": status.check.metric.value,
        "action": status.check.action,
        "segment": segment_label(status.stream),
        "state": status.state,
        "observed": _num(seen.observed),
        "reference": _num(seen.reference),
        "statistic": _num(det.statistic),
        "threshold": _num(det.threshold),
        "tolerance": status.check.tolerance.model_dump(exclude_none=True),
        "allowed": {"lower": lower, "upper": upper},
        "seen": {"candidate": float(seen.candidate_seen), "baseline": float(seen.baseline_seen)},
        "needed": {
            "candidate": float(getattr(det, "min_observations", 1)),
            "baseline": float(getattr(det, "min_reference", 1)),
        },
        "reason": status.reason,
    }
    if status.firing is not None:
        view["alert_id"] = status.firing.alert_id
        view["fired_at"] = status.firing.fired_at
    if "tool" in seen.details:
        view["tool"] = seen.details["tool"]
    return view


#: ``baseline_drift`` of a verdict published without a baseline watch.
NO_BASELINE_DRIFT: dict[str, Any] = {"detected": False, "since": None, "checks": [], "changes": {}}


def model_verdict(
    policy: ModelPolicy,
    statuses: Iterable[CheckStatus[Any, Any]],
    version: str,
    baseline_drift: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The verdict on candidate ``version`` of ``policy``'s model, from its check statuses.

    ``baseline_drift``: :meth:`monitor.baseline_drift.BaselineDrift.view`, shown
    as is and added to the reason of each check it names.
    """
    drift = baseline_drift if baseline_drift is not None else NO_BASELINE_DRIFT
    mine = [s for s in statuses if s.version == version]
    views = [check_view(s) for s in mine]
    views.sort(key=lambda v: (v["check"], v["segment"]))
    breached = [v for v in views if v["state"] == "breach"]
    rollback = [v for v in breached if v["action"] == "rollback"]
    overall = {s.check.name for s in mine if not s.stream}
    reasons: list[dict[str, Any]]
    if rollback:
        verdict, reasons = "fail", rollback
    elif breached:
        verdict, reasons = "inconclusive", breached
    else:
        missing = [
            {
                "check": c.name,
                "metric": c.metric.value,
                "action": c.action,
                "segment": "",
                "state": "inconclusive",
                "reason": "no candidate data yet",
            }
            for c in policy.checks
            if c.name not in overall
        ]
        waiting = [v for v in views if v["segment"] == "" and v["state"] == "inconclusive"]
        reasons = missing + waiting
        verdict = "inconclusive" if reasons else "pass"
    if drift["detected"]:
        drifted = set(drift["checks"])
        reasons = [
            {**r, "reason": f"{r['reason']}; {drift['reason']}"} if r["check"] in drifted else r
            for r in reasons
        ]
    return {
        "model": policy.name,
        "version": version,
        "baseline": policy.baseline,
        "rollback_to": policy.baseline,
        "verdict": verdict,
        "reasons": reasons,
        "checks": views,
        "owner": policy.owner,
        "controls": list(policy.controls),
        "baseline_drift": drift,
    }


@dataclass(frozen=True, slots=True)
class Published:
    """One candidate's verdict as published, with the policy's checks (for the metrics)."""

    policy: ModelPolicy
    verdict: dict[str, Any]


class VerdictBoard:
    """The latest verdict per (model, version), published by the pipeline, read by HTTP."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._published: dict[tuple[str, str], Published] = {}

    def publish(
        self,
        policy: ModelPolicy,
        statuses: Iterable[CheckStatus[Any, Any]],
        versions: Iterable[str],
        baseline_drift: dict[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Compute and publish the verdicts of ``versions``; they are returned by version."""
        every = list(statuses)
        fresh = {v: model_verdict(policy, every, v, baseline_drift) for v in versions}
        with self._lock:
            for version, verdict in fresh.items():
                self._published[(policy.name, version)] = Published(policy, verdict)
        return fresh

    def remove(self, model: str, version: str) -> None:
        with self._lock:
            self._published.pop((model, version), None)

    def get(self, model: str, version: str) -> dict[str, Any] | None:
        with self._lock:
            published = self._published.get((model, version))
        return published.verdict if published is not None else None

    def known(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._published)

    def snapshot(self) -> list[Published]:
        """Every published verdict, for one scrape (verdicts are replaced, never mutated)."""
        with self._lock:
            return [self._published[k] for k in sorted(self._published)]
