"""Tests of the policy file: the reference example validates; every mistake is named with a fix."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.policy import (
    Check,
    Metric,
    ModelPolicy,
    Policy,
    PolicyError,
    load_policy,
    parse_policy,
)

#: A reference policy: one model and seven checks, in the format of docs/policy.md.
EXAMPLE_POLICY = """\
version: 1
models:
  - name: fraud-scorer
    owner: fraud-ml-oncall          # accountable for the residual risk
    baseline: v7-fp32               # the reference version
    candidates: [v7-int8]           # versions under watch; omitted = every non-baseline version
    segments: [lang, amount_band]   # segment keys fanned out, each value its own stream, plus overall
    negative_decisions: [allow]     # decisions counted as "negative"
    positive_labels: [fraud]        # outcome labels that make a negative decision a false negative
    false_alarm: {arl0: 1000000}    # expected candidate inferences between false alarms, all checks and segments together
    controls: ["NIST CSF 2.0 GV.RM-01", "NIST AI RMF GOVERN", "OWASP Agentic Top 10 A06"]
    checks:
      - {name: score-drift, metric: score_distribution, distance: ks, tolerance: {max_distance: 0.1}, action: page}
      - {name: fn-proxy, metric: false_negative_rate, tolerance: {max_increase: 0.005}, action: rollback}
      - {name: deny-rate, metric: decision_rate, where: {decision: deny}, tolerance: {max_relative_change: 0.2}, action: page}
      - {name: escalations, metric: action_rate, where: {action: escalation}, tolerance: {max_relative_change: 0.25}, action: rollback}
      - {name: refund-tool, metric: action_rate, where: {action: tool_call, tool: refund.issue}, tolerance: {max_increase: 0.002}, action: rollback}
      - {name: tool-mix, metric: tool_distribution, tolerance: {max_distance: 0.05}, action: page}
      - {name: new-privileged-tool, metric: novel_tool, where: {privileged: true}, action: rollback}
