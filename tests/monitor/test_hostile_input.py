"""Hostile and broken input: a clear reason for each, never a crash, never unbounded memory."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import LimitsSettings
from monitor.events import MAX_SEGMENT_KEYS, Rejection, decode
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import parse_policy
from monitor.replay import LogDeadLetterSink
from tests.monitor.test_events import FIELD_NAMES, JSON_VALUES

POLICY = parse_policy(
    {
        "version": 1,
        "models": [
            {
                "name": "m",
                "owner": "o",
                "baseline": "v1",
                "segments": ["lang"],
                "checks": [
                    {
                        "name": "deny",
                        "metric": "decision_rate",
                        "where": {"decision": "deny"},
                        "tolerance": {"max_increase": 0.01},
                    },
                    {
                        "name": "tools",
                        "metric": "tool_distribution",
                        "tolerance": {"max_distance": 0.1},
                    },
                    {"name": "new-tool", "metric": "novel_tool"},
                ],
            }
        ],
    }
)

#: Field names of the contract with arbitrary JSON values, or values that make a valid
#: event likely (known model, versions, times), so that routing is exercised too.
VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(["inference", "action", "outcome", "other"]),
    st.sampled_from(["m", "v1", "v2", "2026-01-01T00:00:00Z", "deny", "tool_call", "fraud"]),
)
EVENTS = st.dictionaries(FIELD_NAMES, VALUES, max_size=12)


def _pipeline(**limits: int) -> Pipeline:
    return Pipeline(POLICY, dead_letters=LogDeadLetterSink(), limits=LimitsSettings(**limits))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENTS, max_size=40))
def test_arbitrary_event_like_batches_keep_the_ledger_balanced(
    events: list[dict[str, object]],
) -> None:
    """Routing whatever decodes never raises, and every message is accounted for."""
    pipeline = _pipeline()
    batch = [Message(json.dumps(e).encode(), "t", 0, i) for i, e in enumerate(events)]
    result = pipeline.process(batch)
    assert result.consumed == len(batch)
    assert pipeline.ledger.balanced()


class _Dead:
    """Collects rejections."""

    def __init__(self) -> None:
        self.reasons: list[Rejection] = []

    def send(self, message: Message, rejection: Rejection) -> None:
        self.reasons.append(rejection)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_oversize_and_deeply_nested_messages_get_a_reason() -> None:
    dead = _Dead()
    pipeline = Pipeline(POLICY, dead_letters=dead, limits=LimitsSettings(max_message_bytes=4096))
    big = json.dumps({"kind": "inference", "pad": "x" * 5000}).encode()
    nested = b"[" * 2000 + b"]" * 2000  # under the cap, deeper than the parser goes
    pipeline.process([Message(big, "t", 0, 0), Message(nested, "t", 0, 1)])
    assert [r.code for r in dead.reasons] == ["too_large", "invalid_json"]
    assert "4096-byte cap" in dead.reasons[0].reason
    assert pipeline.ledger.balanced()


def test_huge_segment_maps_are_rejected() -> None:
    event = {
        "kind": "inference",
        "id": "i",
        "time": "2026-01-01T00:00:00Z",
        "request_id": "r",
        "model": "m",
        "version": "v2",
        "segments": {f"k{i}": "v" for i in range(MAX_SEGMENT_KEYS + 1)},
    }
    result = decode(json.dumps(event).encode())
    assert isinstance(result, Rejection) and result.code == "invalid_field"
    assert "segments" in result.reason


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_million_distinct_segment_values_and_tools_stay_in_bounded_memory() -> None:
    """1M inferences with a new segment value each, 100k new tools: memory grows < 64 MB.

    Segment values past the cap (20) fold into ``other``, tools past the
    detectors' bins share one; the dedupe and join tables are capped at
    50,000 here so that only the per-value state is measured.
    """
    pipeline = _pipeline(dedupe_window=50_000, join_capacity=50_000)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def batch(first: int, n: int) -> list[Message]:
        out = []
        for i in range(first, first + n):
            t = (start + timedelta(milliseconds=i)).isoformat()
            version = "v1" if i % 2 else "v2"
            inference = {
                "kind": "inference",
                "id": f"i{i}",
                "time": t,
                "request_id": f"r{i}",
                "model": "m",
                "version": version,
                "decision": "allow",
                "segments": {"lang": f"lang-{i}"},
            }
            action = {
                "kind": "action",
                "id": f"a{i}",
                "time": t,
                "request_id": f"r{i}",
                "model": "m",
                "version": version,
                "action": "tool_call",
                "tool": f"tool-{i}",
            }
            out.append(Message(json.dumps(inference).encode(), "t", 0, 2 * i))
            if i % 10 == 0:
                out.append(Message(json.dumps(action).encode(), "t", 0, 2 * i + 1))
        return out

    pipeline.process(batch(0, 100_000))  # warm-up: caps reached, tables full
    before = _rss_bytes()
    for first in range(100_000, 1_000_000, 50_000):
        pipeline.process(batch(first, 50_000))
    growth = _rss_bytes() - before
    assert pipeline.ledger.balanced()
    assert pipeline.ledger.processed == 1_100_000
    monitor = pipeline.models["m"]
    streams = {status.stream for status in monitor.statuses()}
    assert len(streams) <= 1 + 21  # overall + 20 values + other
    folded = pipeline.metrics.registry.get_sample_value(
        "shiftwatch_segment_values_folded_total", {"model": "m"}
    )
    assert folded is not None and folded > 900_000
    assert growth < 64 << 20, f"memory grew by {growth / 2**20:.1f} MB"
