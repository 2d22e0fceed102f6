"""Tests of the JSON Schemas: committed files are current; real examples pass, broken ones fail."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monitor import schemas
from monitor.cli import main
from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.events import Rejection, decode
from monitor.policy import PolicyError, parse_policy

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "docs" / "schemas"
DEMO_POLICY = ROOT / "monitor" / "demo" / "policy.yaml"

Raw = dict[str, Any]


def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator of the schema ``name`` that also asserts formats (``date-time``)."""
    checker = jsonschema.FormatChecker()
    # jsonschema checks date-time only with rfc3339-validator installed (the test extra).
    assert "date-time" in checker.checkers, "pip install rfc3339-validator (the test extra)"
    return jsonschema.Draft202012Validator(schemas.schema(name), format_checker=checker)


def fenced(page: str, language: str) -> list[str]:
    """The code blocks of ``docs/<page>`` fenced as ``language``."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def fields(generated: Raw) -> Iterator[tuple[str, Raw]]:
    """Every field of a schema: the properties of its root and of each of its definitions."""
    for definition in [generated, *generated.get("$defs", {}).values()]:
        for name, prop in definition.get("properties", {}).items():
            yield f"{definition.get('title', '')}.{name}", prop


# --- the committed files -----------------------------------------------------------------


@pytest.mark.parametrize("name", schemas.SCHEMA_NAMES)
def test_committed_schema_is_current(name: str) -> None:
    """The committed schema equals the one the models generate now."""
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.read_text(encoding="utf-8") == schemas.render(name), (
        f"{path.relative_to(ROOT)} is out of date: run `python -m monitor.schemas` "
        "from the repository's root and commit docs/schemas/"
    )


def test_regeneration_writes_the_committed_files(tmp_path: Path) -> None:
    """``python -m monitor.schemas DIR`` writes the three committed files, byte for byte."""
    assert schemas.main([str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{n}.schema.json" for n in schemas.SCHEMA_NAMES)
    for name in written:
        assert (tmp_path / name).read_bytes() == (SCHEMA_DIR / name).read_bytes()


@pytest.mark.parametrize("name", schemas.SCHEMA_NAMES)
def test_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    """Each schema is itself valid, names its dialect and has an id, a title and a description."""
    generated = schemas.schema(name)
    jsonschema.Draft202012Validator.check_schema(generated)
    assert generated["$schema"] == schemas.DIALECT
    assert generated["$id"].endswith(f"/docs/schemas/{name}.schema.json")
    assert generated["title"] and generated["description"]


@pytest.mark.parametrize("name", schemas.SCHEMA_NAMES)
def test_every_field_is_described(name: str) -> None:
    """Every property of every schema has a description, so an editor can explain it."""
    found = dict(fields(schemas.schema(name)))
    assert len(found) >= 10
    assert [n for n, prop in found.items() if not prop.get("description")] == []


def test_unknown_schema_name_is_refused() -> None:
    """Asking for a schema that does not exist names the three that do."""
    with pytest.raises(ValueError, match="policy, event, alert"):
        schemas.schema("metrics")


# --- the policy --------------------------------------------------------------------------


def demo_policy() -> Raw:
    """The demo's policy as parsed YAML (a fresh copy)."""
    raw: Raw = yaml.safe_load(DEMO_POLICY.read_text(encoding="utf-8"))
    return raw


def check_named(raw: Raw, name: str) -> Raw:
    """The raw check ``name`` of the demo policy's model."""
    checks: list[Raw] = raw["models"][0]["checks"]
    return next(c for c in checks if c["name"] == name)


def test_demo_policy_validates() -> None:
    """The demo policy is valid under the schema, as it is for ``shiftwatch policy check``."""
    raw = demo_policy()
    validator("policy").validate(raw)
    assert parse_policy(raw).models[0].name == "fraud-scorer"


def test_docs_policy_example_validates() -> None:
    """The complete example of docs/policy.md is valid under the schema and the models."""
    examples = [yaml.safe_load(b) for b in fenced("policy.md", "yaml")]
    policies = [e for e in examples if isinstance(e, dict) and "models" in e]
    assert len(policies) == 1
    validator("policy").validate(policies[0])
    assert len(parse_policy(policies[0]).models[0].checks) == 8


def _in_check(check: str, field: str, value: object) -> Callable[[Raw], None]:
    def mutate(raw: Raw) -> None:
        check_named(raw, check)[field] = value

    return mutate


def _in_model(field: str, value: object) -> Callable[[Raw], None]:
    def mutate(raw: Raw) -> None:
        raw["models"][0][field] = value

    return mutate


def _drop_in_model(field: str) -> Callable[[Raw], None]:
    def mutate(raw: Raw) -> None:
        del raw["models"][0][field]

    return mutate


