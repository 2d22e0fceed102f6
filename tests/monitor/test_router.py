"""Tests of the routing state: dedupe window, segment folding and the bounded join table."""

from __future__ import annotations

import pytest

from monitor.router import OTHER, Deduper, Joined, JoinTable, SegmentFolder

# --- Deduper ---------------------------------------------------------------------------------


def test_deduper_reports_repeats() -> None:
    """The first sighting of an id is new; every later one within the window is a repeat."""
    dedupe = Deduper(capacity=10)
    assert dedupe.seen("a") is False
    assert dedupe.seen("a") is True
    assert dedupe.seen("a") is True
    assert dedupe.seen("b") is False
    assert dedupe.seen("b") is True


@pytest.mark.parametrize("capacity", [1, 2, 5, 100])
def test_deduper_forgets_the_oldest_beyond_capacity(capacity: int) -> None:
    """After ``capacity`` newer ids the oldest is forgotten, while the newest are remembered."""
    dedupe = Deduper(capacity=capacity)
    ids = [f"e{i}" for i in range(capacity + 1)]
    for event_id in ids:
        assert dedupe.seen(event_id) is False
    assert len(dedupe) == capacity
    # The newest `capacity` ids are all repeats; check them before re-adding e0 evicts one.
    for event_id in reversed(ids[1:]):
        assert dedupe.seen(event_id) is True
    assert dedupe.seen(ids[0]) is False


@pytest.mark.parametrize(("capacity", "n"), [(1, 10), (3, 3), (3, 4), (50, 1000)])
def test_deduper_length_is_bounded(capacity: int, n: int) -> None:
    """The window never holds more than ``capacity`` ids however many are seen."""
    dedupe = Deduper(capacity=capacity)
    for i in range(n):
        dedupe.seen(str(i))
        assert len(dedupe) <= capacity
    assert len(dedupe) == min(capacity, n)


def test_deduper_repeat_does_not_grow_or_refresh_the_window() -> None:
    """A repeat neither adds an entry nor makes its id younger."""
    dedupe = Deduper(capacity=2)
    dedupe.seen("a")
    dedupe.seen("b")
    assert dedupe.seen("a") is True
    assert len(dedupe) == 2
    dedupe.seen("c")  # evicts "a", the oldest insertion, despite its recent repeat
    assert dedupe.seen("b") is True
    assert dedupe.seen("a") is False


@pytest.mark.parametrize("capacity", [0, -1])
def test_deduper_rejects_non_positive_capacity(capacity: int) -> None:
    """A capacity below one is a ``ValueError`` naming the argument."""
    with pytest.raises(ValueError, match="capacity"):
        Deduper(capacity=capacity)


def test_deduper_keeps_its_capacity_public() -> None:
    """The constructor argument is a public attribute of the same name."""
    assert Deduper(capacity=7).capacity == 7


# --- SegmentFolder ---------------------------------------------------------------------------


def test_segment_folder_overall_stream_comes_first() -> None:
    """The overall stream ``()`` is first, then one stream per configured key in key order."""
    folder = SegmentFolder(["lang", "tier"])
    streams = folder.streams({"tier": "gold", "lang": "en", "region": "eu"})
    assert streams == ((), ("lang", "en"), ("tier", "gold"))
    assert folder.folded == 0


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ({}, ((),)),
        ({"region": "eu"}, ((),)),
        ({"tier": "gold"}, ((), ("tier", "gold"))),
        ({"lang": "en"}, ((), ("lang", "en"))),
    ],
)
def test_segment_folder_skips_missing_keys(
    segments: dict[str, str], expected: tuple[tuple[str, ...], ...]
) -> None:
    """Keys absent from an inference's segments produce no stream; unconfigured keys are ignored."""
    assert SegmentFolder(["lang", "tier"]).streams(segments) == expected


def test_segment_folder_without_keys_has_only_the_overall_stream() -> None:
    """With no keys configured every inference belongs to the overall stream only."""
    assert SegmentFolder([]).streams({"lang": "en"}) == ((),)


