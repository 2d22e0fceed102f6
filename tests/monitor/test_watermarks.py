"""Event time per input: the minimum over non-idle partitions; results independent of order."""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import pytest

from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from monitor.replay import LogDeadLetterSink
from monitor.watermarks import Watermarks
from tests.conftest import DEMO_POLICY, demo_traffic

INPUTS = ["t:0", "t:1", "t:2"]


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_slowest_partition_holds_the_model_back() -> None:
    """The model's watermark is the minimum over its partitions, not the maximum."""
    wm = Watermarks(30.0, clock=FakeClock())
    wm.assign(INPUTS[:2])
    wm.observe("m", "t:0", 600.0)
    assert wm.watermark("m") == -math.inf  # t:1 may still carry m
    wm.observe("m", "t:1", 10.0)
    assert wm.watermark("m") == 10.0
    wm.observe("m", "t:1", 20.0)
    assert wm.watermark("m") == 20.0


def test_an_idle_partition_stops_holding_and_rejoins_with_data() -> None:
    """No data for idle_seconds and no backlog: ignored; data again: it counts again."""
    clock = FakeClock()
    wm = Watermarks(30.0, clock=clock)
    wm.observe("m", "t:0", 10.0)
    wm.observe("m", "t:1", 100.0)
    assert wm.watermark("m") == 10.0
    clock.now = 20.0
    wm.observe("m", "t:1", 120.0)
    clock.now = 31.0
    assert wm.watermark("m") == 120.0  # t:0 silent for 31 s
    assert wm.watermark("m", {"t:0": 5}) == 10.0  # ... unless messages wait on it
    wm.observe("m", "t:0", 50.0)
    assert wm.watermark("m") == 50.0


def test_a_partition_never_heard_from_holds_until_caught_up_or_idle() -> None:
    """An assigned, silent partition holds every model while its backlog is unknown or > 0."""
    clock = FakeClock()
    wm = Watermarks(30.0, clock=clock)
    wm.assign(INPUTS)
    wm.observe("m", "t:0", 10.0)
    wm.heard(["t:1"])  # delivered something (another model's data)
    assert wm.watermark("m", {"t:2": None}) == -math.inf
    assert wm.watermark("m", {"t:2": 0}) == 10.0  # fetched, nothing there
    assert wm.watermark("m", {"t:2": 3}) == -math.inf
    clock.now = 31.0
    assert wm.watermark("m", {"t:2": None}) == 10.0  # unknown for longer than idle_seconds
    assert wm.watermark("m", {"t:2": 3}) == -math.inf  # data waiting: never idle


def test_all_partitions_idle_release_everything_seen() -> None:
    """When every partition of the model is idle its watermark is the largest of theirs."""
    clock = FakeClock()
    wm = Watermarks(30.0, clock=clock)
    wm.observe("m", "t:0", 10.0)
    wm.observe("m", "t:1", 100.0)
    clock.now = 60.0
    assert wm.watermark("m") == 100.0


def test_revoked_partitions_no_longer_count_and_state_round_trips() -> None:
    """A revoked partition is forgotten; a restored watermark set equals the saved one."""
    wm = Watermarks(30.0, clock=FakeClock())
    wm.observe("m", "t:0", 10.0)
    wm.observe("m", "t:1", 100.0)
    wm.revoke(["t:0"])
    assert wm.watermark("m") == 100.0
    copy = Watermarks(30.0, clock=FakeClock())
    copy.restore(json.loads(json.dumps(wm.state())))
    copy.assign(["t:1"])
    assert copy.state() == wm.state() and copy.watermark("m") == 100.0


def test_after_a_restore_nothing_is_released_until_the_inputs_are_assigned() -> None:
    """Restored marks alone release nothing: an input absent from the checkpoint may still come;
    restored inputs missing from the new assignment are forgotten."""
    saved = Watermarks(30.0, clock=FakeClock())
    saved.observe("m", "t:1", 100.0)
    saved.observe("m", "t:2", 700.0)
    wm = Watermarks(30.0, clock=FakeClock())
    wm.restore(saved.state())
    assert wm.watermark("m") == -math.inf
    wm.assign(["t:0", "t:1"])  # t:2 went to another replica; t:0 never delivered before
    assert wm.watermark("m", {"t:0": 40}) == -math.inf
    wm.observe("m", "t:0", 50.0)
    assert wm.watermark("m") == 50.0
    assert "t:2" not in wm.state()["m"]


# -- the whole pipeline over different interleavings of the same events -------------------

Batches = list[list[Message]]


def _events() -> list[dict[str, Any]]:
    """About 20 minutes of the demo's degraded candidate (its escalation breach fires)."""
    (events,) = demo_traffic(11, 120_000)
    return events


