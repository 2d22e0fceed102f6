"""The scale tier's stages in process: partials, the state they keep, and idempotent judging.

The stages run here without Quix or a broker (a dict stands in for the state
store, a list for the partials topic), so the hand-over's properties are
checked exactly: what a judge counts is one process's count however the
partials are cut, repeated or interleaved.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from prometheus_client import generate_latest

from monitor.alerts import AlertRecord, OnceJsonlAlertSink
from monitor.config import LimitsSettings
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline, validate
from monitor.policy import Policy, load_policy
from monitor.router import Router
from monitor.scale.ingest import IngestStage
from monitor.scale.judge import JudgeStage
from monitor.scale.partials import from_work, read_partial, to_work
from monitor.scale.stored import CHUNK, load, save
from monitor.state import StateMismatch
from monitor.work import GroupTable
from tests.conftest import DEMO_POLICY, demo_traffic, metric_sum

KEY = b"k" * 32
PARTITIONS = 3


class DictState:
    """A Quix ``State`` stand-in: bytes keys under one prefix of a shared dict."""

    def __init__(self, data: dict[bytes, bytes], prefix: bytes) -> None:
        self.data, self.prefix = data, prefix

    def get(self, key: bytes, default: None = None) -> bytes | None:
        return self.data.get(self.prefix + key, default)

    def set(self, key: bytes, value: bytes) -> None:
        self.data[self.prefix + key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(self.prefix + key, None)


class Topic:
    """The partials topic: (key, value) in the order produced."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.flushes = 0

    def produce(self, key: bytes, value: bytes) -> None:
        self.records.append((key, value))

    def flush(self) -> None:
        self.flushes += 1


class NoDeadLetters:
    def send(self, message: Message, rejection: object) -> None:
        raise AssertionError(rejection)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class Alerts:
    def __init__(self) -> None:
        self.records: list[AlertRecord] = []

    def emit(self, alert: AlertRecord) -> None:
        self.records.append(alert)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEMO_POLICY)


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    """The demo's degraded candidate, spread over 3 partitions by request id."""
    (events,) = demo_traffic(29, 12_000)
    offsets = [0] * PARTITIONS
    out = []
    for event in events:
        p = sum(event["request_id"].encode()) % PARTITIONS
        out.append(Message(json.dumps(event).encode(), "ev", p, offsets[p]))
        offsets[p] += 1
    return out


def ingest(policy: Policy, data: dict[bytes, bytes], topic: Topic, **kw: Any) -> IngestStage:
    """An ingest stage keeping its state in ``data`` (``kw`` may replace any argument)."""
    return IngestStage(
        policy,
        LimitsSettings(),
        dead_letters=NoDeadLetters(),
        partials=topic,
        metrics=Metrics(),
        **{
            "store": lambda t, p: DictState(data, f"{t}:{p}/".encode()),
            "signing_key": KEY,
            **kw,
        },
    )


def judge(policy: Policy, store: dict[bytes, bytes], alerts: Alerts) -> JudgeStage:
    return JudgeStage(
        policy,
        LimitsSettings(),
        sources=[f"ev:{p}" for p in range(PARTITIONS)],
        alert_sinks=[alerts],
        metrics=Metrics(),
        store=lambda t, p, model: DictState(store, f"{t}:{p}/{model}/".encode()),
        signing_key=KEY,
    )


def one_process(policy: Policy, messages: list[Message]) -> tuple[dict[str, Any], list[str]]:
    alerts = Alerts()
    pipeline = Pipeline(policy, dead_letters=NoDeadLetters(), alert_sinks=[alerts], quiet=True)
    pipeline.assigned([f"ev:{p}" for p in range(PARTITIONS)])
    for start in range(0, len(messages), 997):
        pipeline.process(messages[start : start + 997])
    verdict = pipeline.verdicts.get("fraud-scorer", "v7-int8")
    assert verdict is not None
    return _checks(verdict), [a.alert_id for a in alerts.records]


def _checks(verdict: dict[str, Any]) -> dict[str, Any]:
    return {
        (c["check"], c["segment"]): {k: v for k, v in c.items() if k != "fired_at"}
        for c in verdict["checks"]
    }


def judged(stage: JudgeStage) -> dict[str, Any]:
    verdict = stage.metrics.verdicts.get("fraud-scorer", "v7-int8")
    assert verdict is not None
    return _checks(verdict)


def routed_partials(policy: Policy, messages: list[Message], cut: int) -> list[bytes]:
    """The partials of an ingest stage that routes ``cut`` messages of a partition at a time."""
    topic = Topic()
    stage = ingest(policy, {}, topic, emit_events=cut, emit_seconds=1e9)
    for message in messages:
        stage.add(message)
    stage.flush()
    return [value for _, value in topic.records]


