"""Finite streams: every event of the first ``n`` requests, as an iterator or a JSONL file.

:func:`generate` and :func:`write_jsonl` run a
:class:`~monitor.demo.stream.TrafficSimulator` for a fixed number of requests
and end with :meth:`~monitor.demo.stream.TrafficSimulator.drain_outcomes`, so
the stream is complete (every late action and outcome included) and still in
event-time order. The same scenario gives the same events, and a
byte-identical file, whatever the batch size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from monitor.demo.scenario import Scenario
from monitor.demo.stream import TrafficSimulator
from monitor.demo.traffic import EventDict

__all__ = ["generate", "write_jsonl"]


def generate(scenario: Scenario, n_requests: int, batch: int = 10_000) -> Iterator[EventDict]:
    """Yield the whole finite stream of ``n_requests`` requests, pending events drained last.

    Parameters
    ----------
    scenario
        The traffic to simulate.
    n_requests
        Number of requests.
    batch
        Requests per internal :meth:`TrafficSimulator.next_batch` call; the
        output does not depend on it.

    Yields
    ------
    dict
        Events in event-time order.

    Raises
    ------
    ValueError
        If ``n_requests`` is negative or ``batch`` is not positive.

    Examples
    --------
    >>> events = list(generate(Scenario(seed=2), 100))
    >>> sum(e["kind"] == "inference" for e in events)
    100
    >>> events == list(generate(Scenario(seed=2), 100, batch=7))
    True
    """
    if n_requests < 0:
        raise ValueError(f"n_requests must be non-negative, got {n_requests}")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    sim = TrafficSimulator(scenario)
    left = n_requests
    while left > 0:
        size = min(batch, left)
        yield from sim.next_batch(size)
        left -= size
    yield from sim.drain_outcomes()


def write_jsonl(path: Path | str, scenario: Scenario, n_requests: int) -> int:
    """Write the finite stream as compact JSON, one event per line.

    Parameters
    ----------
    path
        Output file (overwritten).
    scenario
        The traffic to simulate.
    n_requests
        Number of requests.

    Returns
    -------
    int
        Number of events written. The same scenario gives a byte-identical
        file.
    """
    if n_requests < 0:
        raise ValueError(f"n_requests must be non-negative, got {n_requests}")
    encode = json.JSONEncoder(separators=(",", ":")).encode
    sim = TrafficSimulator(scenario)
    written = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as out:
        left = n_requests
        while True:
            size = min(10_000, left)
            events = sim.next_batch(size) if size else sim.drain_outcomes()
            if events:
                out.write("\n".join(map(encode, events)))
                out.write("\n")
                written += len(events)
            if not size:
                return written
            left -= size