def _partition(events: list[dict[str, Any]]) -> list[list[bytes]]:
    """Three partitions, in time order each; a request's events share one partition.

    Partition 2 holds the requests of the second half of the time range: at the same
    offsets, its events are ten minutes ahead of partitions 0 and 1.
    """
    times = {e["request_id"]: e["time"] for e in events if e["kind"] == "inference"}
    middle = sorted(times.values())[len(times) // 2]
    parts: list[list[bytes]] = [[], [], []]
    for event in events:
        rid = event["request_id"]
        p = 2 if times.get(rid, "") >= middle else zlib.crc32(rid.encode()) % 2
        parts[p].append(json.dumps(event).encode())
    return parts


def _batches(parts: list[list[bytes]], order: str, size: int = 500) -> Batches:
    """Batches of ``size`` messages: partition after partition (2 first) or round robin."""
    chunks = [
        [
            [Message(v, "t", p, i + j) for j, v in enumerate(values[i : i + size])]
            for i in range(0, len(values), size)
        ]
        for p, values in enumerate(parts)
    ]
    if order == "ahead-first":
        return chunks[2] + chunks[0] + chunks[1]
    out: Batches = []
    for k in range(max(len(c) for c in chunks)):
        out.extend(c[k] for c in chunks if k < len(c))
    return out


def _run(batches: Batches, inputs: list[str]) -> tuple[Pipeline, list[dict[str, Any]]]:
    """Replay the batches (the whole backlog in, no time for any partition to go idle),
    then let the partitions go idle, as a caught-up consumer would."""
    clock = FakeClock()
    pipeline = Pipeline(
        load_policy(DEMO_POLICY),
        dead_letters=LogDeadLetterSink(),
        clock="event",
        quiet=True,
        wall_clock=clock,
    )
    pipeline.assigned(inputs)
    alerts = []
    for batch in batches:
        alerts.extend(pipeline.process(batch).alerts)
    clock.now += pipeline.limits.idle_timeout_seconds + 1
    alerts.extend(pipeline.process([]).alerts)
    records = []
    for alert in alerts:
        record = alert.model_dump(mode="json")
        record["evidence"].pop("source")  # where in the log: differs by construction
        records.append(record)
    return pipeline, records


def _key(alert: dict[str, Any]) -> tuple[str, str]:
    return alert["alert_id"], alert["status"]


def _checks(pipeline: Pipeline) -> dict[tuple[str, str, Any], dict[str, Any]]:
    """Every check's state and numbers, per (check, version, stream)."""
    out = {}
    for status in pipeline.models["fraud-scorer"].statuses():
        det = status.detector
        seen = det.evidence()
        out[(status.check.name, status.version, status.stream)] = {
            "state": status.state,
            "statistic": det.statistic,
            "threshold": det.threshold,
            "observed": seen.observed,
            "reference": seen.reference,
            "seen": (seen.baseline_seen, seen.candidate_seen),
            "episode": status.episode,
        }
    return out


@pytest.fixture(scope="module")
def single() -> tuple[Pipeline, list[dict[str, Any]]]:
    """The reference: every event on one partition, in time order."""
    events = _events()
    messages = [Message(json.dumps(e).encode(), "t", 0, i) for i, e in enumerate(events)]
    return _run([messages[i : i + 500] for i in range(0, len(messages), 500)], ["t:0"])


@pytest.mark.parametrize("order", ["ahead-first", "round-robin"])
def test_any_partition_interleaving_gives_the_same_checks_and_alerts(
    single: tuple[Pipeline, list[dict[str, Any]]], order: str
) -> None:
    """Three partitions, one ten minutes ahead, read in two orders: no event is late and the
    checks and alert records equal those of the single-partition run."""
    reference, reference_alerts = single
    assert reference.ledger.late == 0
    assert any(a["check"] == "escalations" for a in reference_alerts)
    pipeline, alerts = _run(_batches(_partition(_events()), order), INPUTS)
    assert pipeline.ledger.late == 0
    assert pipeline.ledger.processed == reference.ledger.processed
    assert _checks(pipeline) == _checks(reference)
    assert sorted(alerts, key=_key) == sorted(reference_alerts, key=_key)


def test_the_old_rule_would_have_lost_most_events() -> None:
    """The same ahead-first layout with partitions treated as one input counts most as late."""
    parts = _partition(_events())
    batches = [
        [Message(m.value, "t", 0, m.offset) for m in batch]
        for batch in _batches(parts, "ahead-first")
    ]
    pipeline, _ = _run(batches, ["t:0"])
    assert pipeline.ledger.late > pipeline.ledger.processed // 3


def test_a_restart_before_a_partition_ever_delivered_loses_nothing(
    single: tuple[Pipeline, list[dict[str, Any]]],
) -> None:
    """Checkpointed while partition 0 had delivered nothing, restarted, polled idle before the
    group assigned anything: partition 0's events are not late and the checks are as if
    nothing had happened."""
    reference, reference_alerts = single
    parts = _partition(_events())
    chunks = _batches([[], parts[1], parts[2]], "ahead-first")
    clock = FakeClock()

    def pipeline() -> Pipeline:
        return Pipeline(
            load_policy(DEMO_POLICY),
            dead_letters=LogDeadLetterSink(),
            clock="event",
            quiet=True,
            wall_clock=clock,
        )

    before = pipeline()
    before.assigned(INPUTS)
    waiting = {"t:0": len(parts[0]), "t:1": 0, "t:2": 0}
    alerts = [a for batch in chunks for a in before.process(batch, backlog=waiting).alerts]
    after = pipeline()
    after.restore_state(before.state())
    alerts += after.process([], backlog={}).alerts  # an idle poll while joining the group
    after.assigned(INPUTS)
    for batch in _batches([parts[0], [], []], "ahead-first"):
        alerts += after.process(batch).alerts
    clock.now += after.limits.idle_timeout_seconds + 1
    alerts += after.process([]).alerts
    assert before.ledger.late == after.ledger.late == 0
    assert _checks(after) == _checks(reference)
    records = [a.model_dump(mode="json") for a in alerts]
    for record in records:
        record["evidence"].pop("source")
    assert sorted(records, key=_key) == sorted(reference_alerts, key=_key)
