"""A policy checked against real events: what it names that the events never show.

A policy can be valid and still watch nothing: a candidate spelled
differently from what the service emits, a ``where`` no event matches, a
segment key no inference carries, a tool never called. Each such check would
stay ``inconclusive`` (or silent) forever. :func:`lint` lists them, one line
each with the fix, from an :class:`~monitor.profile.EventProfile`.
"""

from __future__ import annotations

from monitor.policy import ModelPolicy, Policy
from monitor.profile import EventProfile, ModelProfile
from monitor.suggest import did_you_mean
from monitor.vocabulary import LABEL_METRICS, Metric

__all__ = ["lint"]


def lint(policy: Policy, profile: EventProfile) -> list[str]:
    """Warnings, one line each: what the policy names that the events never show."""
    out: list[str] = []
    for model in policy.models:
        seen = profile.models.get(model.name)
        if seen is None or not seen.versions:
            hint = did_you_mean(model.name, profile.models)
            out.append(
                f"model {model.name}: no inference in the events{hint}; "
                f"models seen: {', '.join(sorted(profile.models)) or 'none'}"
            )
            continue
        out += [f"model {model.name}: {w}" for w in _model(model, seen)]
    extra = sorted(set(profile.models) - {m.name for m in policy.models})
    if extra:
        out.append(f"models in the events but not in the policy: {', '.join(extra)}")
    return out


def _model(model: ModelPolicy, seen: ModelProfile) -> list[str]:
    out: list[str] = []
    versions = ", ".join(f"{v} ({n:,})" for v, n in seen.versions.most_common())
    for role, version in [("baseline", model.baseline)] + [
        ("candidate", v) for v in model.candidates or []
    ]:
        if version not in seen.versions:
            out.append(
                f"{role} {version!r} never appears{did_you_mean(version, seen.versions)}; "
                f"versions seen: {versions}"
            )
    for key in model.segments:
        if key not in seen.segments:
            out.append(
                f"segment key {key!r} is on no inference{did_you_mean(key, seen.segments)}; "
                f"keys seen: {', '.join(sorted(seen.segments)) or 'none'}"
            )
    for check in model.checks:
        out += [f"check {check.name}: {w}" for w in _check(check.metric, check.where, seen)]
        if check.metric is Metric.EXPECTED_FALSE_NEGATIVE_RATE and not seen.scores:
            out.append(f"check {check.name}: no inference has a score to calibrate")
        if check.metric in LABEL_METRICS:
            labels = set(model.positive_labels) & set(seen.labels)
            if not labels:
                out.append(
                    f"check {check.name}: no outcome has a label in positive_labels "
                    f"{model.positive_labels}; labels seen: "
                    f"{', '.join(sorted(seen.labels)) or 'none'}"
                )
            if not set(model.negative_decisions) & set(seen.decisions):
                out.append(
                    f"check {check.name}: no inference has a decision in negative_decisions "
                    f"{model.negative_decisions}; decisions seen: "
                    f"{', '.join(sorted(seen.decisions)) or 'none'}"
                )
    return out


def _check(metric: Metric, where: dict[str, str | bool], seen: ModelProfile) -> list[str]:
    if metric is Metric.SCORE_DISTRIBUTION and not seen.scores:
        return ["no inference has a score"]
    if metric is Metric.LATENCY and not seen.latencies:
        return ["no inference has a latency_ms"]
    if metric is Metric.DECISION_RATE:
        wanted = where.get("decision")
        if isinstance(wanted, str) and wanted not in seen.decisions:
            return [
                f"where.decision {wanted!r} matches no inference"
                f"{did_you_mean(wanted, seen.decisions)}; decisions seen: "
                f"{', '.join(sorted(seen.decisions)) or 'none'}"
            ]
        return []
    if metric is Metric.NOVEL_TOOL:
        # Matching nothing is the healthy state: the check is for a call never seen before.
        return [] if seen.tools() else ["no action names a tool, so no tool can be novel"]
    if metric in (Metric.ACTION_RATE, Metric.TOOL_DISTRIBUTION):
        out = []
        tool = where.get("tool")
        if isinstance(tool, str) and tool not in seen.tools():
            out.append(
                f"tool {tool!r} was never called{did_you_mean(tool, seen.tools())}; "
                f"tools seen: {', '.join(sorted(seen.tools())) or 'none'}"
            )
        action = where.get("action")
        if isinstance(action, str) and action not in seen.actions:
            out.append(
                f"where.action {action!r} matches no action{did_you_mean(action, seen.actions)}"
                f"; actions seen: {', '.join(sorted(seen.actions)) or 'none'}"
            )
        if not out and where and not seen.matching_actions(where):
            out.append(f"where {where} matches no action in the events")
        if metric is Metric.TOOL_DISTRIBUTION and not seen.tools():
            out.append("no action names a tool")
        return out
    return []