@pytest.mark.parametrize("cap", [1, 2, 5])
def test_segment_folder_folds_values_beyond_cap(cap: int) -> None:
    """The first ``cap`` values of a key keep their name; later new values fold into other."""
    folder = SegmentFolder(["lang"], cap=cap)
    kept = [f"l{i}" for i in range(cap)]
    for value in kept:
        assert folder.streams({"lang": value}) == ((), ("lang", value))
    assert folder.folded == 0
    assert folder.streams({"lang": "new1"}) == ((), ("lang", OTHER))
    assert folder.streams({"lang": "new2"}) == ((), ("lang", OTHER))
    assert folder.folded == 2
    # Values admitted before the cap keep their own stream.
    for value in kept:
        assert folder.streams({"lang": value}) == ((), ("lang", value))
    assert folder.folded == 2


def test_segment_folder_counts_each_folded_occurrence() -> None:
    """``folded`` counts every folded inference, including repeats of the same value."""
    folder = SegmentFolder(["lang"], cap=1)
    folder.streams({"lang": "en"})
    for _ in range(3):
        assert folder.streams({"lang": "ga"}) == ((), ("lang", OTHER))
    assert folder.folded == 3


def test_segment_folder_caps_each_key_separately() -> None:
    """Filling one key's cap does not fold the values of another key."""
    folder = SegmentFolder(["lang", "tier"], cap=1)
    assert folder.streams({"lang": "en", "tier": "gold"}) == ((), ("lang", "en"), ("tier", "gold"))
    assert folder.streams({"lang": "fr", "tier": "gold"}) == (
        (),
        ("lang", OTHER),
        ("tier", "gold"),
    )
    assert folder.folded == 1


def test_segment_folder_literal_other_maps_to_other() -> None:
    """A literal value ``other`` maps to the other bucket and takes no slot of the cap."""
    folder = SegmentFolder(["lang"], cap=1)
    assert folder.streams({"lang": OTHER}) == ((), ("lang", OTHER))
    # "other" did not use up the single slot, so a real value still gets its own stream.
    assert folder.streams({"lang": "en"}) == ((), ("lang", "en"))
    assert folder.streams({"lang": OTHER}) == ((), ("lang", OTHER))


@pytest.mark.parametrize("cap", [1, 3, 20])
def test_segment_folder_stream_count_is_bounded(cap: int) -> None:
    """However many distinct values arrive, a key has at most ``cap`` + 1 distinct streams."""
    folder = SegmentFolder(["lang"], cap=cap)
    seen = {folder.streams({"lang": f"v{i}"})[1] for i in range(cap * 10 + 7)}
    assert len(seen) == cap + 1
    assert ("lang", OTHER) in seen
    assert folder.folded == cap * 9 + 7


@pytest.mark.parametrize("cap", [0, -5])
def test_segment_folder_rejects_non_positive_cap(cap: int) -> None:
    """A cap below one is a ``ValueError`` naming the argument."""
    with pytest.raises(ValueError, match="cap"):
        SegmentFolder(["lang"], cap=cap)


def test_segment_folder_keeps_its_arguments_public() -> None:
    """``keys`` and ``cap`` are public attributes."""
    folder = SegmentFolder(["lang", "tier"], cap=4)
    assert folder.keys == ("lang", "tier")
    assert folder.cap == 4


# --- JoinTable -------------------------------------------------------------------------------


def joined(time: float, version: str = "v2") -> Joined:
    """A join entry made at event time ``time`` (seconds)."""
    streams = ((), ("lang", "en"))
    return Joined(model="m", version=version, streams=streams, negative=True, time=time)


def test_join_table_put_and_get() -> None:
    """An entry put under a request id is returned by ``get``; unknown ids give None."""
    table = JoinTable(capacity=10, ttl=100.0)
    entry = joined(5.0)
    table.put("r1", entry)
    assert table.get("r1") == entry
    assert table.get("r2") is None
    assert len(table) == 1


def test_join_table_put_replaces_an_existing_entry() -> None:
    """Putting the same request id again replaces the entry without growing the table."""
    table = JoinTable(capacity=10, ttl=100.0)
    table.put("r1", joined(1.0, version="v1"))
    table.put("r1", joined(2.0, version="v2"))
    found = table.get("r1")
    assert found is not None
    assert found.version == "v2"
    assert len(table) == 1
    assert table.evicted == 0