"""  # noqa: E501 - one check per line, as in the demo policy

MODEL = "models[fraud-scorer]"
#: Index of each check in EXAMPLE_POLICY.
CHECK = {
    "score-drift": 0,
    "fn-proxy": 1,
    "deny-rate": 2,
    "escalations": 3,
    "refund-tool": 4,
    "tool-mix": 5,
    "new-privileged-tool": 6,
}

Raw = dict[str, Any]


def raw_policy() -> Raw:
    """A fresh, mutable copy of the example policy as parsed YAML."""
    return copy.deepcopy(yaml.safe_load(EXAMPLE_POLICY))


def model_of(raw: Raw) -> Raw:
    """The first (only) model of a raw policy."""
    return raw["models"][0]


def check_of(raw: Raw, name: str) -> Raw:
    """The raw check called ``name`` of the first model."""
    return model_of(raw)["checks"][CHECK[name]]


def problems_after(mutate: Callable[[Raw], None]) -> list[tuple[str, str, str]]:
    """Apply ``mutate`` to the example policy, validate it and return the problems found."""
    raw = raw_policy()
    mutate(raw)
    with pytest.raises(PolicyError) as info:
        parse_policy(raw, "test.yaml")
    assert info.value.problems, "a PolicyError must list at least one problem"
    assert info.value.source == "test.yaml"
    return info.value.problems


# --- the good policy ---------------------------------------------------------------------------


def test_example_policy_validates_with_seven_checks() -> None:
    """The full example policy is valid and has its seven checks in order."""
    policy = parse_policy(yaml.safe_load(EXAMPLE_POLICY))
    assert isinstance(policy, Policy)
    assert policy.version == 1
    assert len(policy.models) == 1
    model = policy.models[0]
    assert len(model.checks) == 7
    assert [c.name for c in model.checks] == list(CHECK)


def test_example_policy_fields_are_read() -> None:
    """Every field of the example policy is read into the model policy."""
    model = parse_policy(yaml.safe_load(EXAMPLE_POLICY)).models[0]
    assert model.name == "fraud-scorer"
    assert model.owner == "fraud-ml-oncall"
    assert model.baseline == "v7-fp32"
    assert model.candidates == ["v7-int8"]
    assert model.segments == ["lang", "amount_band"]
    assert model.negative_decisions == ["allow"]
    assert model.positive_labels == ["fraud"]
    assert model.false_alarm.arl0 == 1_000_000
    assert model.controls == [
        "NIST CSF 2.0 GV.RM-01",
        "NIST AI RMF GOVERN",
        "OWASP Agentic Top 10 A06",
    ]


@pytest.mark.parametrize(
    ("name", "metric", "where", "action"),
    [
        ("score-drift", Metric.SCORE_DISTRIBUTION, {}, "page"),
        ("fn-proxy", Metric.FALSE_NEGATIVE_RATE, {}, "rollback"),
        ("deny-rate", Metric.DECISION_RATE, {"decision": "deny"}, "page"),
        ("escalations", Metric.ACTION_RATE, {"action": "escalation"}, "rollback"),
        (
            "refund-tool",
            Metric.ACTION_RATE,
            {"action": "tool_call", "tool": "refund.issue"},
            "rollback",
        ),
        ("tool-mix", Metric.TOOL_DISTRIBUTION, {}, "page"),
        ("new-privileged-tool", Metric.NOVEL_TOOL, {"privileged": True}, "rollback"),
    ],
)
def test_example_policy_checks_are_read(
    name: str, metric: Metric, where: dict[str, Any], action: str
) -> None:
    """Each check of the example policy keeps its metric, filter and action."""
    check = parse_policy(yaml.safe_load(EXAMPLE_POLICY)).models[0].checks[CHECK[name]]
    assert check.name == name
    assert check.metric is metric
    assert check.where == where
    assert check.action == action


def test_example_policy_tolerances_are_read() -> None:
    """Tolerances of the example checks are read with the right kind of bound."""
    checks = {c.name: c for c in parse_policy(yaml.safe_load(EXAMPLE_POLICY)).models[0].checks}
    assert checks["score-drift"].distance == "ks"
    assert checks["score-drift"].tolerance.max_distance == pytest.approx(0.1)
    assert checks["fn-proxy"].tolerance.max_increase == pytest.approx(0.005)
    assert checks["deny-rate"].tolerance.max_relative_change == pytest.approx(0.2)
    assert checks["tool-mix"].tolerance.max_distance == pytest.approx(0.05)
    assert checks["new-privileged-tool"].tolerance.is_empty
    assert checks["new-privileged-tool"].where["privileged"] is True


def test_load_policy_reads_the_example_policy_from_a_file(tmp_path: Path) -> None:
    """``load_policy`` reads and validates the example policy from disk."""
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE_POLICY, encoding="utf-8")
    policy = load_policy(path)
    assert len(policy.models[0].checks) == 7
    assert load_policy(str(path)) == policy


def test_policy_model_lookup() -> None:
    """``Policy.model`` finds a model by name and returns None for an unknown one."""
    policy = parse_policy(yaml.safe_load(EXAMPLE_POLICY))
    found = policy.model("fraud-scorer")
    assert found is not None
    assert found.owner == "fraud-ml-oncall"
    assert policy.model("nope") is None


# --- errors: field path and fix -------------------------------------------------------------------


def set_in(path: tuple[Any, ...], value: Any) -> Callable[[Raw], None]:
    """A mutation setting ``raw[path...] = value``."""

    def mutate(raw: Raw) -> None:
        node: Any = raw
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return mutate


def drop(path: tuple[Any, ...]) -> Callable[[Raw], None]:
    """A mutation deleting ``raw[path...]``."""

    def mutate(raw: Raw) -> None:
        node: Any = raw
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


def chk(name: str) -> tuple[Any, ...]:
    """The raw path of the example policy's check ``name``."""
    return ("models", 0, "checks", CHECK[name])


