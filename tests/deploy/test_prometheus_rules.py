"""Deployment artefacts under deploy/: Prometheus rules (checked by the real promtool),
their runbook links, and the Argo Rollouts and Flagger manifests' decisions."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import require_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = Path("deploy/prometheus/shiftwatch-rules.yaml")
RULE_TESTS = Path("deploy/prometheus/shiftwatch-rules.test.yaml")
RUNBOOK = REPO / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/shiftwatch/shiftwatch/blob/main/docs/runbook.md"
ARGO_PROMETHEUS = DEPLOY / "argo-rollouts" / "analysis-template-prometheus.yaml"
ARGO_WEB = DEPLOY / "argo-rollouts" / "analysis-template-web.yaml"
ARGO_ROLLOUT = DEPLOY / "argo-rollouts" / "rollout-example.yaml"
FLAGGER_METRIC = DEPLOY / "flagger" / "metric-template.yaml"
FLAGGER_CANARY = DEPLOY / "flagger" / "canary-example.yaml"

REQUIRED_ALERTS = {
    "ShiftwatchRollbackRequired",
    "ShiftwatchCheckBreached",
    "ShiftwatchCheckInconclusive",
    "ShiftwatchCandidateStale",
    "ShiftwatchNotConsuming",
    "ShiftwatchConsumerLagHigh",
    "ShiftwatchDeadLetterRateHigh",
    "ShiftwatchEventsLate",
    "ShiftwatchAlertDeliveryFailing",
    "ShiftwatchDown",
}
SEVERITIES = {"critical", "warning", "info"}

# Series for checking the rollout-controller queries: one candidate version per case.
_GATE_SERIES = {
    # A rollback check breached.
    'shiftwatch_rollback_required{model="m",version="v-fail"}': "1x10",
    'shiftwatch_check_state{model="m",version="v-fail",check="fnr"}': "2x10",
    'shiftwatch_check_state{model="m",version="v-fail",check="tools"}': "0x10",
    # Every check conclusive and ok overall (seen by two replicas); a segment stream
    # still waiting for data does not hold back a pass, as in /verdict.
    'shiftwatch_rollback_required{instance="a",model="m",version="v-pass"}': "0x10",
    'shiftwatch_rollback_required{instance="b",model="m",version="v-pass"}': "0x10",
    'shiftwatch_check_state{instance="a",model="m",version="v-pass",check="fnr"}': "0x10",
    'shiftwatch_check_state{instance="b",model="m",version="v-pass",check="fnr"}': "0x10",
    'shiftwatch_check_state{model="m",version="v-pass",check="fnr",segment="lang=ga"}': "1x10",
    # Nothing to roll back, but one check has too little data overall.
    'shiftwatch_rollback_required{model="m",version="v-undecided"}': "0x10",
    'shiftwatch_check_state{model="m",version="v-undecided",check="fnr"}': "1x10",
    'shiftwatch_check_state{model="m",version="v-undecided",check="tools"}': "0x10",
    # A page-action check breached in one segment: not a rollback, not a pass either.
    'shiftwatch_rollback_required{model="m",version="v-page"}': "0x10",
    'shiftwatch_check_state{model="m",version="v-page",check="tools"}': "0x10",
    'shiftwatch_check_state{model="m",version="v-page",check="tools",segment="lang=ga"}': "2x10",
}


def _load(path: Path) -> Any:
    """The single YAML document of ``path``."""
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _alerting_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the rule file, in order."""
    groups = _load(REPO / RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped,
    spaces as hyphens.

    >>> github_anchor("ShiftwatchRollbackRequired")
    'shiftwatchrollbackrequired'
    >>> github_anchor("Rolling back to the baseline")
    'rolling-back-to-the-baseline'
    >>> github_anchor("`novel_tool`: why it never resolves!")
    'novel_tool-why-it-never-resolves'
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors(markdown: str) -> set[str]:
    """Anchors of every heading outside fenced code blocks, with GitHub's -1, -2 suffixes."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        match = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if in_fence or match is None:
            continue
        base = github_anchor(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


@pytest.fixture(scope="module")
def promtool() -> str:
    """The real promtool (Debian package ``prometheus``); missing fails in CI, skips elsewhere."""
    return require_binary("promtool")


def _run_promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs promtool from the repository root and returns the finished process."""
    return subprocess.run(
        [promtool, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def _expect_query_results(
    promtool: str,
    tmp_path: Path,
    series: Mapping[str, str],
    cases: Sequence[tuple[str, list[float]]],
) -> None:
    """Asserts, with ``promtool test rules``, that each query returns the given labelless values."""
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "promql_expr_test": [
                {
                    "expr": query,
                    "eval_time": "5m",
                    "exp_samples": [{"labels": "{}", "value": v} for v in values],
                }
                for query, values in cases
            ],
        }
    ]
    test_file = tmp_path / "queries.test.yaml"
    test_file.write_text(yaml.safe_dump({"evaluation_interval": "1m", "tests": tests}))
    proc = _run_promtool(promtool, "test", "rules", test_file)
    assert proc.returncode == 0, _output(proc)


_CONDITION_TOKEN = re.compile(r'\s*(len|result|==|&&|\|\||[()\[\]]|\d+(?:\.\d+)?|"[^"]*")')


def argo_condition(condition: str, result: object) -> bool:
    """Evaluates the subset of Argo Rollouts' expr language the templates use.

    ``len``, ``result``, indexing, ``==``, ``&&`` and ``||``, short-circuiting like expr;
    indexing an empty result raises, as it makes Argo record an Error measurement.

    >>> argo_condition("len(result) == 1 && result[0] == 0", [])
    False
    >>> argo_condition('result == "pass"', "pass")
    True
    """
    tokens: list[str] = []
    pos = 0
    while pos < len(condition.rstrip()):
        match = _CONDITION_TOKEN.match(condition, pos)
        if match is None:
            raise ValueError(f"unsupported condition syntax at {condition[pos:]!r}")
        tokens.append({"&&": "and", "||": "or"}.get(match.group(1), match.group(1)))
        pos = match.end()
    code = " ".join(tokens)
    return bool(eval(code, {"__builtins__": {}}, {"len": len, "result": result}))


def argo_phase(metric: Mapping[str, Any], result: object) -> str:
    """The measurement phase Argo Rollouts gives ``result`` (as ``evaluate.EvaluateResult``)."""
    success_expr = metric.get("successCondition", "")
    failure_expr = metric.get("failureCondition", "")
    success = bool(success_expr) and argo_condition(success_expr, result)
    failure = bool(failure_expr) and argo_condition(failure_expr, result)
    if not success_expr and not failure_expr:
        return "Successful"
    if success_expr and not failure_expr:
        failure = not success
    elif failure_expr and not success_expr:
        success = not failure
    if failure:
        return "Failed"
    return "Successful" if success else "Inconclusive"


def _only_metric(template: Mapping[str, Any]) -> dict[str, Any]:
    metrics = template["spec"]["metrics"]
    assert len(metrics) == 1, metrics
    metric: dict[str, Any] = metrics[0]
    return metric


# --- promtool -------------------------------------------------------------------------


def test_promtool_check_rules(promtool: str) -> None:
    """`promtool check rules` accepts the rule file and finds every rule in it."""
    proc = _run_promtool(promtool, "check", "rules", RULES)
    assert proc.returncode == 0, _output(proc)
    groups = _load(REPO / RULES)["groups"]
    n_rules = sum(len(group["rules"]) for group in groups)
    assert f"SUCCESS: {n_rules} rules found" in proc.stdout, _output(proc)


def test_promtool_unit_tests(promtool: str) -> None:
    """`promtool test rules` passes every unit test of the rule file."""
    proc = _run_promtool(promtool, "test", "rules", RULE_TESTS)
    assert proc.returncode == 0, _output(proc)
    assert "SUCCESS" in proc.stdout, _output(proc)


# --- the rules and their runbook ------------------------------------------------------


def test_required_alerts_exist() -> None:
    """The rule file defines every alert the runbook and dashboards rely on."""
    names = {rule["alert"] for rule in _alerting_rules()}
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names


@pytest.mark.parametrize("rule", _alerting_rules(), ids=lambda r: str(r["alert"]))
def test_alert_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    """Each alerting rule has a severity, a templated summary and description, and a
    runbook_url whose anchor is a heading of docs/runbook.md."""
    severity = rule["labels"]["severity"]
    assert severity in SEVERITIES or severity == "{{ $labels.severity }}", severity
    annotations = rule["annotations"]
    for key in ("summary", "description"):
        assert isinstance(annotations[key], str) and annotations[key].strip(), key
    assert "$labels" in annotations["summary"] + annotations["description"]
    assert "$value" in annotations["summary"] + annotations["description"]
    url, _, anchor = annotations["runbook_url"].partition("#")
    assert url == RUNBOOK_URL
    assert anchor in runbook_anchors(RUNBOOK.read_text(encoding="utf-8")), anchor


def test_runbook_sections_and_links() -> None:
    """The runbook has a section per alert and for the alert record, and its own
    links point at headings that exist."""
    markdown = RUNBOOK.read_text(encoding="utf-8")
    anchors = runbook_anchors(markdown)
    assert {github_anchor(name) for name in REQUIRED_ALERTS} <= anchors
    assert "shiftwatch-alert-record" in anchors
    links = re.findall(r"\]\(#([^)]+)\)", markdown)
    assert links, "the runbook should cross-link its shared sections"
    assert set(links) <= anchors, set(links) - anchors


def test_every_alert_has_firing_and_silent_unit_tests() -> None:
    """The promtool tests fire every alert with exact labels and annotations, and
    also expect each one to stay silent somewhere."""
    tests = _load(REPO / RULE_TESTS)["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    annotation_keys = {"summary", "description", "runbook_url"}
    for name in {rule["alert"] for rule in _alerting_rules()}:
        mine = [case for case in cases if case["alertname"] == name]
        firing = [alert for case in mine for alert in case.get("exp_alerts") or []]
        assert firing, f"{name}: no firing case"
        for alert in firing:
            assert "severity" in alert["exp_labels"], name
            assert set(alert["exp_annotations"]) == annotation_keys, name
        assert any(not case.get("exp_alerts") for case in mine), f"{name}: no silent case"


# --- every manifest -------------------------------------------------------------------


def test_every_deploy_yaml_parses() -> None:
    """Every YAML file under deploy/ parses and holds at least one document."""
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 7, files
    for path in files:
        with path.open(encoding="utf-8") as f:
            docs = [doc for doc in yaml.safe_load_all(f) if doc is not None]
        assert docs, f"{path} holds no YAML document"


# --- Argo Rollouts --------------------------------------------------------------------


@pytest.mark.parametrize("path", [ARGO_PROMETHEUS, ARGO_WEB], ids=lambda p: p.name)
def test_argo_template_limits(path: Path) -> None:
    """A gate fails on the first failure, and a run that never stops being
    inconclusive ends Inconclusive (inconclusiveLimit < count), never Successful."""
    template = _load(path)
    assert template["apiVersion"] == "argoproj.io/v1alpha1"
    assert template["kind"] == "AnalysisTemplate"
    arg_names = {arg["name"] for arg in template["spec"]["args"]}
    assert {"model", "version"} <= arg_names
    metric = _only_metric(template)
    assert metric["failureLimit"] == 0
    assert 0 <= metric["inconclusiveLimit"] < metric["count"]
    assert re.fullmatch(r"\d+[smh]", metric["interval"]), metric["interval"]


def test_argo_prometheus_template_shape() -> None:
    """The Prometheus gate queries shiftwatch_rollback_required for the candidate."""
    template = _load(ARGO_PROMETHEUS)
    arg_names = {arg["name"] for arg in template["spec"]["args"]}
    assert {"model", "version", "prometheus-address"} <= arg_names
    provider = _only_metric(template)["provider"]["prometheus"]
    assert provider["address"] == "{{args.prometheus-address}}"
    query = provider["query"]
    assert 'shiftwatch_rollback_required{model="{{args.model}}", version="{{args.version}}"}' in (
        query
    )


@pytest.mark.parametrize(
    ("result", "phase"),
    [([1.0], "Failed"), ([0.0], "Successful"), ([], "Inconclusive")],
    ids=["rollback", "pass", "no-data"],
)
def test_argo_prometheus_conditions(result: list[float], phase: str) -> None:
    """1 fails, 0 passes, and an empty result meets neither condition without an
    evaluation error: missing data is Inconclusive, never a pass or a rollback."""
    assert argo_phase(_only_metric(_load(ARGO_PROMETHEUS)), result) == phase


def test_argo_prometheus_query_decides_like_verdict(promtool: str, tmp_path: Path) -> None:
    """On real PromQL the gate's query gives [1] for fail, [0] for pass, and nothing
    (Inconclusive) when a check is undecided, a page check breached, or no data."""
    metric = _only_metric(_load(ARGO_PROMETHEUS))
    query = metric["provider"]["prometheus"]["query"]
    expected = {
        "v-fail": ([1.0], "Failed"),
        "v-pass": ([0.0], "Successful"),
        "v-undecided": ([], "Inconclusive"),
        "v-page": ([], "Inconclusive"),
        "v-missing": ([], "Inconclusive"),
    }
    cases = []
    for version, (values, phase) in expected.items():
        rendered = query.replace("{{args.model}}", "m").replace("{{args.version}}", version)
        assert "{{" not in rendered, rendered
        cases.append((rendered, values))
        assert argo_phase(metric, values) == phase, version
    _expect_query_results(promtool, tmp_path, _GATE_SERIES, cases)


def test_argo_web_template() -> None:
    """The web gate reads /verdict's `verdict`: pass succeeds, fail fails, and
    inconclusive meets neither condition, which pauses the rollout."""
    template = _load(ARGO_WEB)
    metric = _only_metric(template)
    web = metric["provider"]["web"]
    assert web["url"].endswith("/verdict?model={{args.model}}&version={{args.version}}")
    assert web["jsonPath"] == "{$.verdict}"
    assert metric["successCondition"] == 'result == "pass"'
    assert metric["failureCondition"] == 'result == "fail"'
    phases = {v: argo_phase(metric, v) for v in ("pass", "fail", "inconclusive")}
    assert phases == {"pass": "Successful", "fail": "Failed", "inconclusive": "Inconclusive"}


def test_argo_rollout_example_references_templates() -> None:
    """The example Rollout's analysis steps name the templates in this directory
    and pass every argument those templates require."""
    rollout = _load(ARGO_ROLLOUT)
    assert rollout["apiVersion"] == "argoproj.io/v1alpha1"
    assert rollout["kind"] == "Rollout"
    templates = {t["metadata"]["name"]: t for t in map(_load, (ARGO_PROMETHEUS, ARGO_WEB))}
    metric_names = [_only_metric(t)["name"] for t in templates.values()]
    assert len(set(metric_names)) == len(metric_names), "metric names must not clash"
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    used: set[str] = set()
    for step in steps:
        if "analysis" not in step:
            continue
        given = {arg["name"] for arg in step["analysis"].get("args", [])}
        for ref in step["analysis"]["templates"]:
            template = templates[ref["templateName"]]
            required = {a["name"] for a in template["spec"]["args"] if "value" not in a}
            assert required <= given, (ref["templateName"], required - given)
            used.add(ref["templateName"])
    assert used == set(templates)


# --- Flagger --------------------------------------------------------------------------


def test_flagger_metric_template_and_canary() -> None:
    """The Canary uses the MetricTemplate with model/version variables and
    thresholdRange max 0, and calls shiftwatch's rollback and promote hooks."""
    template = _load(FLAGGER_METRIC)
    assert template["apiVersion"] == "flagger.app/v1beta1"
    assert template["kind"] == "MetricTemplate"
    assert template["spec"]["provider"]["type"] == "prometheus"
    query = template["spec"]["query"]
    assert "shiftwatch_rollback_required" in query
    used_vars = set(re.findall(r"\{\{\s*variables\.([\w-]+)\s*\}\}", query))
    assert used_vars == {"model", "version"}

    canary = _load(FLAGGER_CANARY)
    assert canary["apiVersion"] == "flagger.app/v1beta1"
    assert canary["kind"] == "Canary"
    analysis = canary["spec"]["analysis"]
    (metric,) = [m for m in analysis["metrics"] if "templateRef" in m]
    assert metric["templateRef"]["name"] == template["metadata"]["name"]
    assert metric["templateRef"].get("namespace") == template["metadata"].get("namespace")
    assert metric["thresholdRange"] == {"max": 0}
    variables = metric["templateVariables"]
    assert set(variables) >= used_vars

    hooks = {hook["type"]: hook for hook in analysis["webhooks"]}
    assert hooks["rollback"]["url"].endswith("/flagger/rollback")
    assert hooks["confirm-promotion"]["url"].endswith("/flagger/promote")
    for hook in (hooks["rollback"], hooks["confirm-promotion"]):
        assert hook["metadata"] == {"model": variables["model"], "version": variables["version"]}


def test_flagger_query_values(promtool: str, tmp_path: Path) -> None:
    """On real PromQL the Flagger query is 1 only for a rollback breach (above
    thresholdRange max 0), 0 while undecided, and empty without data."""
    query = _load(FLAGGER_METRIC)["spec"]["query"]
    expected = {
        "v-fail": [1.0],
        "v-pass": [0.0],
        "v-undecided": [0.0],
        "v-page": [0.0],
        "v-missing": [],
    }
    cases = []
    for version, values in expected.items():
        rendered = re.sub(r"\{\{\s*variables\.model\s*\}\}", "m", query)
        rendered = re.sub(r"\{\{\s*variables\.version\s*\}\}", version, rendered)
        assert "{{" not in rendered, rendered
        cases.append((rendered, values))
    _expect_query_results(promtool, tmp_path, _GATE_SERIES, cases)
