"""Alert lifecycle: one firing record per breach, resolved when the data clear it, then re-armed."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from monitor.alerts import alert_id
from tests.conftest import DENY, DRIFT, START
from tests.conftest import one_model_pipeline as _monitor
from tests.conftest import run_seconds as _run


@pytest.mark.parametrize(
    ("check", "bad", "good"),
    [(DENY, (0.15, 0.0), (0.05, 0.0)), (DRIFT, (0.05, 0.3), (0.05, 0.0))],
    ids=["rate", "distribution"],
)
def test_breach_fires_once_resolves_when_clear_and_rearms(
    check: dict[str, object], bad: tuple[float, float], good: tuple[float, float]
) -> None:
    """Bad for 5 min: one firing alert; good for 10 min: resolved, same id; bad again: new id."""
    monitor = _monitor(check)
    alerts = _run(
        monitor,
        [(300, *bad), (600, *good), (300, *bad)],
        np.random.default_rng(7),
    )
    assert [a.status for a in alerts] == ["firing", "resolved", "firing"]
    first, resolved, again = alerts
    assert first.alert_id == alert_id("m", "v2", str(check["name"]), {})
    assert resolved.alert_id == first.alert_id
    assert resolved.resolved_at is not None
    assert first.event_time < resolved.resolved_at < again.event_time
    # Resolution needs evidence from the good phase: not before it started.
    assert datetime.fromisoformat(resolved.resolved_at) > START + timedelta(seconds=300)
    assert "since_breach" in resolved.evidence
    assert again.alert_id == alert_id("m", "v2", str(check["name"]), {}, 1) != first.alert_id
    assert first.rollback_to == "v1"
    assert first.owner == "team-risk" and first.controls == ["SOC2-CC7.2"]


def test_persistent_breach_stays_firing_without_repeats() -> None:
    """A candidate that stays 3x over the deny tolerance fires once and never resolves."""
    monitor = _monitor(DENY)
    alerts = _run(monitor, [(900, 0.15, 0.0)], np.random.default_rng(8))
    assert [a.status for a in alerts] == ["firing"]
    (status,) = monitor.models["m"].statuses()
    assert status.state == "breach"


def test_candidate_at_the_boundary_does_not_flap() -> None:
    """Breach, then a candidate just inside tolerance: it resolves at most once, never re-fires."""
    monitor = _monitor(DENY)
    alerts = _run(monitor, [(300, 0.15, 0.0), (900, 0.065, 0.0)], np.random.default_rng(9))
    statuses = [a.status for a in alerts]
    assert statuses[0] == "firing"
    assert statuses in (["firing"], ["firing", "resolved"])
