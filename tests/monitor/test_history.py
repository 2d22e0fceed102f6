"""The history the monitor records: the store, the recorder, and replay / run writing it."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.broker import EmbeddedBroker
from monitor.config import ConfigError, load_settings
from monitor.demo.simulator import write_jsonl
from monitor.envelope import open_sealed
from monitor.history.recorder import HistoryRecorder
from monitor.history.rows import ModelRecord, SignOff, VersionSample
from monitor.history.store import (
    FORMAT,
    HISTORY_FILE,
    LATENCY_EDGES_MS,
    Flush,
    HistoryError,
    HistoryStore,
    Served,
    history_file,
)
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from monitor.replay import LogDeadLetterSink, replay
from monitor.run import history_path
from tests.conftest import (
    DEMO_POLICY,
    Monitor,
    checkpointed_line,
    demo_scenario,
    demo_traffic,
    http_request,
    metric_sum,
    produce,
    read_jsonl,
    wait_kafka,
)
from tests.monitor import test_checkpoint_fixture as fixture

MODEL = "fraud-scorer"
#: Whole history, whatever its times.
EVER = (-1e18, 1e18)
RESOLUTION = 10.0


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30,000 requests of the demo's degraded candidate (about 100 s of event time)."""
    path = tmp_path_factory.mktemp("history") / "events.jsonl"
    write_jsonl(path, demo_scenario(31), 30_000)
    return path


