"""A policy written from, and checked against, real events: `policy init` and `policy check
--events`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.demo.simulator import Scenario, write_jsonl
from monitor.policy import Metric, load_policy
from tests.conftest import DEMO_POLICY
from tests.fixtures.digits_classifier import build, events


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "demo.jsonl"
    write_jsonl(path, replace(Scenario(seed=3), requests_per_second=300.0), 20_000)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_init_writes_a_valid_policy_with_a_check_per_observed_behaviour(
    demo_events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "policy.yaml"
    status, text, _ = run(capsys, "policy", "init", "--events", str(demo_events), "--out", str(out))
    assert status == 0 and f"wrote {out}" in text
    [model] = load_policy(out).models
    assert model.name == "fraud-scorer" and model.baseline == "v7-fp32"
    assert model.candidates == ["v7-int8"]
    assert set(model.segments) == {"lang", "amount_band"}
    assert model.negative_decisions == ["allow"] and model.positive_labels == ["fraud"]
    metrics = {c.metric for c in model.checks}
    assert metrics == set(Metric)
    decisions = {c.where.get("decision") for c in model.checks if c.metric is Metric.DECISION_RATE}
    assert decisions == {"allow", "review", "deny"}
    # Every tolerance is marked for the owner to set.
    body = out.read_text()
    tolerant = [line for line in body.splitlines() if "tolerance:" in line and "- {" in line]
    assert tolerant and all("# SET ME" in line for line in tolerant)
    assert "owner: set-me" in body
    # The starter policy runs as it is.
    status, text, _ = run(capsys, "policy", "check", str(out), "--events", str(demo_events))
    assert status == 0 and "0 warning(s)" in text and text.endswith("ok\n")
    status, text, _ = run(
        capsys, "replay", str(demo_events), "--policy", str(out), "--no-progress", "--summary-json"
    )
    assert status == 0 and json.loads(text)["models"][0]["candidates"][0]["version"] == "v7-int8"


def test_init_leaves_labels_it_cannot_read_to_the_owner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The digits classifier's labels are `nine`/`other`: no false-negative check is guessed;
    a commented one says what to set."""
    path = tmp_path / "digits.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events(build(), 4000)))
    status, text, _ = run(capsys, "policy", "init", "--events", str(path))
    assert status == 0
    raw = yaml.safe_load(text)
    [model] = raw["models"]
    assert "negative_decisions" not in model
    assert "# - {name: missed-positives, metric: false_negative_rate" in text
    assert "positive_labels (one of: nine, other)" in text


def test_init_refuses_an_existing_file_and_events_without_inferences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_events: Path
) -> None:
    existing = tmp_path / "p.yaml"
    existing.write_text("keep me")
    status, _, err = run(
        capsys, "policy", "init", "--events", str(demo_events), "--out", str(existing)
    )
    assert status == 1 and "exists (fix: " in err and existing.read_text() == "keep me"
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"kind": "inference"}\nnot json\n')
    status, _, err = run(capsys, "policy", "init", "--events", str(junk))
    assert status == 1 and "no valid inference events" in err


@pytest.mark.parametrize(
    ("old", "new", "warning"),
    [
        (
            "candidates: [v7-int8]",
            "candidates: [v7-int9]",
            "candidate 'v7-int9' never appears (did you mean 'v7-int8'?)",
        ),
        ("baseline: v7-fp32", "baseline: v7-fp16", "baseline 'v7-fp16' never appears"),
        (
            "tool: refund.issue",
            "tool: refund.isue",
            "tool 'refund.isue' was never called (did you mean 'refund.issue'?)",
        ),
        ("segments: [lang]", "segments: [language]", "segment key 'language' is on no inference"),
        (
            "where: {decision: deny}",
            "where: {decision: denied}",
            "where.decision 'denied' matches no inference (did you mean 'deny'?)",
        ),
        (
            "where: {action: escalation}",
            "where: {action: escalate}",
            "where.action 'escalate' matches no action (did you mean 'escalation'?)",
        ),
        (
            "positive_labels: [fraud]",
            "positive_labels: [fraudulent]",
            "no outcome has a label in positive_labels",
        ),
        (
            "name: fraud-scorer",
            "name: fraud-scorer-v2",
            "no inference in the events (did you mean 'fraud-scorer'?)",
        ),
    ],
)
def test_check_against_events_warns_about_what_they_never_show(
    demo_events: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    warning: str,
) -> None:
    text = DEMO_POLICY.read_text()
    assert old in text
    policy = tmp_path / "policy.yaml"
    policy.write_text(text.replace(old, new, 1))
    status, out, _ = run(capsys, "policy", "check", str(policy), "--events", str(demo_events))
    assert status == 0  # valid, but probably wrong: warnings, not errors
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert any(warning in line for line in warnings), out


def test_the_demo_policy_matches_the_demos_events(
    demo_events: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "policy", "check", str(DEMO_POLICY), "--events", str(demo_events))
    assert status == 0 and "0 warning(s)" in out and "warning:" not in out
