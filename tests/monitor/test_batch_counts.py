"""Counting a batch in columns gives the buckets of counting event by event, and rows merge."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.buckets import Buckets, TallyBuckets
from monitor.streams import Stream
from monitor.work import GroupTable

STREAMS: list[tuple[Stream, ...]] = [((),), ((), ("lang", "en")), ((), ("lang", "ga"))]


def _events(
    seed: int, n: int
) -> list[tuple[str, tuple[Stream, ...], float, float, tuple[int, ...]]]:
    """Seeded events: version, streams, time, exposure and the columns they count in."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cols = tuple(sorted({int(c) for c in rng.integers(0, 3, size=int(rng.integers(0, 3)))}))
        out.append(
            (
                str(rng.choice(["v1", "v2"])),
                STREAMS[int(rng.integers(0, len(STREAMS)))],
                float(rng.uniform(0.0, 20.0)),
                float(rng.choice([0.0, 1.0])),
                cols,
            )
        )
    return out


def _released(buckets: Buckets) -> list[tuple[int, dict[tuple[str, Stream], list[float]]]]:
    return list(buckets.release(1e9))


def _columns(
    table: GroupTable,
    events: list[tuple[str, tuple[Stream, ...], float, float, tuple[int, ...]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The events as the router hands them over: times, group codes, exposures and hits."""
    at = np.array([e[2] for e in events])
    group = np.array([table.code(e[0], e[1]) for e in events], dtype=np.int64)
    exposure = np.array([e[3] for e in events])
    event = np.array([i for i, e in enumerate(events) for _ in e[4]], dtype=np.int64)
    column = np.array([c for e in events for c in e[4]], dtype=np.int64)
    return at, group, exposure, (event, column)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_column_counts_equal_event_by_event_counts_with_late_events_refused(seed: int) -> None:
    """Same buckets, same late answers, batch by batch, with a release between batches."""
    one, grouped = Buckets(3, 2.0), Buckets(3, 2.0)
    table = GroupTable("v1")
    events = _events(seed, 3000)
    late_seen = 0
    for start in range(0, len(events), 500):
        batch = events[start : start + 500]
        expected = [not one.add(*event) for event in batch]
        late = grouped.add_columns(table, *_columns(table, batch))
        assert late.tolist() == expected
        late_seen += int(late.sum())
        watermark = events[start][2] + 1.0  # releases some buckets: later events may be late
        assert list(one.release(watermark)) == list(grouped.release(watermark))
    assert late_seen > 0  # the premise: some events arrived after their bucket was released
    assert _released(one) == _released(grouped)


def test_tool_tallies_in_columns_keep_the_names_event_by_event_keeps() -> None:
    """Calls summed per (bucket, group, name) first keep the same first ``max_names`` names."""
    rng = np.random.default_rng(3)
    table = GroupTable("v1")
    one, grouped = TallyBuckets(0.0, max_names=4), TallyBuckets(0.0, max_names=4)
    calls = [
        (
            str(rng.choice(["v1", "v2"])),
            STREAMS[int(rng.integers(0, 3))],
            float(rng.uniform(0, 5)),
            f"tool-{int(rng.integers(0, 9))}",
        )
        for _ in range(2000)
    ]
    expected = [not one.add(v, s, t, name) for v, s, t, name in calls]
    late = grouped.add_columns(
        table,
        np.array([c[2] for c in calls]),
        np.array([table.code(c[0], c[1]) for c in calls], dtype=np.int64),
        [c[3] for c in calls],
    )
    assert late.tolist() == expected
    released = list(grouped.release(1e9))
    assert released == list(one.release(1e9))
    assert any(TallyBuckets.FOLDED in calls for _, rows in released for calls in rows.values())


def test_rows_from_two_partitions_merge_into_the_counts_of_one() -> None:
    """Rows pre-aggregated per partition, added in either order, equal counting in one place."""
    events = _events(7, 2000)
    whole = Buckets(3, 0.0)
    for version, streams, at, exposure, cols in events:
        whole.add(version, streams, at, exposure, cols)
    expected = _released(whole)
    assert expected
    parts = [Buckets(3, 0.0), Buckets(3, 0.0)]
    for i, (version, streams, at, exposure, cols) in enumerate(events):
        parts[i % 2].add(version, streams, at, exposure, cols)
    for order in ([0, 1], [1, 0]):
        merged = Buckets(3, 0.0)
        for k in order:
            part = Buckets(3, 0.0)
            part.restore(parts[k].state())
            for index, rows in _released(part):
                for (version, stream), row in rows.items():
                    assert merged.add_row(index, version, (stream,), row)
        assert _released(merged) == expected


def test_a_row_of_the_wrong_width_is_refused() -> None:
    """A row must have the exposure and one value per column."""
    with pytest.raises(ValueError, match="3 values for 1 columns"):
        Buckets(1, 0.0).add_row(0, "v1", ((),), [1.0, 2.0, 3.0])