ERRORS = [
    pytest.param(
        set_in((*chk("fn-proxy"), "metric"), "fnr"),
        f"{MODEL}.checks[fn-proxy].metric",
        "false_negative_rate",
        "use one of the values listed",
        id="unknown-metric",
    ),
    pytest.param(
        set_in(("modles",), []),
        "modles",
        "Extra inputs",
        "check its spelling against docs/policy.md",
        id="unknown-top-level-field",
    ),
    pytest.param(
        set_in(("models", 0, "segmnts"), ["lang"]),
        f"{MODEL}.segmnts",
        "Extra inputs",
        "check its spelling against docs/policy.md",
        id="unknown-model-field",
    ),
    pytest.param(
        set_in((*chk("score-drift"), "tolerence"), {"max_distance": 0.1}),
        f"{MODEL}.checks[score-drift].tolerence",
        "Extra inputs",
        "check its spelling against docs/policy.md",
        id="unknown-check-field",
    ),
    pytest.param(
        set_in((*chk("deny-rate"), "tolerance", "max_relative"), 0.2),
        f"{MODEL}.checks[deny-rate].tolerance.max_relative",
        "Extra inputs",
        "check its spelling against docs/policy.md",
        id="unknown-tolerance-field",
    ),
    pytest.param(
        drop(("models", 0, "baseline")),
        f"{MODEL}.baseline",
        "Field required",
        "add this field",
        id="missing-baseline",
    ),
    pytest.param(
        drop(("models", 0, "owner")),
        f"{MODEL}.owner",
        "Field required",
        "add this field",
        id="missing-owner",
    ),
    pytest.param(
        drop((*chk("deny-rate"), "tolerance")),
        f"{MODEL}.checks[deny-rate].tolerance",
        "decision_rate check needs max_increase",
        "max_relative_change: 0.2",
        id="rate-check-without-tolerance",
    ),
    pytest.param(
        set_in((*chk("escalations"), "tolerance"), {"max_distance": 0.1}),
        f"{MODEL}.checks[escalations].tolerance",
        "action_rate check needs max_increase",
        "max_relative_change: 0.2",
        id="rate-check-with-distance-tolerance",
    ),
    pytest.param(
        drop((*chk("score-drift"), "tolerance")),
        f"{MODEL}.checks[score-drift].tolerance",
        "score_distribution check needs max_distance",
        "max_distance: 0.1",
        id="distance-check-without-max-distance",
    ),
    pytest.param(
        set_in((*chk("tool-mix"), "tolerance"), {"max_increase": 0.1}),
        f"{MODEL}.checks[tool-mix].tolerance",
        "tool_distribution check needs max_distance",
        "max_distance: 0.1",
        id="distance-check-with-shift-tolerance",
    ),
    pytest.param(
        set_in((*chk("deny-rate"), "distance"), "ks"),
        f"{MODEL}.checks[deny-rate].distance",
        "applies to score_distribution only",
        "remove it",
        id="distance-on-non-score-metric",
    ),
    pytest.param(
        set_in((*chk("tool-mix"), "distance"), "js"),
        f"{MODEL}.checks[tool-mix].distance",
        "applies to score_distribution only",
        "remove it",
        id="distance-on-tool-distribution",
    ),
    pytest.param(
        set_in((*chk("score-drift"), "distance"), "hellinger"),
        f"{MODEL}.checks[score-drift].distance",
        "ks",
        "use one of the values listed",
        id="unknown-distance",
    ),
    pytest.param(
        set_in((*chk("deny-rate"), "where"), {"action": "escalation"}),
        f"{MODEL}.checks[deny-rate].where.action",
        "action not understood by metric decision_rate",
        "accepts decision",
        id="where-key-not-understood",
    ),
    pytest.param(
        set_in((*chk("escalations"), "where"), {"actoin": "escalation"}),
        f"{MODEL}.checks[escalations].where.actoin",
        "actoin not understood by metric action_rate",
        "accepts action, privileged, status, tool",
        id="where-key-typo",
    ),
    pytest.param(
        set_in((*chk("score-drift"), "where"), {"decision": "deny"}),
        f"{MODEL}.checks[score-drift].where.decision",
        "not understood by metric score_distribution",
        "remove `where`",
        id="where-on-metric-without-filters",
    ),
    pytest.param(
        set_in((*chk("deny-rate"), "name"), "fn-proxy"),
        f"{MODEL}.checks",
        "duplicate check names ['fn-proxy']",
        "give each check its own name",
        id="duplicate-check-names",
    ),
    pytest.param(
        lambda raw: raw["models"].append(copy.deepcopy(raw["models"][0])),
        "models",
        "duplicate model names ['fraud-scorer']",
        "list each model once",
        id="duplicate-models",
    ),
    pytest.param(
        set_in(("models", 0, "candidates"), ["v7-int8", "v7-fp32"]),
        f"{MODEL}.candidates",
        "baseline 'v7-fp32' cannot also be a candidate",
        "candidates",
        id="baseline-among-candidates",
    ),
    pytest.param(
        drop(("models", 0, "negative_decisions")),
        MODEL,
        "false_negative_rate check needs negative_decisions",
        "negative_decisions: [allow]",
        id="fnr-without-negative-decisions",
    ),
    pytest.param(
        drop(("models", 0, "positive_labels")),
        MODEL,
        "false_negative_rate check needs negative_decisions",
        "positive_labels: [fraud]",
        id="fnr-without-positive-labels",
    ),
    pytest.param(
        set_in(("models", 0, "positive_labels"), []),
        MODEL,
        "positive_labels",
        "positive_labels: [fraud]",
        id="fnr-with-empty-positive-labels",
    ),
    pytest.param(
        set_in(("models", 0, "false_alarm", "arl0"), 99),
        f"{MODEL}.false_alarm.arl0",
        "greater than or equal to 100",
        "raise the value",
        id="arl0-below-100",
    ),
    pytest.param(
        set_in(("models", 0, "false_alarm", "arl0"), 0),
        f"{MODEL}.false_alarm.arl0",
        "greater than or equal to 100",
        "raise the value",
        id="arl0-zero",
    ),
    pytest.param(
        set_in(("version",), 2),
        "version",
        "Input should be 1",
        "use one of the values listed",
        id="version-2",
    ),
    pytest.param(
        set_in(("version",), "1"),
        "version",
        "Input should be 1",
        "use one of the values listed",
        id="version-string",
    ),
    pytest.param(
        drop(("version",)),
        "version",
        "Field required",
        "add this field",
        id="version-missing",
    ),
    pytest.param(
        set_in((*chk("tool-mix"), "tolerance", "max_distance"), 1.5),
        f"{MODEL}.checks[tool-mix].tolerance.max_distance",
        "less than or equal to 1",
        "lower the value",
        id="max-distance-above-1",
    ),
    pytest.param(
        set_in((*chk("fn-proxy"), "tolerance", "max_increase"), -0.01),
        f"{MODEL}.checks[fn-proxy].tolerance.max_increase",
        "greater than 0",
        "use a positive number",
        id="negative-tolerance",
    ),
    pytest.param(
        set_in(("models", 0, "checks"), []),
        f"{MODEL}.checks",
        "at least 1",
        "add at least one entry",
        id="no-checks",
    ),
    pytest.param(
        set_in(("models", 0, "name"), "fraud scorer!"),
        "models[fraud scorer!].name",
        "pattern",
        "letters, digits",
        id="bad-model-name",
    ),
    pytest.param(
        set_in((*chk("deny-rate"), "severity"), "urgent"),
        f"{MODEL}.checks[deny-rate].severity",
        "critical",
        "use one of the values listed",
        id="unknown-severity",
    ),
    pytest.param(
        set_in(
            (*chk("deny-rate"), "tolerance"), {"max_relative_change": 0.2, "max_increase": 0.01}
        ),
        f"{MODEL}.checks[deny-rate].tolerance",
        "already two-sided",
        "drop max_increase",
        id="relative-and-absolute-tolerance",
    ),
    pytest.param(
        set_in((*chk("new-privileged-tool"), "tolerance"), {"max_increase": 0.01}),
        f"{MODEL}.checks[new-privileged-tool].tolerance",
        "novel_tool takes no tolerance",
        "fires on first sight",
        id="novel-tool-with-tolerance",
    ),
]