# -- partials ---------------------------------------------------------------------------------
def test_a_partial_carries_the_routed_columns_and_drops_rows_by_offset(
    policy: Policy, messages: list[Message]
) -> None:
    batch = [m for m in messages if m.partition == 1][:3000]
    router = Router(policy)
    _, valid, _ = validate(batch, LimitsSettings())
    work = router.route(valid).work["fraud-scorer"]
    blob = from_work("fraud-scorer", work, "ev", 1, batch[0].offset, batch[-1].offset)
    partial = read_partial(blob)
    assert (partial.model, partial.source, partial.first, partial.last) == (
        "fraud-scorer",
        "ev:1",
        batch[0].offset,
        batch[-1].offset,
    )
    table = GroupTable("v7-fp32")
    back = to_work(partial, table, after=-1)

    def groups(t: GroupTable, codes: list[int]) -> list[tuple[str, Any]]:
        return [(t.groups[c].version, t.groups[c].streams) for c in codes]

    for mine, theirs in ((work.inferences, back.inferences), (work.actions, back.actions)):
        assert mine.at == theirs.at
        assert groups(work.table, mine.group) == groups(table, theirs.group)
    assert work.inferences.decision == back.inferences.decision
    assert work.inferences.score == back.inferences.score
    assert work.inferences.latency_ms == back.inferences.latency_ms
    assert [p.offset for p in work.inferences.position] == [
        p.offset for p in back.inferences.position
    ]
    assert [msgspec.to_builtins(e) for e in work.actions.event] == [
        msgspec.to_builtins(e) for e in back.actions.event
    ]
    assert work.outcomes.label == back.outcomes.label
    assert work.marks == back.marks
    # Rows at or before an offset already applied are left out.
    middle = batch[len(batch) // 2].offset
    later = to_work(partial, GroupTable("v7-fp32"), after=middle)
    assert [p.offset for p in later.inferences.position] == [
        p.offset for p in work.inferences.position if p.offset > middle
    ]
    assert later.actions.offset == [o for o in work.actions.offset if o > middle]
    assert len(later.inferences) < len(work.inferences)


@pytest.mark.parametrize("blob", [b"", b"\x93\x01\x02", json.dumps({"a": 1}).encode()])
def test_what_is_not_a_partial_is_refused(blob: bytes) -> None:
    with pytest.raises(ValueError, match="not a shiftwatch partial"):
        read_partial(blob)


def test_a_partial_of_another_format_is_refused(policy: Policy, messages: list[Message]) -> None:
    router = Router(policy)
    _, valid, _ = validate(messages[:50], LimitsSettings())
    work = router.route(valid).work["fraud-scorer"]
    blob = bytearray(from_work("fraud-scorer", work, "ev", 0, 0, 49))
    assert blob[1] == 1  # the array's first element: the format
    blob[1] = 9
    with pytest.raises(ValueError, match="format 9; this release reads 1"):
        read_partial(bytes(blob))


# -- stored state -----------------------------------------------------------------------------
def test_state_is_kept_in_chunks_and_a_smaller_one_leaves_none_behind() -> None:
    data: dict[bytes, bytes] = {}
    state = DictState(data, b"p/")
    big = random.Random(1).randbytes(2 * CHUNK + 17)
    save(state, big)
    assert load(state) == big
    assert sum(k.startswith(b"p/chunk:") for k in data) == 3
    save(state, b"small")
    assert load(state) == b"small"
    assert sum(k.startswith(b"p/chunk:") for k in data) == 1
    assert load(DictState(data, b"other/")) is None
    save(state, big)
    del data[b"p/chunk:1"]
    assert load(state) == b""  # refused as truncated by whoever opens it


# -- idempotent judging -----------------------------------------------------------------------
def test_the_judge_counts_each_event_once_however_partials_are_cut_or_repeated(
    policy: Policy, messages: list[Message]
) -> None:
    """Partials cut at 500 messages, then cut at 1,300 (as after an ingest restart) and the
    first ones again: the judge ends with one process's checks and alerts."""
    expected, expected_alerts = one_process(policy, messages)
    first = routed_partials(policy, messages, 500)
    again = routed_partials(policy, messages, 1300)
    alerts = Alerts()
    stage = judge(policy, {}, alerts)
    # Half the first cut, then the second cut, then the whole first cut again.
    for offset, blob in enumerate(first[: len(first) // 2] + again + first):
        stage.add(blob, "partials", 0, offset)
    assert judged(stage) == expected
    assert [a.alert_id for a in alerts.records] == expected_alerts
    exposed = generate_latest(stage.metrics.registry).decode()
    # Every event of the second cut and of the first cut's repeat was dropped as repeated.
    assert metric_sum(exposed, "shiftwatch_scale_rows_repeated_total") >= len(messages)


def test_a_judge_restored_from_its_store_goes_on_as_if_never_stopped(
    policy: Policy, messages: list[Message]
) -> None:
    expected, expected_alerts = one_process(policy, messages)
    partials = routed_partials(policy, messages, 700)
    store: dict[bytes, bytes] = {}
    alerts = Alerts()
    before = judge(policy, store, alerts)
    half = len(partials) // 2
    for offset, blob in enumerate(partials[:half]):
        before.add(blob, "partials", 0, offset)
    before.flush()  # Quix's checkpoint: the state saved, the offsets committed
    # What it judged after the checkpoint is lost with it; the next replica reads it again.
    for offset, blob in enumerate(partials[half : half + 3], start=half):
        before.add(blob, "partials", 0, offset)
    after = judge(policy, store, alerts)
    for offset, blob in enumerate(partials[half:], start=half):
        after.add(blob, "partials", 0, offset)
    assert judged(after) == expected
    # The alerts raised twice carry the same ids: a sink that delivers an id once is whole.
    assert sorted(set(a.key for a in alerts.records)) == sorted(
        set(f"{i}:firing" for i in expected_alerts)
    )


def test_a_partial_of_an_unknown_model_or_no_partial_is_refused_and_counted(
    policy: Policy, messages: list[Message]
) -> None:
    stage = judge(policy, {}, Alerts())
    router = Router(policy)
    _, valid, _ = validate(messages[:100], LimitsSettings())
    work = router.route(valid).work["fraud-scorer"]
    stage.add(from_work("unknown-model", work, "ev", 0, 0, 99), "partials", 0, 0)
    stage.add(b"garbage", "partials", 0, 1)
    exposed = generate_latest(stage.metrics.registry).decode()
    assert 'shiftwatch_scale_partials_total{outcome="refused"} 2.0' in exposed
    assert 'shiftwatch_scale_partials_total{outcome="applied"} 0.0' in exposed


# -- the ingest stage's state -----------------------------------------------------------------
def test_an_ingest_stage_taking_a_partition_over_restores_its_router(
    policy: Policy, messages: list[Message]
) -> None:
    """Outcomes arrive long after their inference: a replica that takes the partition over
    mid-stream joins them only with the router (join table) the other one saved."""
    mine = [m for m in messages if m.partition == 2]
    whole = Topic()
    one = ingest(policy, {}, whole, emit_events=400, emit_seconds=1e9)
    for message in mine:
        one.add(message)
    one.flush()

    store: dict[bytes, bytes] = {}
    cut = len(mine) // 2
    before, after, fresh = Topic(), Topic(), Topic()
    first = ingest(policy, store, before, emit_events=400, emit_seconds=1e9)
    for message in mine[:cut]:
        first.add(message)
    first.flush()  # Quix's checkpoint: the router saved with the offset it goes on from
    second = ingest(policy, store, after, emit_events=400, emit_seconds=1e9)
    empty = ingest(policy, {}, fresh, emit_events=400, emit_seconds=1e9)
    for message in mine[cut:]:
        second.add(message)
        empty.add(message)
    second.flush()
    empty.flush()

    def rows(topic: Topic) -> np.ndarray[Any, Any]:
        """Events handed on: inferences, actions, outcomes."""
        partials = [read_partial(v) for _, v in topic.records]
        return np.asarray(
            [
                sum(len(np.frombuffer(getattr(p, kind).offset, dtype="<i8")) for p in partials)
                for kind in ("inferences", "actions", "outcomes")
            ]
        )

    assert (rows(before) + rows(after)).tolist() == rows(whole).tolist()
    assert rows(after)[2] > 0
    # Without the saved router the outcomes of inferences read before the cut are lost.
    assert rows(fresh)[2] < rows(after)[2]


def test_an_ingest_state_signed_with_another_key_fails_or_starts_afresh(
    policy: Policy, messages: list[Message]
) -> None:
    store: dict[bytes, bytes] = {}
    mine = [m for m in messages if m.partition == 0]
    writer = ingest(policy, store, Topic())
    for message in mine[:100]:
        writer.add(message)
    writer.flush()
    other = ingest(policy, store, Topic(), signing_key=b"x" * 32, emit_events=1)
    with pytest.raises(StateMismatch, match="the ingest state of ev:0 cannot be restored"):
        other.add(mine[100])
    topic = Topic()
    fresh = ingest(policy, store, topic, signing_key=b"x" * 32, emit_events=1, mismatch="fresh")
    fresh.add(mine[100])
    assert len(topic.records) == 1


# -- the judge's alerts file ------------------------------------------------------------------
def test_the_judges_alerts_file_holds_each_record_once(tmp_path: Path) -> None:
    record = {
        "alert_id": "a1",
        "status": "firing",
    }
    path = tmp_path / "alerts.jsonl"
    path.write_text(json.dumps(record) + "\n" + '{"alert_id": "a2", "sta')  # torn last line
    sink = OnceJsonlAlertSink(path)
    fired = _alert("a1", "firing")
    sink.emit(fired)  # already there
    sink.emit(_alert("a2", "firing"))
    sink.emit(_alert("a2", "firing"))
    sink.emit(_alert("a1", "resolved"))
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["alert_id"], r["status"]) for r in lines] == [
        ("a1", "firing"),
        ("a2", "firing"),
        ("a1", "resolved"),
    ]


def _alert(alert_id: str, status: str) -> AlertRecord:
    return AlertRecord.model_validate(
        {
            "alert_id": alert_id,
            "status": status,
            "model": "m",
            "version": "v2",
            "baseline": "v1",
            "check": "c",
            "metric": "decision_rate",
            "segment": {},
            "action": "page",
            "severity": "warning",
            "observed": 0.1,
            "reference": 0.05,
            "tolerance": {},
            "owner": "o",
            "controls": [],
            "event_time": "2026-01-01T00:00:00+00:00",
            "fired_at": "2026-01-01T00:00:00+00:00",
            "evidence": {},
        }
    )


# -- configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"scale": {"engine": "quix"}}, "set scale.stage to ingest"),
        ({"scale": {"stage": "judge"}}, "needs scale.engine quix (--engine quix)"),
        (
            {"scale": {"engine": "quix", "stage": "ingest"}},
            "set SHIFTWATCH_STATE__SECRET or state.secret_file, the same on every replica",
        ),
        (
            {
                "scale": {"engine": "quix", "stage": "judge"},
                "state": {"secret": "s" * 32, "path": "/tmp/state.sqlite3"},
            },
            "state.path is the embedded engine's SQLite store",
        ),
        ({"scale": {"engine": "quix", "stage": "merge"}}, "scale.stage"),
    ],
)
def test_a_stage_misconfigured_fails_at_start_naming_the_fix(
    overrides: dict[str, Any], expected: str
) -> None:
    from monitor.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as info:
        load_settings(policy=str(DEMO_POLICY), **overrides)
    assert expected in str(info.value)