BROKEN_POLICIES = [
    pytest.param(lambda raw: raw.update(modles=[]), id="misspelt-top-level-field"),
    pytest.param(_in_model("segmnts", ["lang"]), id="misspelt-model-field"),
    pytest.param(_in_check("deny-rate", "tolerence", {"max_distance": 0.1}), id="misspelt-check"),
    pytest.param(
        _in_check("deny-rate", "tolerance", {"max_relative": 0.2}), id="misspelt-tolerance"
    ),
    pytest.param(_in_check("deny-rate", "metric", "decison_rate"), id="misspelt-metric"),
    pytest.param(_in_check("deny-rate", "severity", "critcal"), id="misspelt-severity"),
    pytest.param(_in_check("score-drift", "distance", "kolmogorov"), id="misspelt-distance"),
    pytest.param(_in_check("deny-rate", "where", {"action": "deny"}), id="where-not-accepted"),
    pytest.param(_in_check("fn-proxy", "where", {"decision": "allow"}), id="where-on-fnr"),
    pytest.param(_in_check("escalations", "tolerance", {}), id="rate-without-tolerance"),
    pytest.param(
        _in_check("escalations", "tolerance", {"max_distance": 0.1}), id="rate-with-distance"
    ),
    pytest.param(
        _in_check("tool-mix", "tolerance", {"max_increase": 0.1}), id="distribution-with-shift"
    ),
    pytest.param(
        _in_check("new-privileged-tool", "tolerance", {"max_increase": 0.1}),
        id="novel-tool-with-tolerance",
    ),
    pytest.param(_in_check("deny-rate", "distance", "ks"), id="distance-on-rate-check"),
    pytest.param(_in_check("deny-rate", "min_baseline_calls", 10), id="calls-on-rate-check"),
    pytest.param(
        _in_check("deny-rate", "tolerance", {"max_relative_change": 0.2, "max_increase": 0.1}),
        id="relative-and-absolute",
    ),
    pytest.param(_drop_in_model("positive_labels"), id="fnr-without-positive-labels"),
    pytest.param(_in_model("negative_decisions", []), id="fnr-with-no-negative-decisions"),
    pytest.param(_drop_in_model("owner"), id="missing-owner"),
    pytest.param(_in_model("name", "fraud scorer"), id="name-with-space"),
    pytest.param(_in_model("false_alarm", {"arl0": 10}), id="arl0-below-100"),
    pytest.param(lambda raw: raw.update(version=2), id="version-2"),
]


@pytest.mark.parametrize("mutate", BROKEN_POLICIES)
def test_broken_policy_fails_the_schema_as_it_fails_the_models(
    mutate: Callable[[Raw], None],
) -> None:
    """A misspelt field or value, or a rule of policy.py broken, fails the schema and the models."""
    raw = copy.deepcopy(demo_policy())
    mutate(raw)
    assert not validator("policy").is_valid(raw)
    with pytest.raises(PolicyError):
        parse_policy(raw)


def test_schema_error_names_the_misspelt_field() -> None:
    """The schema's error for a misspelt check field names that field, as an editor shows it."""
    raw = demo_policy()
    check_named(raw, "deny-rate")["tolerence"] = {"max_distance": 0.1}
    messages = [e.message for e in validator("policy").iter_errors(raw)]
    assert any("'tolerence' was unexpected" in m for m in messages), messages


# --- events ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated() -> list[Raw]:
    """Events of the demo simulator: every kind, a novel privileged tool and prompt labels."""
    sim = TrafficSimulator(Scenario(seed=11, novel_privileged_tool=True))
    events: list[Raw] = sim.next_batch(3000)
    events += sim.drain_outcomes()
    return events


def test_simulated_events_validate(simulated: list[Raw]) -> None:
    """Every event of the demo simulator is valid under the schema and decodes."""
    assert {e["kind"] for e in simulated} == {"inference", "action", "outcome"}
    check = validator("event")
    for event in simulated:
        check.validate(event)
        assert not isinstance(decode(json.dumps(event)), Rejection)


def envelope(event: Raw) -> Raw:
    """``event`` in a CloudEvents envelope: its kind in ``type``, id and time in the envelope."""
    data = {k: v for k, v in event.items() if k not in ("kind", "id", "time")}
    return {
        "specversion": "1.0",
        "type": f"dev.shiftwatch.{event['kind']}",
        "source": "/tests",
        "id": event["id"],
        "time": event["time"],
        "data": data,
    }


def test_simulated_events_in_cloudevents_envelopes_validate(simulated: list[Raw]) -> None:
    """An envelope carrying a simulated event (kind, id and time outside data) is valid."""
    check = validator("event")
    for event in simulated[:500]:
        wrapped = envelope(event)
        check.validate(wrapped)
        decoded = decode(json.dumps(wrapped))
        assert not isinstance(decoded, Rejection)
        assert (decoded.kind, decoded.id) == (event["kind"], event["id"])