@pytest.mark.parametrize(("mutate", "field", "message", "fix"), ERRORS)
def test_error_names_the_field_and_a_fix(
    mutate: Callable[[Raw], None], field: str, message: str, fix: str
) -> None:
    """Each mistake is reported at a field path naming the model and check, with a fix."""
    problems = problems_after(mutate)
    by_field = {f: (m, x) for f, m, x in problems}
    assert field in by_field, f"no problem at {field!r}: {problems}"
    msg, fix_text = by_field[field]
    assert message in msg
    assert fix in f"{msg} {fix_text}"


@pytest.mark.parametrize(("mutate", "field", "message", "fix"), ERRORS)
def test_error_text_lists_field_message_and_fix(
    mutate: Callable[[Raw], None], field: str, message: str, fix: str
) -> None:
    """The exception text shows the source, the field path, the message and the fix."""
    raw = raw_policy()
    mutate(raw)
    with pytest.raises(PolicyError) as info:
        parse_policy(raw, "fraud.yaml")
    text = str(info.value)
    assert text.startswith("fraud.yaml: ")
    assert "problem(s)" in text
    assert f"  {field}: " in text
    assert message in text
    assert fix in text


def test_every_problem_is_reported_at_once() -> None:
    """Several independent mistakes in one file are all listed, not just the first."""

    def mutate(raw: Raw) -> None:
        raw["models"][0]["checks"][CHECK["fn-proxy"]]["metric"] = "fnr"
        raw["models"][0]["segmnts"] = []
        raw["models"][0]["false_alarm"]["arl0"] = 10

    problems = problems_after(mutate)
    fields = {f for f, _, _ in problems}
    assert {
        f"{MODEL}.checks[fn-proxy].metric",
        f"{MODEL}.segmnts",
        f"{MODEL}.false_alarm.arl0",
    } <= fields
    assert len(problems) >= 3


