"""false_alarm.baseline_confidence: validated, passed to the rate detectors, digest-neutral."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.episodes import Episodes
from monitor.policy import PolicyError, parse_policy
from monitor.runners.rates import RateRunner
from monitor.state import policy_digest


def _raw(false_alarm: dict[str, Any]) -> dict[str, Any]:
    check = {
        "name": "escalations",
        "metric": "action_rate",
        "where": {"action": "escalation"},
        "tolerance": {"max_relative_change": 0.25},
    }
    model = {
        "name": "m",
        "owner": "o",
        "baseline": "b",
        "false_alarm": false_alarm,
        "checks": [check],
    }
    return {"version": 1, "models": [model]}


@pytest.mark.parametrize("bad", [0.3, 1.0, "high"])
def test_out_of_range_confidence_is_refused_with_its_field(bad: object) -> None:
    """A confidence outside [0.5, 1) is a policy problem naming false_alarm.baseline_confidence."""
    with pytest.raises(PolicyError, match="baseline_confidence"):
        parse_policy(_raw({"arl0": 1e6, "baseline_confidence": bad}))


def test_the_default_leaves_the_policy_digest_unchanged() -> None:
    """Writing the default explicitly digests as leaving it out; another value does not."""
    plain = policy_digest(parse_policy(_raw({"arl0": 1e6})))
    assert policy_digest(parse_policy(_raw({"arl0": 1e6, "baseline_confidence": 0.9}))) == plain
    assert policy_digest(parse_policy(_raw({"arl0": 1e6, "baseline_confidence": 0.95}))) != plain


def test_rate_detectors_get_the_policy_confidence() -> None:
    """The rate runner builds its detectors with the model's baseline_confidence."""
    policy = parse_policy(_raw({"arl0": 1e6, "baseline_confidence": 0.95})).models[0]
    runner = RateRunner(policy, list(policy.checks), 1e7, Episodes(policy))
    detector = runner.new_detector(policy.checks[0], ())
    assert detector.baseline_confidence == 0.95 and detector.z is None
