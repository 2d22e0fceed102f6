"""The dedupe window and join table: plain-data state that restores to identical behaviour."""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.envelope import Checkpoint, open_sealed, seal
from monitor.tables import Deduper, Joined, JoinTable, Stream, id_hash

KEY = b"test key"


def through_envelope(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` sealed and opened again, as a checkpoint carries it."""
    return open_sealed(seal(Checkpoint(policy="p", state={"t": state}), KEY), KEY).state["t"]


def entries(table: JoinTable) -> list[tuple[str, Joined]]:
    """The table's entries in order, decoded from its state's columns."""
    s = table.state()
    groups = [(m, v, tuple(tuple(x) for x in streams)) for m, v, streams in s["groups"]]
    return [
        (rid, Joined(*groups[int(c)], bool(n), float(t)))
        for rid, c, n, t in zip(
            s["request_ids"], s["group"], s["negative"], s["times"], strict=True
        )
    ]


class ReferenceJoinTable:
    """The join table as shiftwatch 0.1.0 had it (an OrderedDict of Joined), for comparison."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self.capacity, self.ttl = capacity, ttl
        self.table: OrderedDict[str, Joined] = OrderedDict()
        self.watermark = float("-inf")
        self.out_of_order = 0
        self.swept_at = float("-inf")
        self.evicted = 0

    def put(self, rid: str, joined: Joined) -> None:
        self.table[rid] = joined
        self.table.move_to_end(rid)
        if joined.time > self.watermark:
            self.watermark = joined.time
        else:
            self.out_of_order += 1
        if len(self.table) > self.capacity:
            self.table.popitem(last=False)
            self.evicted += 1

    def get(self, rid: str) -> Joined | None:
        joined = self.table.get(rid)
        if joined is not None and joined.time < self.watermark - self.ttl:
            return None
        return joined

    def expire(self) -> int:
        cutoff = self.watermark - self.ttl
        dropped = 0
        while self.table and next(iter(self.table.values())).time < cutoff:
            self.table.popitem(last=False)
            dropped += 1
        if self.out_of_order and self.watermark - self.swept_at >= self.ttl / 16:
            stale = [rid for rid, j in self.table.items() if j.time < cutoff]
            for rid in stale:
                del self.table[rid]
            dropped += len(stale)
            self.out_of_order = 0
            self.swept_at = self.watermark
        self.evicted += dropped
        return dropped


# --- the dedupe window ------------------------------------------------------------------------

dedupe_ops = st.lists(st.integers(0, 40), min_size=0, max_size=120)


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 12),
    before=dedupe_ops,
    after=dedupe_ops,
    envelope=st.booleans(),
)
def test_deduper_restored_from_state_answers_as_the_original(
    capacity: int, before: list[int], after: list[int], envelope: bool
) -> None:
    """A window rebuilt from state() mid-stream gives every later seen() the original's answer."""
    original = Deduper(capacity)
    for i in before:
        original.seen(f"e{i}")
    state = original.state()
    copy = Deduper.from_state(through_envelope(state) if envelope else state)
    assert len(copy) == len(original)
    for i in after:
        assert copy.seen(f"e{i}") == original.seen(f"e{i}")
        assert len(copy) == len(original)
    assert np.array_equal(copy.state()["ids"], original.state()["ids"])


def test_deduper_state_is_one_uint64_array_oldest_first() -> None:
    """The state holds the ids' 64-bit hashes in insertion order, also after the ring wraps."""
    dedupe = Deduper(3)
    for event_id in ["a", "b", "a", "c", "d", "e"]:
        dedupe.seen(event_id)
    ids = dedupe.state()["ids"]
    assert ids.dtype == np.uint64
    assert ids.tolist() == [id_hash("c"), id_hash("d"), id_hash("e")]


def test_deduper_takes_any_string_as_an_id() -> None:
    """Ids JSON allows but UTF-8 cannot encode plainly (lone surrogates) are hashed, not refused."""
    dedupe = Deduper(10)
    assert dedupe.seen("\ud800x") is False
    assert dedupe.seen("\ud800x") is True
    assert dedupe.seen("\udc00x") is False


def test_deduper_refuses_state_of_another_hash() -> None:
    """A state whose ids were hashed otherwise is refused rather than silently mixed."""
    state = Deduper(5).state() | {"hash": "sha1"}
    try:
        Deduper.from_state(state)
    except ValueError as err:
        assert "sha1" in str(err)
    else:
        raise AssertionError("from_state accepted another hash")


# --- the join table ---------------------------------------------------------------------------

STREAMS: list[tuple[Stream, ...]] = [
    ((),),
    ((), ("lang", "en")),
    ((), ("lang", "fr"), ("tier", "gold")),
]


def _joined(rng: random.Random, time: float) -> Joined:
    return Joined(
        rng.choice(["m1", "m2"]),
        rng.choice(["v1", "v2"]),
        rng.choice(STREAMS),
        rng.random() < 0.3,
        time,
    )


join_op = st.tuples(
    st.sampled_from(["put", "put", "get", "expire"]),
    st.integers(0, 30),  # request id
    st.integers(0, 100),  # event time
    st.integers(0, 2**16),  # seed of the entry's other fields
)


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 15),
    ttl=st.sampled_from([5.0, 20.0, 1000.0]),
    before=st.lists(join_op, max_size=80),
    after=st.lists(join_op, max_size=80),
    envelope=st.booleans(),
)
def test_join_table_restored_from_state_answers_as_the_original(
    capacity: int,
    ttl: float,
    before: list[tuple[str, int, int, int]],
    after: list[tuple[str, int, int, int]],
    envelope: bool,
) -> None:
    """A table rebuilt from state() mid-stream answers every later put/get/expire as the
    original does, and both answer as the 0.1.0 implementation."""
    original, reference = JoinTable(capacity, ttl), ReferenceJoinTable(capacity, ttl)

    def apply(tables: list[Any], op: tuple[str, int, int, int]) -> None:
        kind, rid, time, seed = op
        if kind == "put":
            joined = _joined(random.Random(seed), float(time))
            for t in tables:
                t.put(f"r{rid}", joined)
        elif kind == "get":
            answers = [t.get(f"r{rid}") for t in tables]
            assert all(a == answers[0] for a in answers), answers
        else:
            counts = [t.expire() for t in tables]
            assert len(set(counts)) == 1, counts

    for op in before:
        apply([original, reference], op)
    state = original.state()
    copy = JoinTable.from_state(through_envelope(state) if envelope else state)
    assert entries(copy) == entries(original) == list(reference.table.items())
    for op in after:
        apply([original, copy, reference], op)
        assert len(original) == len(copy) == len(reference.table)
        assert original.evicted == copy.evicted == reference.evicted
    assert entries(copy) == entries(original) == list(reference.table.items())


def test_join_table_state_is_columns() -> None:
    """Request ids, float64 times, bool flags and uint32 codes into the distinct groups."""
    table = JoinTable(10, 100.0)
    table.put("a", Joined("m", "v1", ((), ("lang", "en")), True, 1.5))
    table.put("b", Joined("m", "v2", ((),), False, 2.5))
    table.put("c", Joined("m", "v1", ((), ("lang", "en")), False, 3.5))
    state = table.state()
    assert state["request_ids"] == ["a", "b", "c"]
    assert state["times"].dtype == np.float64 and state["times"].tolist() == [1.5, 2.5, 3.5]
    assert state["negative"].dtype == np.bool_ and state["negative"].tolist() == [
        True,
        False,
        False,
    ]
    assert state["group"].dtype == np.uint32 and state["group"].tolist() == [0, 1, 0]
    assert state["groups"] == [["m", "v1", [[], ["lang", "en"]]], ["m", "v2", [[]]]]


def test_join_table_keeps_few_groups_when_many_pass_through() -> None:
    """With many distinct (model, version, streams) over time, groups no entry uses are freed,
    and the table still answers as the 0.1.0 implementation."""
    rng = random.Random(3)
    table, reference = JoinTable(50, 1e9), ReferenceJoinTable(50, 1e9)
    for i in range(20_000):
        joined = Joined("m", "v", ((), ("user", f"u{i % 9000}")), rng.random() < 0.5, float(i))
        rid = f"r{rng.randrange(400)}"
        table.put(rid, joined)
        reference.put(rid, joined)
    assert len(table.state()["groups"]) <= 50
    assert len(table._codes) <= 8192  # 9000 distinct groups went through
    assert entries(table) == list(reference.table.items())
    for rid in [f"r{i}" for i in range(400)]:
        assert table.get(rid) == reference.get(rid)