def test_unnamed_list_items_are_shown_by_index() -> None:
    """A check without a name is located by its index in the list."""
    problems = problems_after(drop((*chk("tool-mix"), "name")))
    assert (f"{MODEL}.checks[5].name", "Field required", "add this field") in problems


def test_policy_error_is_a_value_error() -> None:
    """``PolicyError`` is a ``ValueError`` so generic callers can catch it."""
    assert issubclass(PolicyError, ValueError)
    err = PolicyError("p.yaml", [("version", "Input should be 1", "use one of the values listed")])
    assert str(err) == (
        "p.yaml: 1 problem(s)\n  version: Input should be 1 (fix: use one of the values listed)"
    )


@pytest.mark.parametrize(
    "document",
    [None, [], ["version", 1], "version: 1", 1],
    ids=["empty", "empty-list", "list", "string", "number"],
)
def test_document_that_is_not_a_mapping_is_rejected(document: Any) -> None:
    """A YAML document that is not a mapping is reported at ``(file)``, saying what a policy
    is (an empty file: that it is empty) and where to start from."""
    with pytest.raises(PolicyError) as info:
        parse_policy(document)
    assert [field for field, _, _ in info.value.problems] == ["(file)"]
    _, message, fix = info.value.problems[0]
    if document is None:
        assert message == "the policy is empty"
    else:
        assert message.startswith("a policy is a mapping with `version: 1` and `models:`")
    assert "docs/policy.md" in fix


# --- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("version: 1\nmodels: [\n", "line 3, column 1"),
        ("version: 1\n  models:\n- x\n", "line 2, column 9"),
        ("key: 'unterminated\n", "line 2, column 1"),
        ("\t- tab", "line 1, column 1"),
    ],
    ids=["open-flow", "bad-indent", "unterminated-quote", "tab"],
)
def test_file_that_is_not_yaml_is_reported(tmp_path: Path, text: str, at: str) -> None:
    """A file with YAML syntax errors is one ``(file)`` problem with its line and column
    (not PyYAML's ``"<unicode string>"``) and a fix."""
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert len(info.value.problems) == 1
    field, message, fix = info.value.problems[0]
    assert field == "(file)"
    assert message.startswith("not valid YAML")
    assert "<unicode string>" not in str(info.value)
    assert info.value.locations == [at]
    assert fix == "fix the YAML syntax there"
    assert info.value.source == str(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A path that does not exist is one ``(file)`` problem telling to check the path."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.problems == [
        ("(file)", "cannot read: No such file or directory", "check the path")
    ]
    assert str(path) in str(info.value)


def test_directory_is_reported_as_unreadable(tmp_path: Path) -> None:
    """A directory given as the policy file is reported as unreadable, not raised raw."""
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path)
    field, message, fix = info.value.problems[0]
    assert field == "(file)"
    assert message.startswith("cannot read")
    assert fix == "check the path"


def test_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    """A file with bytes that are not UTF-8 is reported as a ``PolicyError``, not a crash."""
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\nmodels: \xff\xfe\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.problems[0][0] == "(file)"


# --- ModelPolicy.watches and Check.resolved_severity -------------------------------------------


def model_policy(**changes: Any) -> ModelPolicy:
    """A small valid model policy with ``changes`` applied."""
    raw: Raw = {
        "name": "m",
        "owner": "o",
        "baseline": "v1",
        "checks": [{"name": "c", "metric": "latency", "tolerance": {"max_distance": 0.1}}],
    }
    raw.update(changes)
    return ModelPolicy.model_validate(raw)