@pytest.mark.parametrize("capacity", [1, 2, 10])
def test_join_table_evicts_the_oldest_at_capacity(capacity: int) -> None:
    """Beyond ``capacity`` entries the oldest is evicted and counted in ``evicted``."""
    table = JoinTable(capacity=capacity, ttl=1e9)
    for i in range(capacity + 3):
        table.put(f"r{i}", joined(float(i)))
        assert len(table) <= capacity
    assert len(table) == capacity
    assert table.evicted == 3
    for i in range(3):
        assert table.get(f"r{i}") is None
    for i in range(3, capacity + 3):
        assert table.get(f"r{i}") is not None


def test_join_table_reput_moves_an_entry_to_the_young_end() -> None:
    """Re-putting an entry makes it the newest, so capacity eviction spares it."""
    table = JoinTable(capacity=2, ttl=1e9)
    table.put("a", joined(1.0))
    table.put("b", joined(2.0))
    table.put("a", joined(3.0))
    table.put("c", joined(4.0))
    assert table.get("a") is not None
    assert table.get("b") is None
    assert table.evicted == 1


def test_join_table_entry_older_than_ttl_is_not_returned() -> None:
    """An entry more than ``ttl`` older than the newest put is no longer returned."""
    table = JoinTable(capacity=100, ttl=10.0)
    table.put("old", joined(0.0))
    assert table.get("old") is not None
    table.put("new", joined(10.5))
    assert table.get("old") is None
    assert table.get("new") is not None


def test_join_table_entry_exactly_ttl_old_is_still_returned() -> None:
    """An entry exactly ``ttl`` older than the newest put is still inside the window."""
    table = JoinTable(capacity=100, ttl=10.0)
    table.put("edge", joined(0.0))
    table.put("new", joined(10.0))
    assert table.get("edge") is not None


def test_join_table_expire_drops_entries_older_than_ttl() -> None:
    """``expire`` drops entries older than the TTL and counts them in its result and ``evicted``."""
    table = JoinTable(capacity=100, ttl=10.0)
    for i in range(5):
        table.put(f"old{i}", joined(float(i)))
    table.put("fresh", joined(20.0))
    assert len(table) == 6
    assert table.expire() == 5
    assert len(table) == 1
    assert table.evicted == 5
    assert table.get("fresh") is not None
    assert table.expire() == 0


def test_join_table_expire_drops_nothing_within_ttl() -> None:
    """With every entry inside the TTL window ``expire`` drops nothing."""
    table = JoinTable(capacity=100, ttl=10.0)
    for i in range(5):
        table.put(f"r{i}", joined(float(i)))
    assert table.expire() == 0
    assert len(table) == 5
    assert table.evicted == 0


def test_join_table_ttl_uses_event_time_not_insertion_order() -> None:
    """An entry put late but with an old event time is not returned once the TTL has passed."""
    table = JoinTable(capacity=100, ttl=10.0)
    table.put("new", joined(100.0))
    table.put("late", joined(50.0))
    assert table.get("late") is None
    assert table.get("new") is not None


def test_join_table_expire_drops_old_entries_put_out_of_order() -> None:
    """``expire`` drops an entry older than the TTL even when it was put after a newer one."""
    table = JoinTable(capacity=100, ttl=10.0)
    table.put("new", joined(100.0))
    table.put("late", joined(50.0))
    assert table.expire() == 1
    assert len(table) == 1
    assert table.get("new") is not None


def test_join_table_watermark_does_not_move_back() -> None:
    """An older put does not lower the watermark, so an expired entry stays expired."""
    table = JoinTable(capacity=100, ttl=10.0)
    table.put("a", joined(0.0))
    table.put("b", joined(100.0))
    table.put("c", joined(1.0))
    assert table.get("a") is None


@pytest.mark.parametrize(("capacity", "ttl"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -5.0)])
def test_join_table_rejects_bad_bounds(capacity: int, ttl: float) -> None:
    """A capacity below one or a non-positive TTL is a ``ValueError``."""
    with pytest.raises(ValueError, match="capacity must be >= 1 and ttl > 0"):
        JoinTable(capacity=capacity, ttl=ttl)


def test_join_table_keeps_its_arguments_public() -> None:
    """``capacity`` and ``ttl`` are public attributes."""
    table = JoinTable(capacity=3, ttl=7.5)
    assert table.capacity == 3
    assert table.ttl == 7.5
    assert table.evicted == 0
    assert len(table) == 0
