"""`shiftwatch replay`: dead letters, duplicates, determinism and alerts over JSONL files."""

from __future__ import annotations

import io
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.demo.simulator import Scenario, write_jsonl
from tests.conftest import DEMO_POLICY, demo_scenario, read_jsonl

MALFORMED = [
    "not json",
    '{"kind": "inference"}',
    '{"kind": "inference", "id": "m", "time": "2026-11-02T09:00:00Z", "request_id": "r",'
    ' "model": "fraud-scorer", "version": "v7-int8", "score": NaN}',
    '{"kind": "action", "id": "m", "time": "yesterday", "request_id": "r", "model": "x",'
    ' "version": "y", "action": "escalation"}',
    '{"kind": "wormhole", "id": "m"}',
    "[1, 2, 3]",
    "",
    '{"kind": "outcome", "id": "m", "time": "2026-11-02T09:00:00Z", "request_id": "r", "label": 7}',
]


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo-like stream: the default degraded candidate, 60k requests."""
    path = tmp_path_factory.mktemp("replay") / "events.jsonl"
    write_jsonl(path, demo_scenario(11), 60_000)
    return path


def _replay(events: Path | str, tmp: Path, name: str, dead: bool = True) -> tuple[list[dict], dict]:
    alerts = tmp / f"{name}.alerts.jsonl"
    argv = [
        "replay",
        str(events),
        "--policy",
        str(DEMO_POLICY),
        "--alerts-out",
        str(alerts),
        "--no-progress",
        "--summary-json",
    ]
    if dead:
        argv += ["--dead-letter-out", str(tmp / f"{name}.dead.jsonl")]
    out = io.StringIO()
    stdout, sys.stdout = sys.stdout, out
    try:
        assert main(argv) == 0
    finally:
        sys.stdout = stdout
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return read_jsonl(alerts), summary


def _comparable(alert: dict) -> dict:
    """The alert without its source position (line numbers move when lines are inserted)."""
    evidence = {k: v for k, v in alert["evidence"].items() if k != "source"}
    return alert | {"evidence": evidence}


def test_malformed_lines_dead_lettered_duplicates_dropped_alerts_unchanged(
    demo_file: Path, tmp_path: Path
) -> None:
    """1% malformed lines and exact duplicates: one dead letter each, same alerts as clean."""
    clean_alerts, clean = _replay(demo_file, tmp_path, "clean")
    assert clean["dead_lettered"] == 0 and clean["duplicates"] == 0
    assert {a["check"] for a in clean_alerts} >= {"escalations"}

    lines = demo_file.read_text().splitlines()
    rng = random.Random(5)
    n_bad = len(lines) // 100
    dirty: list[str] = []
    bad_at: list[int] = []
    dup_count = 0
    bad_positions = set(rng.sample(range(len(lines)), n_bad))
    dup_positions = set(rng.sample(range(len(lines)), n_bad))
    for i, line in enumerate(lines):
        if i in bad_positions:
            dirty.append(MALFORMED[i % len(MALFORMED)])
            bad_at.append(len(dirty))  # 1-based line number of the malformed line
        dirty.append(line)
        if i in dup_positions:
            dirty.append(line)  # an exact redelivery, right after the original
            dup_count += 1
    dirty_file = tmp_path / "dirty.jsonl"
    dirty_file.write_text("\n".join(dirty) + "\n")

    dirty_alerts, summary = _replay(dirty_file, tmp_path, "dirty")
    assert summary["consumed"] == len(dirty)
    assert summary["dead_lettered"] == n_bad
    assert summary["duplicates"] == dup_count
    assert (
        summary["consumed"]
        == summary["processed"] + summary["dead_lettered"] + summary["duplicates"]
    )

    letters = read_jsonl(tmp_path / "dirty.dead.jsonl")
    assert len(letters) == n_bad
    assert [d["source"]["offset"] for d in letters] == bad_at
    for d in letters:
        assert d["reason"] and d["code"]
        assert d["value"] == dirty[d["source"]["offset"] - 1]
    assert [_comparable(a) for a in dirty_alerts] == [_comparable(a) for a in clean_alerts]


def test_replay_is_deterministic(demo_file: Path, tmp_path: Path) -> None:
    """Two replays of one file write byte-identical alert files (fired_at is event time)."""
    _replay(demo_file, tmp_path, "one")
    _replay(demo_file, tmp_path, "two")
    one = (tmp_path / "one.alerts.jsonl").read_bytes()
    assert one and one == (tmp_path / "two.alerts.jsonl").read_bytes()


def test_replay_reads_stdin(
    demo_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-` reads the events from standard input, with the same alerts as the file."""
    file_alerts, _ = _replay(demo_file, tmp_path, "file")
    with demo_file.open("rb") as fh:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(fh))
        stdin_alerts, summary = _replay("-", tmp_path, "stdin")
    assert summary["consumed"] > 0
    assert [_comparable(a) for a in stdin_alerts] == [_comparable(a) for a in file_alerts]


@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_identical_candidate_raises_nothing(seed: int, tmp_path: Path) -> None:
    """A candidate identical to its baseline raises no alert (four seeded streams)."""
    path = tmp_path / "same.jsonl"
    write_jsonl(path, Scenario.identical(seed=seed, requests_per_second=300.0), 40_000)
    alerts, summary = _replay(path, tmp_path, "same")
    assert summary["processed"] > 80_000
    assert alerts == []


def test_shift_inside_tolerance_raises_nothing(tmp_path: Path) -> None:
    """Escalations down 10% (tolerance 25%) and denials in lang=ga up 20% (tolerance 50%): quiet."""
    scenario = Scenario.identical(seed=31, requests_per_second=300.0)
    scenario = replace(scenario, escalation_factor=0.9, rare_lang_deny_factor=1.2)
    path = tmp_path / "inside.jsonl"
    write_jsonl(path, scenario, 60_000)
    alerts, _ = _replay(path, tmp_path, "inside")
    assert alerts == []


def test_missing_input_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing events file exits 2 with the path in the message, no traceback."""
    code = main(
        ["replay", str(tmp_path / "nope.jsonl"), "--policy", str(DEMO_POLICY), "--no-progress"]
    )
    assert code == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_event_from_the_future_is_dead_lettered(tmp_path: Path) -> None:
    """An event stamped years ahead is rejected with its reason instead of moving event time."""
    path = tmp_path / "future.jsonl"
    write_jsonl(path, Scenario.identical(seed=41, requests_per_second=300.0), 2_000)
    future = (
        '{"kind": "inference", "id": "f1", "time": "2099-01-01T00:00:00Z", "request_id": "rf",'
        ' "model": "fraud-scorer", "version": "v7-int8", "decision": "allow"}'
    )
    lines = path.read_text().splitlines()
    lines.insert(100, future)
    path.write_text("\n".join(lines) + "\n")
    _, summary = _replay(path, tmp_path, "future")
    assert summary["dead_lettered"] == 1
    letter = json.loads((tmp_path / "future.dead.jsonl").read_text())
    assert letter["code"] == "future_time" and "2099" in letter["reason"]
    assert letter["source"]["offset"] == 101