@pytest.mark.parametrize(
    ("candidates", "version", "watched"),
    [
        (["v2"], "v2", True),
        (["v2"], "v3", False),
        (["v2"], "v1", False),
        (["v2", "v3"], "v3", True),
        (None, "v2", True),
        (None, "anything", True),
        (None, "v1", False),
        ([], "v2", False),
    ],
)
def test_watches(candidates: list[str] | None, version: str, watched: bool) -> None:
    """Listed candidates are watched; omitted candidates mean every non-baseline version."""
    assert model_policy(candidates=candidates).watches(version) is watched


def test_watches_on_the_example_policy() -> None:
    """The example policy's model watches its int8 candidate only."""
    model = parse_policy(yaml.safe_load(EXAMPLE_POLICY)).models[0]
    assert model.watches("v7-int8")
    assert not model.watches("v7-fp32")
    assert not model.watches("v8")


@pytest.mark.parametrize(
    ("action", "severity", "expected"),
    [
        ("rollback", None, "critical"),
        ("page", None, "warning"),
        ("ticket", None, "warning"),
        ("rollback", "info", "info"),
        ("page", "critical", "critical"),
        ("page", "warning", "warning"),
    ],
)
def test_resolved_severity(action: str, severity: str | None, expected: str) -> None:
    """Severity defaults to critical for rollbacks and warning otherwise; explicit wins."""
    check = Check.model_validate(
        {
            "name": "c",
            "metric": "decision_rate",
            "where": {"decision": "deny"},
            "tolerance": {"max_increase": 0.01},
            "action": action,
            "severity": severity,
        }
    )
    assert check.resolved_severity == expected


def test_default_action_is_page_with_warning_severity() -> None:
    """A check without ``action`` pages at warning severity."""
    check = Check.model_validate({"name": "c", "metric": "novel_tool"})
    assert check.action == "page"
    assert check.resolved_severity == "warning"


def test_policy_objects_are_frozen() -> None:
    """A validated policy cannot be changed in place."""
    model = parse_policy(yaml.safe_load(EXAMPLE_POLICY)).models[0]
    with pytest.raises(ValueError, match="frozen"):
        model.owner = "someone-else"  # type: ignore[misc]


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_policy_check_accepts_the_example_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``shiftwatch policy check`` exits 0 and prints a summary ending in ``ok``."""
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE_POLICY, encoding="utf-8")
    assert main(["policy", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "ok"
    assert "model fraud-scorer" in out
    assert "7 check(s)" in out
    assert "owner fraud-ml-oncall" in out
    assert err == ""


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (set_in((*chk("fn-proxy"), "metric"), "fnr"), f"{MODEL}.checks[fn-proxy].metric"),
        (set_in(("models", 0, "segmnts"), []), f"{MODEL}.segmnts"),
        (drop(("models", 0, "baseline")), f"{MODEL}.baseline"),
        (set_in(("version",), 2), "version"),
    ],
)
def test_cli_policy_check_rejects_a_bad_policy(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: Callable[[Raw], None],
    field: str,
) -> None:
    """``shiftwatch policy check`` exits 1 and names the bad field on stderr."""
    raw = raw_policy()
    mutate(raw)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["policy", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert field in err
    assert "fix:" in err
    assert "ok" not in out.splitlines()


def test_cli_policy_check_rejects_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``shiftwatch policy check`` on a missing file exits 1 and says it cannot read it."""
    assert main(["policy", "check", str(tmp_path / "absent.yaml")]) == 1
    _, err = capsys.readouterr()
    assert "cannot read" in err
    assert "absent.yaml" in err


# --- a typo is never silently accepted ---------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "suggested"),
    [("rolback", "rollback"), ("pgae", "page"), ("tickets", "ticket"), ("Rollback", "rollback")],
)
def test_an_action_that_is_not_one_of_the_four_is_refused_with_a_suggestion(
    typo: str, suggested: str
) -> None:
    """``action: rolback`` would no longer fail the verdict: it is refused, naming the fix."""
    problems = problems_after(lambda raw: check_of(raw, "escalations").update(action=typo))
    assert len(problems) == 1
    field, message, fix = problems[0]
    assert field == "models[fraud-scorer].checks[escalations].action"
    assert "'rollback', 'page', 'ticket' or 'log'" in message
    assert message.endswith(f"(did you mean {suggested!r}?)")
    assert fix == "use one of the values listed"


@pytest.mark.parametrize("action", ["rollback", "page", "ticket", "log"])
def test_the_four_actions_are_accepted(action: str) -> None:
    raw = raw_policy()
    check_of(raw, "escalations")["action"] = action
    check = parse_policy(raw).models[0].checks[CHECK["escalations"]]
    assert check.action == action
    assert check.resolved_severity == ("critical" if action == "rollback" else "warning")


