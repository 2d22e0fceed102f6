"""What a replay saw: events per version, each check's final state, the verdicts, warnings.

``shiftwatch replay`` prints :func:`render` of :func:`replay_summary`, or the
summary itself as JSON with ``--summary-json``. A check that is
``inconclusive`` says how much more data it needs, so "inside tolerance" is
never confused with "too little data to say".
"""

from __future__ import annotations

import math
from typing import Any

from monitor.pipeline import Pipeline
from monitor.router import OTHER_VERSIONS
from monitor.streams import segment_label

__all__ = ["render", "replay_summary"]


def _needs(detector: Any) -> dict[str, int]:
    """Observations still missing before the check can be conclusive (0: none)."""
    seen = detector.evidence()
    out: dict[str, int] = {}
    for side, minimum, have in (
        ("baseline", getattr(detector, "min_reference", None), seen.baseline_seen),
        ("candidate", getattr(detector, "min_observations", None), seen.candidate_seen),
    ):
        if minimum is not None and math.isfinite(have):
            out[side] = max(0, math.ceil(float(minimum) - float(have)))
    return out


def _number(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def replay_summary(pipeline: Pipeline) -> dict[str, Any]:
    """The summary of everything ``pipeline`` processed (JSON-ready)."""
    ledger = pipeline.ledger
    counted = pipeline.router.inferences
    warnings: list[str] = []
    models: list[dict[str, Any]] = []
    for runners in pipeline.models.values():
        policy = runners.policy
        versions = {v: n for (m, v), n in sorted(counted.items()) if m == policy.name}
        listed = list(policy.candidates or [])
        watched = listed or [v for v in versions if policy.watches(v)]
        if not versions.get(policy.baseline):
            warnings.append(
                f"model {policy.name}: no inference of its baseline {policy.baseline!r}; "
                f"versions seen: {', '.join(versions) or 'none'}"
            )
        for version in listed:
            if not versions.get(version):
                warnings.append(
                    f"model {policy.name}: candidate {version!r} got no inferences "
                    f"(a typo in candidates?); versions seen: {', '.join(versions) or 'none'}"
                )
        unwatched = {
            v: n for v, n in versions.items() if v != policy.baseline and not policy.watches(v)
        }
        for version, n in unwatched.items():
            warnings.append(
                f"model {policy.name}: version {version!r} ({n:,} inferences) is neither the "
                "baseline nor a listed candidate, so it was not monitored"
            )
        statuses = runners.statuses()
        candidates = []
        for version in watched:
            verdict = pipeline.verdicts.get(policy.name, version)
            checks = [
                {
                    "check": s.check.name,
                    "metric": s.check.metric.value,
                    "tolerance": s.check.tolerance.model_dump(exclude_none=True),
                    "segment": view_segment(s.stream),
                    "state": s.state,
                    "observed": _number(s.detector.evidence().observed),
                    "reference": _number(s.detector.evidence().reference),
                    **({"needs": _needs(s.detector)} if s.state == "inconclusive" else {}),
                }
                for s in sorted(statuses, key=lambda s: (s.check.name, view_segment(s.stream)))
                if s.version == version
            ]
            judged = {c["check"] for c in checks if not c["segment"]}
            checks += [
                {
                    "check": c.name,
                    "metric": c.metric.value,
                    "tolerance": c.tolerance.model_dump(exclude_none=True),
                    "segment": "",
                    "state": "inconclusive",
                    "observed": None,
                    "reference": None,
                    "needs": {},
                }
                for c in policy.checks
                if c.name not in judged
            ]
            candidates.append(
                {
                    "version": version,
                    "inferences": versions.get(version, 0),
                    "verdict": verdict["verdict"] if verdict else "inconclusive",
                    "reasons": [
                        {k: r.get(k) for k in ("check", "segment", "state", "reason")}
                        for r in (verdict["reasons"] if verdict else [])
                    ],
                    "checks": checks,
                }
            )
        models.append(
            {
                "model": policy.name,
                "baseline": policy.baseline,
                "baseline_inferences": versions.get(policy.baseline, 0),
                "candidates": candidates,
                "unmonitored_versions": unwatched,
            }
        )
    unknown = {
        model
        for model, version in counted
        if model not in pipeline.models and (model, version) != OTHER_VERSIONS
    }
    if unknown:
        warnings.append(f"models not in the policy: {', '.join(sorted(unknown))}")
    if ledger.late:
        warnings.append(
            f"{ledger.late:,} events came after their time had been judged and were not "
            "counted: the input is not in time order (sort it by time, or give "
            "--reorder-window SECONDS to allow that much disorder)"
        )
    if ledger.unjoined:
        warnings.append(
            f"{ledger.unjoined:,} actions or outcomes had no inference with their request_id "
            "before them (out of order, or their inference is missing)"
        )
    return {
        "consumed": ledger.consumed,
        "processed": ledger.processed,
        "dead_lettered": ledger.dead_lettered,
        "duplicates": ledger.duplicates,
        "unjoined": ledger.unjoined,
        "unmonitored": ledger.unmonitored,
        "late": ledger.late,
        "alerts": ledger.alerts,
        "models": models,
        "warnings": warnings,
    }


def view_segment(stream: Any) -> str:
    return str(segment_label(stream))


def _detail(check: dict[str, Any]) -> str:
    """What a check's state rests on: the data it still needs, or what it observed."""
    observed, reference = check["observed"], check["reference"]
    if check["state"] == "inconclusive":
        needs = check.get("needs", {})
        more = [f"{n:,} more {side}" for side, n in needs.items() if n]
        if more:
            return f": needs about {' and '.join(more)} observations"
        return ": no data judged yet" if observed is None else ": waiting for its data to be judged"
    if observed is None:
        return ""
    if "max_distance" in check["tolerance"]:
        return f": distance {observed:.4g} (tolerance {check['tolerance']['max_distance']:g})"
    if reference is None:
        return f": observed {observed:.4g}"
    return f": observed {observed:.4g}, baseline {reference:.4g}"


def render(summary: dict[str, Any]) -> str:
    """The summary for a person: totals, then per candidate its verdict and checks."""
    lines = [
        f"read {summary['consumed']:,} events: processed {summary['processed']:,}, "
        f"dead-lettered {summary['dead_lettered']:,}, duplicates {summary['duplicates']:,}, "
        f"late {summary['late']:,}, unjoined {summary['unjoined']:,}, "
        f"unmonitored {summary['unmonitored']:,}; {summary['alerts']} alert record(s)"
    ]
    for model in summary["models"]:
        lines.append(
            f"model {model['model']}: baseline {model['baseline']} "
            f"({model['baseline_inferences']:,} inferences)"
        )
        for cand in model["candidates"]:
            lines.append(
                f"  candidate {cand['version']} ({cand['inferences']:,} inferences): "
                f"verdict {cand['verdict']}"
            )
            checks = cand["checks"]
            for check in checks:
                if check["segment"] and check["state"] != "breach":
                    continue  # a segment is listed when it breaches; the others are counted
                where = f" [{check['segment']}]" if check["segment"] else ""
                waiting = sum(
                    1
                    for c in checks
                    if c["check"] == check["check"]
                    and c["segment"]
                    and c["state"] == "inconclusive"
                )
                more = (
                    f" ({waiting} segment stream(s) inconclusive)" if not where and waiting else ""
                )
                lines.append(f"    {check['check']}{where}: {check['state']}{_detail(check)}{more}")
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return "\n".join(lines)