def _inference(simulated: list[Raw]) -> Raw:
    return dict(next(e for e in simulated if e["kind"] == "inference"))


BROKEN_EVENTS: list[Any] = [
    pytest.param(lambda e: e | {"score": 1.5}, "invalid_field", id="score-1.5"),
    pytest.param(lambda e: e | {"score": "0.5"}, "invalid_field", id="score-as-string"),
    pytest.param(
        lambda e: {k: v for k, v in e.items() if k != "kind"}, "missing_field", id="no-kind"
    ),
    pytest.param(lambda e: e | {"kind": "inferense"}, "unknown_kind", id="bad-kind"),
    pytest.param(
        lambda e: {k: v for k, v in e.items() if k != "model"}, "missing_field", id="no-model"
    ),
    pytest.param(lambda e: e | {"time": "2026-11-02T09:00:00"}, "invalid_field", id="no-offset"),
    pytest.param(lambda e: e | {"time": 1_793_000_000}, "invalid_field", id="epoch-time"),
    pytest.param(lambda e: e | {"time": "2026-02-30T09:00:00Z"}, "invalid_field", id="bad-date"),
    pytest.param(lambda e: e | {"id": "x" * 257}, "invalid_field", id="id-too-long"),
    pytest.param(lambda e: e | {"request_id": ""}, "invalid_field", id="empty-request-id"),
    pytest.param(
        lambda e: e | {"segments": {f"k{i}": "v" for i in range(33)}},
        "invalid_field",
        id="33-segment-keys",
    ),
    pytest.param(lambda e: e | {"latency_ms": -1}, "invalid_field", id="negative-latency"),
    pytest.param(lambda e: envelope(e) | {"specversion": "0.3"}, "invalid_envelope", id="ce-0.3"),
    pytest.param(
        lambda e: envelope(e) | {"type": "dev.shiftwatch.event"}, "missing_field", id="ce-no-kind"
    ),
    pytest.param(lambda e: envelope(e) | {"time": None}, "missing_field", id="ce-no-time"),
    pytest.param(
        lambda e: envelope(e) | {"data": envelope(e)["data"] | {"score": 2}},
        "invalid_field",
        id="ce-score-2",
    ),
]


@pytest.mark.parametrize(("mutate", "code"), BROKEN_EVENTS)
def test_broken_event_fails_the_schema_as_it_fails_decoding(
    simulated: list[Raw], mutate: Callable[[Raw], Raw], code: str
) -> None:
    """A broken event fails the schema, and the decoder rejects it with the documented code."""
    event = mutate(_inference(simulated))
    assert not validator("event").is_valid(event)
    rejection = decode(json.dumps(event))
    assert isinstance(rejection, Rejection)
    assert rejection.code == code


def test_docs_event_examples_decode_and_validate() -> None:
    """Every JSON example of docs/events.md is a valid event under the schema and the decoder."""
    lines = [line for block in fenced("events.md", "json") for line in block.splitlines() if line]
    assert len(lines) >= 5
    check = validator("event")
    for line in lines:
        check.validate(json.loads(line))
        assert not isinstance(decode(line), Rejection), line


# --- alerts ------------------------------------------------------------------------------


def test_docs_alert_examples_validate() -> None:
    """The firing and resolved records of docs/alerts.md are valid under the alert schema."""
    records = [json.loads(block) for block in fenced("alerts.md", "json")]
    assert [r["status"] for r in records] == ["firing", "resolved"]
    for record in records:
        validator("alert").validate(record)


def test_alert_schema_refuses_an_unknown_status() -> None:
    """A record whose status is neither firing nor resolved is not an alert record."""
    record = json.loads(fenced("alerts.md", "json")[0])
    assert not validator("alert").is_valid(record | {"status": "acknowledged"})


# --- the command -------------------------------------------------------------------------


def test_schema_command_prints_the_committed_alert_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``shiftwatch schema alert`` prints exactly the committed alert schema and exits 0."""
    assert main(["schema", "alert"]) == 0
    out = capsys.readouterr().out
    assert out == (SCHEMA_DIR / "alert.schema.json").read_text(encoding="utf-8")


def test_schema_command_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown schema name is a usage error listing the three choices."""
    with pytest.raises(SystemExit) as info:
        main(["schema", "metrics"])
    assert info.value.code == 2
    assert "choose from 'policy', 'event', 'alert'" in capsys.readouterr().err


def test_schema_command_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """``shiftwatch --help`` lists the schema command."""
    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(r"^\s+schema\s+print the JSON Schema", capsys.readouterr().out, re.M)