@pytest.fixture(scope="module")
def replayed(
    events: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], Path]:
    """The events replayed with --state: (state directory, summary, alerts file)."""
    out = tmp_path_factory.mktemp("replayed")
    summary: dict[str, Any] = {}
    replay(
        events,
        load_policy(DEMO_POLICY),
        alerts_out=out / "alerts.jsonl",
        state_dir=out / "state",
        show_progress=False,
        summary=summary,
        batch_size=2000,  # as _cmd's, for the resumed run to compare with
        history_resolution=RESOLUTION,
    )
    return out / "state", summary, out / "alerts.jsonl"


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a history file, sorted (the meta table left out)."""
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if r[0] != "meta"
        ]
        return {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall()) for n in names}
    finally:
        conn.close()


def _flush(at: float, model: str = "m") -> Flush:
    sample = VersionSample(model, "v1", at, True, 10, 2, 1, 10, 50.0, (0,) * 49)
    return Flush(served=[Served(sample, at - 5.0, at - 1.0)])


# -- replay --state --------------------------------------------------------------------------


def test_replay_history_ends_where_the_summary_does(
    replayed: tuple[Path, dict[str, Any], Path],
) -> None:
    """The last check sample of each stream is the summary's final state and observation;
    the alert rows are the alerts file; the version counts add up to the inferences."""
    state, summary, alerts_file = replayed
    store = HistoryStore.open_existing(state)
    try:
        (model,) = summary["models"]
        (candidate,) = model["candidates"]
        last: dict[tuple[str, str], Any] = {}
        for s in store.check_samples(MODEL, *EVER):
            assert s.version == candidate["version"]
            last[(s.check, s.segment)] = s
        judged = [c for c in candidate["checks"] if (c["check"], c["segment"]) in last]
        assert len(judged) == len(last) > 10
        for c in judged:
            sample = last[(c["check"], c["segment"])]
            assert (sample.state, sample.observed) == (c["state"], c["observed"])
        alerts = read_jsonl(alerts_file)
        assert alerts, "the scenario raised no alert"
        rows = store.alerts(MODEL, *EVER)
        assert sorted((r.alert_id, r.status) for r in rows) == sorted(
            (a["alert_id"], a["status"]) for a in alerts
        )
        assert {r.alert_id: r.record for r in rows} == {a["alert_id"]: a for a in alerts}
        served: dict[str, int] = {}
        for v in store.version_samples(MODEL, *EVER):
            served[v.version] = served.get(v.version, 0) + v.inferences
            assert len(v.latency_bins) == len(LATENCY_EDGES_MS) + 1
            assert sum(v.latency_bins) == v.latency_count
        assert served == {
            model["baseline"]: model["baseline_inferences"],
            candidate["version"]: candidate["inferences"],
        }
        spans = {s.version: s for s in store.versions(MODEL)}
        assert {v: s.inferences for v, s in spans.items()} == served
        assert spans[model["baseline"]].baseline and not spans[candidate["version"]].baseline
        changes = store.verdict_changes(MODEL, *EVER)
        assert changes[-1].verdict == candidate["verdict"] == "fail"
        assert all(set(r) <= {"check", "segment", "state", "reason", "action"}
                   for c in changes for r in c.reasons)  # fmt: skip
        (record,) = store.models()
        assert record.policy["name"] == MODEL and record.policy["owner"]
        assert store.drift_samples(MODEL, *EVER)
        tools = store.tool_samples(MODEL, *EVER)
        assert {t.tool for t in tools if t.action == "tool_call"} >= {"refund.issue"}
    finally:
        store.close()


def _cmd(events: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "monitor.cli", "replay", str(events),
        "--policy", str(DEMO_POLICY),
        "--alerts-out", str(out / "alerts.jsonl"),
        "--batch-size", "2000", "--no-progress",
        "--state", str(out / "state"), "--checkpoint-seconds", "0.2",
        "--history-resolution", str(RESOLUTION),
    ]  # fmt: skip


def test_a_killed_and_resumed_replay_writes_the_unbroken_history(
    events: Path, replayed: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    """SIGKILLed past half the file at a random moment, then run again: every table of its
    history is the unbroken run's."""
    total = events.read_bytes().count(b"\n")
    proc = subprocess.Popen(
        _cmd(events, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while checkpointed_line(tmp_path / "state") < 0.5 * total:
        assert proc.poll() is None, "the replay ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint progress"
        time.sleep(0.05)
    time.sleep(random.Random(3).uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = subprocess.run(_cmd(events, tmp_path), capture_output=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    unbroken = _tables(history_file(replayed[0]))
    resumed = _tables(tmp_path / "state" / HISTORY_FILE)
    assert unbroken["checks"] and unbroken["alerts"]
    for table, rows in unbroken.items():
        assert resumed[table] == rows, table


def test_a_history_write_failure_does_not_stop_the_replay(events: Path, tmp_path: Path) -> None:
    """The history file cannot be opened (a directory stands in its place): the replay ends
    as one without history, and every failed write is counted."""
    (tmp_path / "state" / HISTORY_FILE).mkdir(parents=True)
    metrics = Metrics()
    policy = load_policy(DEMO_POLICY)
    ledger = replay(
        events,
        policy,
        alerts_out=tmp_path / "a.jsonl",
        state_dir=tmp_path / "state",
        show_progress=False,
        metrics=metrics,
    )
    plain = replay(events, policy, alerts_out=tmp_path / "b.jsonl", show_progress=False)
    assert ledger == plain
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    failures = metrics.registry.get_sample_value("shiftwatch_history_write_failures_total")
    assert failures is not None and failures >= 1


def test_replay_refuses_a_bad_history_resolution(events: Path, tmp_path: Path) -> None:
    """Resolution and retention must be positive: refused with the flag's name."""
    policy = load_policy(DEMO_POLICY)
    with pytest.raises(ValueError, match="--history-resolution"):
        replay(events, policy, alerts_out=None, state_dir=tmp_path, history_resolution=0.0)
    with pytest.raises(ValueError, match="--history-retention"):
        replay(events, policy, alerts_out=None, state_dir=tmp_path, history_retention=-1.0)


# -- the recorder inside a pipeline --------------------------------------------------------


def test_writes_that_fail_mid_run_are_counted_and_later_ones_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk for a while: batches go on, failures are counted, writes resume after."""
    messages = fixture._messages(12_000)
    recorder = HistoryRecorder(tmp_path / HISTORY_FILE, resolution_seconds=2.0)
    pipeline = Pipeline(
        load_policy(fixture.POLICY),
        dead_letters=LogDeadLetterSink(),
        clock="event",
        quiet=True,
        history=recorder,
    )
    pipeline.assigned(["fixture:0"])
    real_write = HistoryStore.write

    def full(self: HistoryStore, rows: Flush) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    batches = [messages[i : i + 1000] for i in range(0, len(messages), 1000)]
    monkeypatch.setattr(HistoryStore, "write", full)
    for batch in batches[:10]:
        pipeline.process(batch)
    monkeypatch.setattr(HistoryStore, "write", real_write)
    for batch in batches[10:]:
        pipeline.process(batch)
    pipeline.close()
    failures = pipeline.metrics.registry.get_sample_value("shiftwatch_history_write_failures_total")
    assert failures is not None and failures >= 5
    store = HistoryStore.open_existing(tmp_path)
    try:
        assert store.version_samples("fraud-scorer", *EVER)
        assert store.check_samples("fraud-scorer", *EVER)
    finally:
        store.close()


def test_a_checkpoint_without_history_restores_into_a_recording_pipeline(tmp_path: Path) -> None:
    """The committed format-2 checkpoint (no history in it) restores; recording starts then."""
    checkpoint = open_sealed(fixture.FIXTURE.read_bytes(), fixture.KEY)
    assert "history" not in checkpoint.state
    recorder = HistoryRecorder(tmp_path / HISTORY_FILE, resolution_seconds=5.0)
    pipeline = Pipeline(
        load_policy(fixture.POLICY),
        dead_letters=LogDeadLetterSink(),
        clock="event",
        quiet=True,
        history=recorder,
    )
    pipeline.restore_state(checkpoint.state)
    pipeline.assigned(["fixture:0"])
    done = int(checkpoint.positions["file"][1])
    messages: list[Message] = fixture._messages(30_000)
    for i in range(done, len(messages), 2000):
        pipeline.process(messages[i : i + 2000])
    state = pipeline.state()["history"]
    assert state["models"]["fraud-scorer"]["closed"] > 0
    pipeline.close()
    store = HistoryStore.open_existing(tmp_path / HISTORY_FILE)
    try:
        counted = sum(v.inferences for v in store.version_samples("fraud-scorer", *EVER))
        assert 0 < counted < len(messages) - done
    finally:
        store.close()


# -- the store -------------------------------------------------------------------------------


def test_retention_deletes_rows_older_than_the_newest_less_the_retention(tmp_path: Path) -> None:
    """Rows more than the retention before the newest go at the next flush; models and
    sign-offs stay."""
    day = 86400.0
    store = HistoryStore(tmp_path / HISTORY_FILE, retention_seconds=7 * day)
    store.write(Flush(models=[ModelRecord("m", 0.0, {"name": "m"})]))
    store.add_signoff(SignOff("m", "v2", 1.0, "accept", "owner", "fine"))
    for at in (1 * day, 5 * day, 9 * day):
        store.write(_flush(at))
    assert [v.at for v in store.version_samples("m", *EVER)] == [5 * day, 9 * day]
    store.write(_flush(30 * day))
    assert [v.at for v in store.version_samples("m", *EVER)] == [30 * day]
    assert store.span() == (30 * day, 30 * day)
    assert [r.model for r in store.models()] == ["m"]
    assert len(store.signoffs("m")) == 1
    store.close()


def test_writing_the_same_rows_twice_gives_the_same_table(tmp_path: Path) -> None:
    """A rewritten bucket replaces itself; a model's unchanged policy is recorded once."""
    store = HistoryStore(tmp_path / HISTORY_FILE)
    for _ in range(2):
        store.write(_flush(600.0))
        store.write(Flush(models=[ModelRecord("m", 10.0, {"owner": "a"})]))
    store.write(Flush(models=[ModelRecord("m", 20.0, {"owner": "a"})]))
    store.close()
    tables = _tables(tmp_path / HISTORY_FILE)
    assert len(tables["served"]) == 1
    assert tables["models"] == [("m", 10.0, '{"owner":"a"}')]


def test_open_existing_says_what_is_wrong_and_how_to_fix_it(tmp_path: Path) -> None:
    """Missing, foreign, and another format: each a HistoryError with its own message."""
    with pytest.raises(HistoryError, match=r"no history in .*: run `shiftwatch replay"):
        HistoryStore.open_existing(tmp_path / "nothing")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / HISTORY_FILE).write_text("not a database, not at all" * 100)
    with pytest.raises(HistoryError, match="is not a shiftwatch history"):
        HistoryStore.open_existing(tmp_path / "text")
    other = tmp_path / "other" / HISTORY_FILE
    other.parent.mkdir()
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(HistoryError, match="without its meta table"):
        HistoryStore.open_existing(other)
    newer = tmp_path / "newer" / HISTORY_FILE
    HistoryStore(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE meta SET value = 'shiftwatch-history/2' WHERE key = 'format'")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryError, match=f"format 'shiftwatch-history/2'.*{FORMAT}"):
        HistoryStore.open_existing(newer)
    with pytest.raises(HistoryError, match="format 'shiftwatch-history/2'"):
        HistoryStore(newer)


def test_history_file_of_a_directory_a_state_file_and_itself(tmp_path: Path) -> None:
    """A --state directory holds it, a state file has it next to it, a history file is it."""
    assert history_file(tmp_path) == tmp_path / HISTORY_FILE
    assert history_file(tmp_path / "new-dir") == tmp_path / "new-dir" / HISTORY_FILE
    assert history_file(tmp_path / "state.sqlite3") == tmp_path / HISTORY_FILE
    assert history_file(tmp_path / HISTORY_FILE) == tmp_path / HISTORY_FILE


def test_signoffs_and_json_columns_read_back(tmp_path: Path) -> None:
    """A sign-off and a verdict change with reasons come back as written."""
    from monitor.history.rows import VerdictChange

    store = HistoryStore(tmp_path / HISTORY_FILE)
    reasons = ({"check": "c", "segment": "", "state": "breach", "reason": "r"},)
    store.write(Flush(verdicts=[VerdictChange("m", "v2", 5.0, "fail", reasons)]))
    assert store.verdict_changes("m", 0.0, 10.0) == [VerdictChange("m", "v2", 5.0, "fail", reasons)]
    signoff = SignOff("m", "v2", 7.0, "rollback", "ana", "too many escalations")
    store.add_signoff(signoff)
    assert store.signoffs("m") == [signoff]
    assert json.loads(json.dumps(store.describe()))["format"] == FORMAT
    store.close()


# -- shiftwatch run -------------------------------------------------------------------------


def test_run_with_a_state_file_records_the_history_next_to_it(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    """`shiftwatch run` with state.path: every inference it consumed is in the history
    next to the state file once it stops."""
    (traffic,) = demo_traffic(41, 3000)
    n = produce(broker.bootstrap_servers, topic, traffic)
    inferences = sum(1 for e in traffic if e["kind"] == "inference")
    mon = Monitor(broker, topic, "g-history", tmp_path)
    mon.start()
    try:
        url = f"http://127.0.0.1:{mon.port}/metrics"

        def consumed() -> float:
            try:
                return metric_sum(http_request(url)[2], "shiftwatch_events_consumed_total")
            except OSError:
                return 0.0

        wait_kafka(lambda: consumed() >= n)
        mon.kill(signal.SIGTERM)
        assert mon.proc is not None and mon.proc.returncode == 0
    finally:
        if mon.proc is not None and mon.proc.poll() is None:
            mon.proc.kill()
    store = HistoryStore.open_existing(tmp_path / "state.sqlite3")
    try:
        assert store.path == tmp_path / HISTORY_FILE
        served = store.version_samples(MODEL, *EVER)
        assert sum(v.inferences for v in served) == inferences
        assert store.check_samples(MODEL, *EVER) and store.models()
    finally:
        store.close()


def test_history_settings_are_validated_and_placed() -> None:
    """A bad history setting names its field; the file goes next to state.path unless set,
    and the two-stage tier (scale.engine quix) records none."""
    with pytest.raises(ConfigError, match=r"history\.resolution_seconds"):
        load_settings(policy=str(DEMO_POLICY), history={"resolution_seconds": 0})
    with pytest.raises(ConfigError, match=r"history\.retention_days"):
        load_settings(policy=str(DEMO_POLICY), history={"retention_days": -1})
    state = load_settings(policy=str(DEMO_POLICY), state={"path": "/v/state.sqlite3"})
    assert history_path(state) == Path("/v") / HISTORY_FILE
    off = load_settings(
        policy=str(DEMO_POLICY), state={"path": "/v/s.sqlite3"}, history={"enabled": False}
    )
    assert history_path(off) is None
    explicit = load_settings(policy=str(DEMO_POLICY), history={"path": "/r/h.sqlite3"})
    assert history_path(explicit) == Path("/r") / HISTORY_FILE
    quix = {"engine": "quix", "stage": "judge"}
    tier = load_settings(policy=str(DEMO_POLICY), state={"secret": "k" * 32}, scale=quix)
    assert history_path(tier) is None
