"""``shiftwatch policy check --events-per-second``: how long a rollout gate waits, per check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.cli import main

POLICY = """
version: 1
models:
  - name: fraud-scorer
    owner: fraud-ml-oncall
    baseline: v7-fp32
    negative_decisions: [allow]
    positive_labels: [fraud]
    label_horizon_seconds: 43200
    label_ages_seconds: {ages}
    checks:
      - {{name: fn-proxy, metric: false_negative_rate, tolerance: {{max_increase: 0.01}}}}
      - {{name: deny-rate, metric: decision_rate, where: {{decision: deny}},
         tolerance: {{max_relative_change: 0.2}}}}
"""


def _estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str, ages: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(ages=ages), encoding="utf-8")
    assert main(["policy", "check", str(path), *args]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[-1] == "ok"
    return out


def _hours(line: str) -> float:
    match = re.search(r"~(\d+)h(\d\d)m", line)
    assert match, line
    return int(match[1]) + int(match[2]) / 60


def test_the_estimate_names_the_age_and_the_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """20 inferences/s, labels 2 h late: the FN check is conclusive in about 2 h at age 90 min,
    and twice the traffic needs less time; the horizon alone needs the whole 12 h."""
    flags = ("--events-per-second", "20", "--label-delay-seconds", "7200")
    out = _estimate(tmp_path, capsys, *flags, ages="null")
    line = next(x for x in out.splitlines() if x.strip().startswith("fn-proxy"))
    assert "label age 1h30m" in line and "full horizon" in line
    assert 1.5 < _hours(line) < 3.0
    faster = _estimate(tmp_path, capsys, "--events-per-second", "40", *flags[2:], ages="null")
    fast_line = next(x for x in faster.splitlines() if x.strip().startswith("fn-proxy"))
    assert _hours(fast_line) < _hours(line)
    horizon_only = _estimate(tmp_path, capsys, *flags, ages="[]")
    assert "~12h" in horizon_only and "at the label horizon" in horizon_only
    assert "deny-rate (decision_rate): conclusive ~" in out


def test_a_bad_traffic_figure_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A candidate share outside (0, 1) exits 2 and names it."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(ages="null"), encoding="utf-8")
    args = ["policy", "check", str(path), "--events-per-second", "20", "--candidate-share", "1.5"]
    assert main(args) == 2
    _, err = capsys.readouterr()
    assert "candidate share must be in (0, 1)" in err
