"""Replay tells you what it saw: checks' states, the verdict, late and unjoined events, and
candidates that got nothing; input out of time order is put in order within a window."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.fixtures.digits_classifier import BASELINE, POLICY, build, events

REQUESTS = 30_000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real classifier's events in time order, grouped by version, and shuffled."""
    tmp = tmp_path_factory.mktemp("summary")
    ordered = events(build(), REQUESTS)
    grouped = sorted(ordered, key=lambda e: (str(e.get("version")), str(e["time"])))
    shuffled = list(ordered)
    random.Random(5).shuffle(shuffled)
    out = {"policy": tmp / "policy.yaml"}
    out["policy"].write_text(POLICY)
    for name, rows in (("ordered", ordered), ("grouped", grouped), ("shuffled", shuffled)):
        out[name] = tmp / f"{name}.jsonl"
        out[name].write_text("".join(json.dumps(e) + "\n" for e in rows))
    return out


def replay(
    capsys: pytest.CaptureFixture[str], events: Path, policy: Path, *extra: str
) -> tuple[dict[str, Any], Path]:
    alerts = events.with_suffix(f".{len(extra)}.alerts.jsonl")
    argv = ["replay", str(events), "--policy", str(policy), "--alerts-out", str(alerts)]
    assert main([*argv, "--no-progress", "--summary-json", *extra]) == 0
    summary: dict[str, Any] = json.loads(capsys.readouterr().out)
    return summary, alerts


def firing(alerts: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in alerts.read_text().splitlines()]
    return sorted((r["version"], r["check"]) for r in rows if r["status"] == "firing")


def test_the_summary_gives_each_candidates_checks_and_verdict(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    summary, _ = replay(capsys, files["ordered"], files["policy"])
    assert summary["late"] == 0 and summary["unjoined"] == 0 and summary["warnings"] == []
    [model] = summary["models"]
    assert model["baseline"] == BASELINE and model["baseline_inferences"] > 0.45 * REQUESTS
    verdicts = {c["version"]: c["verdict"] for c in model["candidates"]}
    assert verdicts == {"mlp-int8": "pass", "mlp-pruned-60": "fail"}
    pruned = next(c for c in model["candidates"] if c["version"] == "mlp-pruned-60")
    states = {c["check"]: c["state"] for c in pruned["checks"] if not c["segment"]}
    assert states["score-ks"] == "breach" and states["score-wasserstein"] == "ok"
    assert "score-ks" in {r["check"] for r in pruned["reasons"]}


def test_too_little_data_says_how_much_more_each_check_needs(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    head = tmp_path / "head.jsonl"
    head.write_text("".join(files["ordered"].read_text().splitlines(keepends=True)[:1500]))
    summary, _ = replay(capsys, head, files["policy"])
    for cand in summary["models"][0]["candidates"]:
        assert cand["verdict"] == "inconclusive"
        overall = [c for c in cand["checks"] if not c["segment"]]
        assert {c["check"] for c in overall} == {
            "score-ks",
            "score-wasserstein",
            "deny-rate",
            "review-rate",
            "missed-nines",
        }
        assert all(c["state"] == "inconclusive" for c in overall)
        deny = next(c for c in overall if c["check"] == "deny-rate")
        assert deny["needs"]["baseline"] > 0
    main(["replay", str(head), "--policy", str(files["policy"]), "--no-progress"])
    text = capsys.readouterr().out
    assert "deny-rate: inconclusive: needs about " in text and "more baseline observations" in text


def test_a_file_grouped_by_version_warns_and_a_reorder_window_restores_the_alerts(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Grouped by version, most candidate events come after their time was judged: counted
    late, with a warning. With a window as long as the file, the alerts are those of the
    file in time order."""
    _, ordered_alerts = replay(capsys, files["ordered"], files["policy"])
    summary, _ = replay(capsys, files["grouped"], files["policy"])
    assert summary["late"] > 0.2 * REQUESTS
    assert any("not in time order" in w and "--reorder-window" in w for w in summary["warnings"])
    span = REQUESTS / 200.0 + 300  # the demo rate is 200 requests/s; labels up to minutes later
    summary, grouped_alerts = replay(
        capsys, files["grouped"], files["policy"], "--reorder-window", str(span)
    )
    assert summary["late"] == 0 and summary["unjoined"] == 0 and summary["warnings"] == []
    assert firing(grouped_alerts) == firing(ordered_alerts) != []


def test_a_shuffled_file_is_put_in_order_within_the_window(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    summary, _ = replay(capsys, files["shuffled"], files["policy"])
    assert summary["late"] > 0 and summary["unjoined"] > 0 and len(summary["warnings"]) == 2
    summary, alerts = replay(
        capsys, files["shuffled"], files["policy"], "--reorder-window", "100000"
    )
    assert summary["late"] == 0 and summary["unjoined"] == 0
    _, ordered_alerts = replay(capsys, files["ordered"], files["policy"])
    assert firing(alerts) == firing(ordered_alerts)


def test_a_candidate_that_got_nothing_and_an_unwatched_version_are_warned_about(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "typo.yaml"
    policy.write_text(POLICY.replace("mlp-pruned-60]", "mlp-prunned-60]"))
    summary, _ = replay(capsys, files["ordered"], policy)
    warnings = summary["warnings"]
    assert any("candidate 'mlp-prunned-60' got no inferences (a typo" in w for w in warnings)
    assert any("version 'mlp-pruned-60'" in w and "not monitored" in w for w in warnings)
    assert summary["unmonitored"] > 0
    assert summary["models"][0]["unmonitored_versions"]["mlp-pruned-60"] > 0


def test_reorder_window_with_state_is_refused_with_the_fix(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["replay", str(files["ordered"]), "--policy", str(files["policy"]), "--no-progress"]
    assert main([*argv, "--reorder-window", "10", "--state", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "--reorder-window cannot be combined with --state" in err and "(fix: " in err