def test_a_stage_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.config import load_settings

    monkeypatch.setenv("SHIFTWATCH_SCALE__ENGINE", "quix")
    monkeypatch.setenv("SHIFTWATCH_SCALE__STAGE", "judge")
    monkeypatch.setenv("SHIFTWATCH_SCALE__PARTIALS_TOPIC", "p")
    monkeypatch.setenv("SHIFTWATCH_STATE__SECRET", "s" * 32)
    scale = load_settings(policy=str(DEMO_POLICY)).scale
    assert (scale.engine, scale.stage, scale.partials_topic) == ("quix", "judge", "p")


def test_an_ingest_stage_goes_on_over_an_offset_gap_and_rereads_from_its_store_backwards(
    policy: Policy, messages: list[Message]
) -> None:
    """Offsets may skip forward (transaction markers, compaction): the replica's own router
    goes on. Offsets going back mean a re-read from the last commit: the saved router."""
    store: dict[bytes, bytes] = {}
    loads: list[tuple[str, int]] = []

    def counted(t: str, p: int) -> DictState:
        loads.append((t, p))
        return DictState(store, f"{t}:{p}/".encode())

    stage = ingest(policy, store, Topic(), store=counted, emit_events=50, emit_seconds=1e9)
    mine = [m for m in messages if m.partition == 0][:300]
    for message in mine[:100]:
        stage.add(message)
    assert len(loads) == 1  # the first batch: nothing in memory, the store asked
    stage.flush()
    saves = len(loads)
    gap = [Message(m.value, m.topic, m.partition, m.offset + 1000) for m in mine[100:200]]
    for message in gap:
        stage.add(message)
    assert len(loads) == saves  # forward over the gap: its own router, no load
    for message in mine[100:150]:  # back to offset 100 (the commit): from the store
        stage.add(message)
    assert len(loads) == saves + 1


def test_a_judge_reading_a_partition_again_from_an_earlier_offset_restores_its_models(
    policy: Policy, messages: list[Message]
) -> None:
    expected, _ = one_process(policy, messages)
    partials = routed_partials(policy, messages, 700)
    store: dict[bytes, bytes] = {}
    stage = judge(policy, store, Alerts())
    half = len(partials) // 2
    for offset, blob in enumerate(partials[:half]):
        stage.add(blob, "partials", 0, offset * 2)  # every other offset: gaps go on
    stage.flush()
    for offset, blob in enumerate(partials[half:], start=half):
        stage.add(blob, "partials", 0, offset * 2)
    # Quix seeks back to the commit after a failed checkpoint: the saved model, and the
    # partials after it again; the judge ends as one process.
    for offset, blob in enumerate(partials[half:], start=half):
        stage.add(blob, "partials", 0, offset * 2)
    assert judged(stage) == expected
