"""A real classifier, quantised and pruned, replayed through the monitor.

The fixture (:mod:`tests.fixtures.digits_classifier`) trains a scikit-learn
MLP and optimises its weights in numpy: int8 quantisation, which barely moves
the scores, and 60% magnitude pruning, which moves them a lot. The truth of
each check is computed here from the population (the held-out images every
request draws from uniformly): the exact two-sample KS and Wasserstein
distances of the score distributions, the decision rates and the
false-negative rates. Every check whose true effect is at least 1.5 times its
tolerance must alert; every check at most 0.5 times its tolerance must not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from scipy.stats import ks_2samp, wasserstein_distance

from monitor.policy import Check, Metric, parse_policy
from monitor.replay import replay
from tests.conftest import read_jsonl
from tests.fixtures.digits_classifier import (
    BASELINE,
    CANDIDATES,
    POLICY,
    Population,
    build,
    events,
)

#: Requests replayed: 30,000 per candidate.
REQUESTS = 120_000


def true_effect(population: Population, version: str, check: Check) -> float:
    """The check's population effect as a multiple of its tolerance."""
    base, cand = population.scores[BASELINE], population.scores[version]
    tol = check.tolerance
    if check.metric is Metric.SCORE_DISTRIBUTION:
        assert tol.max_distance is not None
        if check.distance == "ks":
            return float(ks_2samp(base, cand).statistic) / tol.max_distance
        return float(wasserstein_distance(base, cand)) / tol.max_distance
    if check.metric is Metric.DECISION_RATE:
        wanted = check.where["decision"]
        p_base = float(np.mean(population.decisions(BASELINE) == wanted))
        p_cand = float(np.mean(population.decisions(version) == wanted))
        assert tol.max_relative_change is not None
        return abs(p_cand / p_base - 1.0) / tol.max_relative_change
    assert check.metric is Metric.FALSE_NEGATIVE_RATE and tol.max_increase is not None

    def fn_rate(v: str) -> float:
        negative = population.decisions(v) == "allow"
        return float((negative & population.positive).sum() / negative.sum())

    return max(0.0, fn_rate(version) - fn_rate(BASELINE)) / tol.max_increase


@pytest.fixture(scope="module")
def population() -> Population:
    return build()


@pytest.fixture(scope="module")
def alerts(
    population: Population, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("digits")
    path, out = tmp / "events.jsonl", tmp / "alerts.jsonl"
    with path.open("w") as f:
        for event in events(population, REQUESTS):
            f.write(json.dumps(event) + "\n")
    policy = parse_policy(yaml.safe_load(POLICY))
    ledger = replay(path, policy, alerts_out=out, show_progress=False)
    assert ledger.balanced() and ledger.dead_lettered == 0 and ledger.late == 0
    return [a for a in read_jsonl(out) if a["status"] == "firing"]


def test_the_fixture_is_a_real_classifier_shape(population: Population) -> None:
    """The baseline's scores pile up at the ends: most within 0.05 of 0 or 1."""
    base = population.scores[BASELINE]
    assert np.mean((base < 0.05) | (base > 0.95)) > 0.85
    assert 0.05 < population.positive.mean() < 0.15


@pytest.mark.parametrize("version", CANDIDATES)
def test_checks_alert_exactly_where_the_true_effect_breaks_the_tolerance(
    population: Population, alerts: list[dict[str, object]], version: str
) -> None:
    checks = parse_policy(yaml.safe_load(POLICY)).models[0].checks
    effects = {c.name: true_effect(population, version, c) for c in checks}
    fired = {str(a["check"]) for a in alerts if a["version"] == version and a["segment"] == {}}
    must = {name for name, e in effects.items() if e >= 1.5}
    must_not = {name for name, e in effects.items() if e <= 0.5}
    assert must <= fired, f"effects {effects}: missed {must - fired}"
    assert not (must_not & fired), f"effects {effects}: false alarms {must_not & fired}"
    if version == "mlp-int8":
        # Quantisation moves nothing by half a tolerance: the candidate stays silent.
        assert must_not == set(effects) and fired == set()
    else:
        # Pruning breaks four tolerances and keeps within one: both kinds are tested.
        assert must == {"score-ks", "deny-rate", "review-rate", "missed-nines"}
        assert must_not == {"score-wasserstein"}
