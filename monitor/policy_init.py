"""A commented starter policy written from observed events (``shiftwatch policy init``).

It names what the events show — models, versions, segment keys and their
cardinality, decisions, actions, tools, labels — and proposes the baseline
(the version with the most inferences) and a check per observed behaviour.
Every tolerance in it is a placeholder, marked for the model owner to set: a
tolerance is agreed before the change, never inferred from data.
"""

from __future__ import annotations

import re

from monitor.profile import EventProfile, ModelProfile

__all__ = ["starter_policy"]

#: Segment keys with more values than this are left out (each value is a stream).
MAX_SEGMENT_VALUES = 50
_NEGATIVE = ("allow", "approve", "accept", "pass", "ok", "negative", "legit")
_POSITIVE = ("fraud", "positive", "bad", "abuse", "malicious", "spam", "true", "yes")
_NAME = re.compile(r"[^A-Za-z0-9._:/-]+")


def _name(text: str) -> str:
    """A policy name made from an observed value (names are letters, digits and . _ : / -)."""
    cleaned = _NAME.sub("-", text).strip("-._:/") or "x"
    return cleaned[:100]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def starter_policy(profile: EventProfile, source: str) -> str:
    """YAML text of a valid policy for every model in ``profile``, with comments."""
    lines = [
        f"# Starter policy written by `shiftwatch policy init` from {source}",
        f"# ({profile.lines:,} lines read). Review every line: the tolerances below are",
        "# placeholders (marked SET ME) to agree with the model owner before the change,",
        "# then run `shiftwatch policy check THIS_FILE --events EVENTS`.",
        "version: 1",
        "models:",
    ]
    for name, model in sorted(profile.models.items()):
        if model.versions:
            lines += _model(name, model)
    if not any(m.versions for m in profile.models.values()):
        raise ValueError(f"{source}: no valid inference events, so there is nothing to watch")
    return "\n".join(lines) + "\n"


def _model(name: str, m: ModelProfile) -> list[str]:
    ranked = [v for v, _ in m.versions.most_common()]
    baseline, candidates = ranked[0], ranked[1:]
    out = [
        f"  - name: {_quote(name)}",
        "    owner: set-me              # SET ME: the team (or email) accountable for the risk",
        f"    baseline: {_quote(baseline)}    # proposed: most inferences "
        f"({m.versions[baseline]:,}); versions seen: "
        + ", ".join(f"{v} ({n:,})" for v, n in m.versions.most_common()),
    ]
    if candidates:
        out.append(f"    candidates: [{', '.join(_quote(v) for v in candidates)}]")
    else:
        out.append("    # candidates: [...]        # only the baseline was seen so far")
    keys = sorted(k for k, values in m.segments.items() if len(values) <= MAX_SEGMENT_VALUES)
    wide = sorted(k for k, values in m.segments.items() if len(values) > MAX_SEGMENT_VALUES)
    if keys:
        detail = ", ".join(f"{k}: {len(m.segments[k])} values" for k in keys)
        out.append(f"    segments: [{', '.join(_quote(k) for k in keys)}]    # {detail}")
    if wide:
        out.append(f"    # not segmented (too many values, each would be a stream): {wide}")
    negative = [d for d in m.decisions if d.lower() in _NEGATIVE]
    positive = [label for label in m.labels if label.lower() in _POSITIVE]
    fn = bool(negative and positive)
    if m.decisions:
        seen = ", ".join(f"{d} ({n:,})" for d, n in m.decisions.most_common())
        out.append(f"    # decisions seen: {seen}")
    if m.labels:
        seen = ", ".join(f"{label} ({n:,})" for label, n in m.labels.most_common())
        out.append(f"    # outcome labels seen: {seen}")
    if fn:
        out += [
            f"    negative_decisions: [{', '.join(_quote(d) for d in negative)}]",
            f"    positive_labels: [{', '.join(_quote(label) for label in positive)}]",
        ]
    out += [
        "    false_alarm: {arl0: 1000000}  # candidate inferences between false alarms",
        "    checks:",
    ]
    if m.scores:
        out.append(
            "      - {name: score-drift, metric: score_distribution, distance: ks, "
            "tolerance: {max_distance: 0.1}, action: page}    # SET ME"
        )
    if m.latencies:
        out.append(
            "      - {name: latency, metric: latency, tolerance: {max_distance: 0.1}, "
            "action: log}    # SET ME"
        )
    for decision, _ in m.decisions.most_common(5):
        out.append(
            f"      - {{name: {_quote('decision-' + _name(decision))}, metric: decision_rate, "
            f"where: {{decision: {_quote(decision)}}}, "
            "tolerance: {max_relative_change: 0.25}, action: page}    # SET ME"
        )
    for action, _ in m.actions.most_common(5):
        out.append(
            f"      - {{name: {_quote('action-' + _name(action))}, metric: action_rate, "
            f"where: {{action: {_quote(action)}}}, "
            "tolerance: {max_relative_change: 0.25}, action: page}    # SET ME"
        )
    if m.tools():
        out.append(
            "      - {name: tool-mix, metric: tool_distribution, "
            "tolerance: {max_distance: 0.05}, action: page}    # SET ME; "
            f"tools seen: {', '.join(sorted(m.tools())[:10])}"
        )
        out.append(
            "      - {name: new-privileged-tool, metric: novel_tool, "
            "where: {privileged: true}, action: rollback}"
            + (
                f"    # privileged tools seen: {', '.join(sorted(m.tools(privileged=True))[:10])}"
                if m.tools(privileged=True)
                else "    # no privileged call seen so far"
            )
        )
    if fn:
        out.append(
            "      - {name: missed-positives, metric: false_negative_rate, "
            "tolerance: {max_increase: 0.01}, action: rollback}    # SET ME"
        )
        if m.scores:
            out.append(
                "      - {name: missed-positives-proxy, metric: expected_false_negative_rate, "
                "tolerance: {max_increase: 0.01}, action: page}    # SET ME; label-free, "
                "moves before the labels do"
            )
    elif m.labels and m.decisions:
        out += [
            "      # Outcomes carry labels: to watch missed positives, set the model's",
            "      # negative_decisions (e.g. [allow]) and positive_labels (one of: "
            f"{', '.join(sorted(m.labels)[:10])}),",
            "      # then add:",
            "      # - {name: missed-positives, metric: false_negative_rate, "
            "tolerance: {max_increase: 0.01}, action: rollback}",
        ]
    if not (m.scores or m.latencies or m.decisions or m.actions):
        out.append("      # no score, latency, decision or action was seen: add a check by hand")
    return out