@pytest.mark.parametrize(
    ("check", "key", "value", "wanted"),
    [
        ("new-privileged-tool", "privileged", "yes", "true or false"),
        ("new-privileged-tool", "privileged", "true", "true or false"),
        ("new-privileged-tool", "privileged", 1, None),
        ("deny-rate", "decision", True, 'a string, e.g. "True"'),
        ("escalations", "action", 7, None),
        ("refund-tool", "tool", False, 'a string, e.g. "False"'),
    ],
)
def test_where_values_must_have_the_type_events_carry(
    check: str, key: str, value: Any, wanted: str | None
) -> None:
    """``where: {privileged: "yes"}`` could never match an event: it is refused."""
    problems = problems_after(lambda raw: check_of(raw, check)["where"].update({key: value}))
    assert len(problems) >= 1
    fields = {f: (m, x) for f, m, x in problems}
    assert f"models[fraud-scorer].checks[{check}].where.{key}" in fields or wanted is None
    text = " ".join(f"{f} {m} (fix: {x})" for f, (m, x) in fields.items())
    assert f"checks[{check}]" in text and key in text
    if wanted is not None:
        assert f"could never match (fix: write {wanted})" in text


def test_a_misspelt_where_key_and_field_get_a_suggestion() -> None:
    problems = problems_after(
        lambda raw: check_of(raw, "escalations")["where"].update({"acton": "escalation"})
    )
    assert "(did you mean 'action'?)" in problems[0][1]
    problems = problems_after(lambda raw: check_of(raw, "escalations").update(tolerence={}))
    assert any("(did you mean 'tolerance'?)" in m for _, m, _ in problems)


def test_each_problem_gives_its_line_and_column(tmp_path: Path) -> None:
    """Errors in a file name where the field is, as an editor counts lines and columns."""
    text = EXAMPLE_POLICY.replace("action: rollback", "action: rolback", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    [(field, _, _)] = info.value.problems
    [at] = info.value.locations
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "rolback" in row)
    column = text.splitlines()[line - 1].index("rolback") + 1
    assert at == f"line {line}, column {column}"
    assert f"{field} ({at}): " in str(info.value)


@pytest.mark.parametrize("owner", ["fraud-ml@example.com", "a.b+oncall@corp.example.org"])
def test_owner_may_be_an_email_address(owner: str) -> None:
    raw = raw_policy()
    model_of(raw)["owner"] = owner
    assert parse_policy(raw).models[0].owner == owner


@pytest.mark.parametrize("owner", ["", "me@", "@corp.example", "two words"])
def test_owner_that_is_neither_a_name_nor_an_email_is_refused(owner: str) -> None:
    problems = problems_after(lambda raw: model_of(raw).update(owner=owner))
    assert [f for f, _, _ in problems] == ["models[fraud-scorer].owner"]


# --- label ages -----------------------------------------------------------------------------------


def test_label_ages_default_to_fractions_of_the_horizon() -> None:
    """Unset, the ages are horizon / 72 and horizon / 8 (1 h and 9 h of the default 3 days)."""
    model = parse_policy(raw_policy()).models[0]
    assert model.label_ages_seconds is None
    assert model.label_ages == (3600.0, 32400.0)


@pytest.mark.parametrize(
    ("ages", "message"),
    [
        ([0.0], "not in (0, label_horizon_seconds"),
        ([259200.0], "not in (0, label_horizon_seconds"),
        ([3600.0, 3600.0], "repeated age"),
        ([1.0, 2.0, 3.0, 4.0, 5.0], "at most 4"),
    ],
)
def test_label_ages_are_checked_against_the_horizon(ages: list[float], message: str) -> None:
    """An age at or beyond the horizon, a repeated age or too many ages are refused."""
    raw = raw_policy()
    model_of(raw)["label_ages_seconds"] = ages
    with pytest.raises(PolicyError, match=re.escape(message)):
        parse_policy(raw)


def test_no_label_ages_judges_at_the_horizon_only() -> None:
    """``label_ages_seconds: []`` leaves the horizon as the only judgement."""
    raw = raw_policy()
    model_of(raw)["label_ages_seconds"] = []
    assert parse_policy(raw).models[0].label_ages == ()
