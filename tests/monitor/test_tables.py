"""The dedupe window and join table: plain-data state that restores to identical behaviour."""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
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


def scored_entries(table: JoinTable) -> list[tuple[str, Joined]]:
    """As :func:`entries`, scores included (nan in the state: None)."""
    s = table.state()
    return [
        (rid, Joined(j.model, j.version, j.streams, j.negative, j.time, None if x != x else x))
        for (rid, j), x in zip(entries(table), s["scores"].tolist(), strict=True)
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


# --- the join table's ring of slots -----------------------------------------------------------


def _scored(rng: random.Random, time: float) -> Joined:
    """An entry with a score on some negative decisions, as the router keeps them."""
    joined = _joined(rng, time)
    score = round(rng.random(), 3) if joined.negative and rng.random() < 0.7 else None
    return Joined(joined.model, joined.version, joined.streams, joined.negative, time, score)


def _drive(
    table: JoinTable, reference: ReferenceJoinTable, rng: random.Random, ops: int, ids: int
) -> None:
    """Random puts (many re-puts, some out of time order), gets and expiries on both tables,
    checking that every answer agrees."""
    now = 0.0
    for _ in range(ops):
        rid = f"r{rng.randrange(ids)}"
        kind = rng.random()
        if kind < 0.6:
            now += rng.random()
            late = rng.random() < 0.2
            joined = _scored(rng, now - rng.random() * 2 * table.ttl if late else now)
            table.put(rid, joined)
            reference.put(rid, joined)
        elif kind < 0.9:
            assert table.get(rid) == reference.get(rid)
        else:
            assert table.expire() == reference.expire()
        assert len(table) == len(reference.table)
        assert table.evicted == reference.evicted


def _count_packs(monkeypatch: Any) -> list[int]:
    """Counts the calls of ``JoinTable._pack`` (entries moved to the front of the ring)."""
    calls = [0]
    pack = JoinTable._pack

    def counted(table: JoinTable) -> None:
        calls[0] += 1
        pack(table)

    monkeypatch.setattr(JoinTable, "_pack", counted)
    return calls


def test_join_table_ring_wraps_with_reputs_as_the_reference(monkeypatch: Any) -> None:
    """Through many wraps of its ring, with re-puts freeing slots inside it (so that entries
    are packed to the front), the table answers as the 0.1.0 implementation."""
    packs = _count_packs(monkeypatch)
    for seed in range(20):
        rng = random.Random(seed)
        capacity = rng.choice([1, 3, 8, 40])
        table, reference = JoinTable(capacity, 1e9), ReferenceJoinTable(capacity, 1e9)
        _drive(table, reference, rng, ops=2_000, ids=2 * capacity)
        assert len(table._rids) == table._ring_size  # the ring is at its size: it wrapped
        assert scored_entries(table) == list(reference.table.items())
    assert packs[0] > 0


def test_join_table_expires_after_the_ring_wraps(monkeypatch: Any) -> None:
    """Expiry (head pops and the out-of-order sweep) drops what the 0.1.0 implementation
    drops once the ring has wrapped and holds free slots."""
    packs = _count_packs(monkeypatch)
    for seed in range(20):
        rng = random.Random(100 + seed)
        capacity = rng.choice([2, 10, 50])
        table, reference = JoinTable(capacity, 20.0), ReferenceJoinTable(capacity, 20.0)
        _drive(table, reference, rng, ops=3_000, ids=3 * capacity)
        assert table.expire() == reference.expire()
        assert scored_entries(table) == list(reference.table.items())
    assert packs[0] > 0


def test_join_table_state_round_trip_after_the_ring_wraps() -> None:
    """State taken when the ring has wrapped (its oldest entry mid-columns, free slots in
    between) restores a table that keeps answering as the original and the reference."""
    for seed in range(20):
        rng = random.Random(200 + seed)
        capacity = rng.choice([1, 5, 30])
        ttl = rng.choice([10.0, 1e9])
        table, reference = JoinTable(capacity, ttl), ReferenceJoinTable(capacity, ttl)
        _drive(table, reference, rng, ops=1_500, ids=2 * capacity)
        state = table.state()
        copy = JoinTable.from_state(through_envelope(state))
        assert scored_entries(copy) == scored_entries(table) == list(reference.table.items())
        assert copy.state()["scores"].tolist() == pytest.approx(
            state["scores"].tolist(), nan_ok=True
        )
        for rid in reference.table:
            assert copy.get(rid) == table.get(rid) == reference.get(rid)
        _drive(copy, reference, random.Random(seed), ops=1_500, ids=2 * capacity)
        assert scored_entries(copy) == list(reference.table.items())


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**16), capacity=st.integers(1, 12))
def test_join_table_put_parts_is_put(seed: int, capacity: int) -> None:
    """``put_parts`` of an entry's fields leaves the table as ``put`` of the entry does."""
    rng = random.Random(seed)
    by_entry, by_parts = JoinTable(capacity, 15.0), JoinTable(capacity, 15.0)
    for i in range(200):
        joined = _scored(rng, float(i) - rng.choice([0.0, 0.0, 20.0]))
        rid = f"r{rng.randrange(2 * capacity)}"
        by_entry.put(rid, joined)
        by_parts.put_parts(
            rid,
            joined.model,
            joined.version,
            joined.streams,
            joined.negative,
            joined.time,
            joined.score,
        )
        if i % 17 == 0:
            assert by_entry.expire() == by_parts.expire()
        assert by_entry.get(rid) == by_parts.get(rid)
    a, b = by_entry.state(), by_parts.state()
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key], equal_nan=a[key].dtype == np.float64), key
        else:
            assert a[key] == b[key], key


def test_join_table_get_returns_the_score_put() -> None:
    """``get`` gives back the entry put, score included (None when there was none)."""
    table = JoinTable(4, 100.0)
    scored = Joined("m", "v1", ((), ("lang", "en")), True, 1.0, 0.25)
    unscored = Joined("m", "v1", ((),), False, 2.0)
    table.put("a", scored)
    table.put("b", unscored)
    assert table.get("a") == scored
    assert table.get("b") == unscored
    found = table.get("b")
    assert found is not None and found.score is None and found.negative is False


def test_join_table_refuses_a_nan_time() -> None:
    """An entry without an event time (nan) is a ValueError naming the request, not a
    row that never expires."""
    table = JoinTable(4, 100.0)
    with pytest.raises(ValueError, match="'r1' has a NaN event time"):
        table.put("r1", Joined("m", "v1", ((),), False, math.nan))
    assert len(table) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"request_ids": ["a", "a"]}, "a request id held twice"),
        ({"times": np.array([1.0, math.nan])}, "without an event time"),
        ({"group": np.array([0, 7], dtype=np.uint32)}, "group code outside"),
        ({"scores": np.array([math.nan])}, "columns of different lengths"),
    ],
)
def test_join_table_refuses_a_broken_state(change: dict[str, Any], message: str) -> None:
    """A state with a repeated request id, a nan time, a bad group code or columns of
    different lengths is a ValueError saying which."""
    table = JoinTable(4, 100.0)
    table.put("a", Joined("m", "v1", ((),), False, 1.0))
    table.put("b", Joined("m", "v1", ((),), True, 2.0, 0.5))
    with pytest.raises(ValueError, match=message):
        JoinTable.from_state(table.state() | change)
