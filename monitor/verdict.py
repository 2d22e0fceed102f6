"""The verdict on a candidate version: ``pass``, ``fail`` or ``inconclusive``, with reasons.

- ``fail``: a check whose action is ``rollback`` is breached (firing), in any
  stream: roll back to the baseline (``rollback_to``).
- ``pass``: every check of the policy is conclusive and ``ok`` on the overall
  stream, and nothing is breached.
- ``inconclusive``: anything else: too little data on either side, or a breach
  of a check whose action is not ``rollback`` (``page``: a person decides).
  Too little data never means roll back.

The pipeline publishes verdicts once per batch into a :class:`VerdictBoard`;
the HTTP thread only reads the published snapshots.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from detectors import NovelToolDetector
from monitor.checks import CheckStatus, ModelMonitor, segment_label

__all__ = ["VerdictBoard", "check_view", "model_verdict"]


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def check_view(status: CheckStatus) -> dict[str, Any]:
    """One check on one stream, as the verdict's JSON shows it."""
    observed, reference = status.observed_reference
    det = status.detector
    view: dict[str, Any] = {
        "check": status.check.name,
        "metric": status.check.metric.value,
        "action": status.check.action,
        "segment": segment_label(status.stream),
        "state": status.state,
        "observed": _num(observed),
        "reference": _num(reference),
        "statistic": _num(det.statistic),
        "threshold": _num(det.threshold),
        "tolerance": status.check.tolerance.model_dump(exclude_none=True),
        "reason": status.reason,
    }
    if status.firing is not None:
        view["alert_id"] = status.firing.alert_id
        view["fired_at"] = status.firing.fired_at
        view["reason"] = "candidate outside tolerance (alert firing)"
    if isinstance(det, NovelToolDetector) and det.novel_tool is not None:
        view["tool"] = det.novel_tool
    return view


def model_verdict(monitor: ModelMonitor, version: str) -> dict[str, Any]:
    """The verdict on candidate ``version`` of ``monitor``'s model."""
    policy = monitor.policy
    statuses = [s for s in monitor.statuses.values() if s.version == version]
    views = [check_view(s) for s in statuses]
    views.sort(key=lambda v: (v["check"], v["segment"]))
    breached = [v for v in views if v["state"] == "breach"]
    rollback = [v for v in breached if v["action"] == "rollback"]
    overall = {s.check.name: s for s in statuses if not s.stream}
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
    }


class VerdictBoard:
    """The latest verdict per (model, version), published by the pipeline, read by HTTP."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._verdicts: dict[tuple[str, str], dict[str, Any]] = {}

    def publish(
        self, monitor: ModelMonitor, versions: set[str] | list[str]
    ) -> dict[str, dict[str, Any]]:
        """Compute and publish the verdicts of ``versions``; they are returned by version."""
        fresh = {v: model_verdict(monitor, v) for v in versions}
        with self._lock:
            self._verdicts.update({(monitor.policy.name, v): d for v, d in fresh.items()})
        return fresh

    def remove(self, model: str, version: str) -> None:
        with self._lock:
            self._verdicts.pop((model, version), None)

    def get(self, model: str, version: str) -> dict[str, Any] | None:
        with self._lock:
            return self._verdicts.get((model, version))

    def known(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._verdicts)
