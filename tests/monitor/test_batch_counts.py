"""Counting a batch by groups gives the buckets of counting event by event, and rows merge."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.buckets import Buckets
from monitor.streams import Stream

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_counts_equal_event_by_event_counts_with_late_events_refused(seed: int) -> None:
    """Same buckets, same late answers, batch by batch, with a release between batches."""
    one, grouped = Buckets(3, 2.0), Buckets(3, 2.0)
    events = _events(seed, 3000)
    for start in range(0, len(events), 500):
        batch = grouped.batch()
        for version, streams, at, exposure, cols in events[start : start + 500]:
            assert one.add(version, streams, at, exposure, cols) == batch.add(
                version, streams, at, exposure, cols
            )
        batch.flush()
        watermark = events[start][2] + 1.0  # releases some buckets: later events may be late
        assert list(one.release(watermark)) == list(grouped.release(watermark))
    assert _released(one) == _released(grouped)


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
