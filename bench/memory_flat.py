"""Resident memory over a long run: 10M events through the pipeline, in process.

What it measures
----------------
The demo simulator (``monitor.demo.simulator``, the default degraded
:class:`Scenario`, at ``--rate`` requests per second of event time, so that a
10M-event run spans weeks of event time: the join table's TTL and the dedupe
window's capacity are both reached; the run is placed to end a day before this
host's clock, since later events would be dead-lettered as stamped in the
future) generates events 2,000 requests at a time;
each chunk is JSON-encoded into :class:`~monitor.messages.Message` objects and
handed to a :class:`~monitor.pipeline.Pipeline` with the demo policy (3 segment
keys), default :class:`~monitor.config.LimitsSettings`, its metrics and a
dead-letter sink that drops. No Kafka: this measures the pipeline's memory,
not a client's buffers.

Every ``--every`` events the script samples the process's resident set size
(``/proc/self/statm``), the interpreter's allocated blocks
(``sys.getallocatedblocks()``: live objects, which RSS follows only as far as
the allocator returns freed arenas) with the pipeline's table sizes and its number of
streams (check statuses, one per check, version and segment value). The
expected plateau is

    baseline RSS + dedupe_window x (bytes per dedupe id)
                 + join_capacity x (bytes per join entry)
                 + streams x 1 KB

where the bytes per entry are measured here with ``tracemalloc`` on
stand-alone tables of ``--probe`` entries (the same classes, the same kind of
keys, entries built as the router builds them), and the capacities come from
``LimitsSettings``. "Flat" means: once
both tables are full, RSS moves by no more than ``--tolerance`` (default 5 %)
over the rest of the run.

Reproduce
---------
From the repository root, with the package installed::

    python bench/memory_flat.py                       # 10M events, a sample every 500k
    python bench/memory_flat.py --events 2000000 --every 250000 --json memory.json
    python bench/memory_flat.py --events 3000000 --dedupe-window 1000 --join-capacity 1000 \
        --json small.json
    python bench/memory_flat.py --baseline-json small.json --json memory.json
    python bench/memory_flat.py --events 3000000 --trim --baseline-json small.json \
        --json trimmed.json

The first of the last two, with tables too small to matter, gives the plateau
of everything else (the per-stream state, the interpreter and its libraries);
the second takes it as the fixed part of its bound. ``--trim`` also reads RSS
after ``malloc_trim(0)`` at each sample: without the free heap glibc keeps.

Results go to ``BENCHMARKS.md`` ("Memory over 10M events").
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.config import LimitsSettings
from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.events import Rejection
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from monitor.tables import Deduper, Joined, JoinTable, Stream

REPO = Path(__file__).resolve().parent.parent
DEMO_POLICY = REPO / "monitor" / "demo" / "policy.yaml"
PAGE = os.sysconf("SC_PAGE_SIZE")
CHUNK_REQUESTS = 2_000
STREAM_BUDGET = 1024  # bytes per stream, the design's bound


class _Drop:
    """A dead-letter sink that counts and forgets."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, message: Message, rejection: Rejection) -> None:
        self.count += 1

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def rss_bytes() -> int:
    """Resident set size of this process, from ``/proc/self/statm`` (pages x page size)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * PAGE


def per_entry_bytes(n: int) -> dict[str, float]:
    """Bytes per entry of a filled :class:`Deduper` and :class:`JoinTable`, by ``tracemalloc``.

    Keys look like the simulator's (``i-123456`` ids, ``r-123456`` request ids).
    ``join`` holds entries as the router builds them today: each inference's
    model, version and segment values are strings of its own (decoded from its
    JSON) and its streams a tuple of its own; ``join_shared`` the same entries
    sharing one (model, version, streams) per group, what interning them would
    cost; ``join_steady`` the ``join`` table filled, then as many puts again,
    each evicting the oldest (a long run's state: the dict's deleted entries
    and resizes included), per entry held.
    """
    out: dict[str, float] = {}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    dedupe = Deduper(n)
    for i in range(n):
        dedupe.seen(f"i-{10_000_000 + i}")
    out["dedupe"] = (tracemalloc.get_traced_memory()[0] - before) / n
    del dedupe
    for name, shared in (("join", False), ("join_shared", True), ("join_steady", False)):
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        joins = JoinTable(n, 14 * 86400.0)
        interned = ("fraud-scorer", "v7-int8", _streams("en", "low", "gold"))
        for i in range(2 * n if name == "join_steady" else n):
            score = (i % 1000) / 1000.0  # a float object per entry, as decoded scores are
            if shared:
                model, version, streams = interned
            else:  # fresh strings and tuples, as json.loads and the segment folder make them
                model, version = "".join(["fraud-", "scorer"]), "".join(["v7-", "int8"])
                streams = _streams("".join(["e", "n"]), "".join(["lo", "w"]), "".join(["go", "ld"]))
            joins.put(f"r-{10_000_000 + i}", Joined(model, version, streams, i % 2 == 0, i, score))
        out[name] = (tracemalloc.get_traced_memory()[0] - before) / n
        del joins
    tracemalloc.stop()
    gc.collect()
    return out


def _streams(lang: str, band: str, tier: str) -> tuple[Stream, ...]:
    return ((), ("lang", lang), ("amount_band", band), ("customer_tier", tier))


@dataclass(frozen=True)
class Sample:
    """One point of the curve."""

    events: int
    rss_mb: float
    blocks: int
    dedupe: int
    joins: int
    streams: int
    pending: int
    dead_lettered: int
    seconds: float
    #: RSS once glibc has returned its free pages (``malloc_trim(0)``; ``--trim`` only).
    rss_trimmed_mb: float | None = None


def run(
    events: int,
    every: int,
    rate: float,
    batch: int,
    limits: LimitsSettings,
    trim: bool = False,
) -> list[Sample]:
    """Push ``events`` simulated events through a pipeline, sampling RSS every ``every``.

    ``trim``: at each sample, after reading RSS, ask glibc to return the free pages it
    holds (``malloc_trim(0)``) and read RSS again: what is left is what the pipeline's
    live objects and Python's own allocator hold, without the heap glibc kept after
    freeing (e.g. a dict's or set's table replaced on a resize).
    """
    libc = ctypes.CDLL("libc.so.6") if trim else None
    pipeline = Pipeline(
        load_policy(DEMO_POLICY),
        dead_letters=_Drop(),
        metrics=Metrics(),
        limits=limits,
        clock="event",
        quiet=True,
    )
    pipeline.assigned(["bench:0"])
    # The run ends before this host's clock: later events would be dead-lettered as
    # stamped in the future (limits.max_future_seconds) instead of processed.
    start = datetime.now(UTC) - timedelta(seconds=events / rate + 86400)
    scenario = replace(Scenario(seed=14), requests_per_second=rate, start=start)
    sim = TrafficSimulator(scenario)
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    samples: list[Sample] = []
    done, offset, next_sample = 0, 0, 0
    started = time.perf_counter()
    pending: list[Message] = []

    def sample() -> None:
        gc.collect()
        statuses = sum(len(m.statuses()) for m in pipeline.models.values())
        samples.append(
            Sample(
                events=done,
                rss_mb=rss_bytes() / 1e6,
                blocks=sys.getallocatedblocks(),
                dedupe=len(pipeline.router.dedupe),
                joins=len(pipeline.router.joins),
                streams=statuses,
                pending=sim.pending,
                dead_lettered=pipeline.ledger.dead_lettered,
                seconds=time.perf_counter() - started,
            )
        )
        s = samples[-1]
        if libc is not None:
            libc.malloc_trim(0)
            samples[-1] = s = replace(s, rss_trimmed_mb=rss_bytes() / 1e6)
        print(
            f"{s.events:>11,} events  rss {s.rss_mb:8.1f} MB  blocks {s.blocks:>11,}  "
            f"dedupe {s.dedupe:>9,}  "
            f"joins {s.joins:>8,}  streams {s.streams:>5}  dead {s.dead_lettered:>6,}  "
            f"{s.seconds:7.0f} s"
            + (f"  trimmed {s.rss_trimmed_mb:8.1f} MB" if s.rss_trimmed_mb is not None else ""),
            file=sys.stderr,
            flush=True,
        )

    sample()  # the pipeline built, nothing processed: the baseline of the curve
    next_sample = every
    while done < events:
        for event in sim.next_batch(CHUNK_REQUESTS):
            pending.append(Message(dumps(event).encode(), "bench", 0, offset))
            offset += 1
        while len(pending) >= batch or (pending and done + len(pending) >= events):
            chunk, pending = pending[:batch], pending[batch:]
            chunk = chunk[: events - done]
            pipeline.process(chunk)
            done += len(chunk)
            if done >= next_sample:
                sample()
                next_sample += every
            if done >= events:
                break
    if samples[-1].events != done:
        sample()
    pipeline.close()
    return samples


def verdict(
    samples: Sequence[Sample],
    entry: dict[str, float],
    tolerance: float,
    limits: LimitsSettings,
    rest_mb: float | None = None,
) -> dict[str, Any]:
    """Whether RSS stayed within ``tolerance`` once both tables were full, and the bound.

    ``rest_mb``: the plateau of everything but the tables, from a run with tables
    too small to matter (``--baseline-json``); without it, estimated from the first
    sample less what its tables then held.
    """
    full = [s for s in samples if s.dedupe >= limits.dedupe_window and s.joins > 0]
    # The join table may plateau below its capacity when its TTL binds first.
    plateau = full[1:] if len(full) > 1 else full
    # Fixed cost: the first sample after warm-up (imports, detectors, calibration caches)
    # less what its tables then held.
    warm = next(s for s in samples if s.events > 0)
    base = warm.rss_mb - (warm.dedupe * entry["dedupe"] + warm.joins * entry["join"]) / 1e6
    if rest_mb is not None:
        base = rest_mb
    tables_mb = (
        limits.dedupe_window * entry["dedupe"] + limits.join_capacity * entry["join"]
    ) / 1e6
    # The same with the join table's steady-state bytes per entry (evicting at capacity).
    tables_steady_mb = (
        limits.dedupe_window * entry["dedupe"] + limits.join_capacity * entry["join_steady"]
    ) / 1e6
    streams = max(s.streams for s in samples)
    bound_mb = base + tables_mb + streams * STREAM_BUDGET / 1e6
    lo = min(s.rss_mb for s in plateau) if plateau else float("nan")
    hi = max(s.rss_mb for s in plateau) if plateau else float("nan")
    trimmed = [s.rss_trimmed_mb for s in plateau if s.rss_trimmed_mb is not None]
    return {
        "first_full_at": full[0].events if full else None,
        "plateau_min_mb": lo,
        "plateau_max_mb": hi,
        "plateau_growth": (hi - lo) / lo if plateau else None,
        # Every event processed: a dead-lettered one would not exercise the tables.
        "dead_lettered": samples[-1].dead_lettered,
        "flat": bool(plateau) and (hi - lo) / lo <= tolerance and not samples[-1].dead_lettered,
        "bound_mb": bound_mb,
        "tables_bound_mb": tables_mb,
        "bound_steady_mb": base + tables_steady_mb + streams * STREAM_BUDGET / 1e6,
        "within_bound": bool(plateau) and hi <= bound_mb,
        "plateau_trimmed_max_mb": max(trimmed) if trimmed else None,
        "streams": streams,
        "fixed_mb": base,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--every", type=int, default=500_000)
    parser.add_argument("--rate", type=float, default=1.0, help="requests per event-time second")
    parser.add_argument("--batch", type=int, default=5_000, help="messages per pipeline batch")
    parser.add_argument("--probe", type=int, default=200_000, help="entries per table probe")
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument(
        "--dedupe-window", type=int, default=None, help="limits.dedupe_window (default its own)"
    )
    parser.add_argument(
        "--join-capacity", type=int, default=None, help="limits.join_capacity (default its own)"
    )
    parser.add_argument(
        "--baseline-json",
        type=Path,
        default=None,
        help="the --json of a run with tiny tables: its plateau is everything but the tables",
    )
    parser.add_argument(
        "--trim", action="store_true", help="also RSS after malloc_trim(0) at each sample"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    chosen = {"dedupe_window": args.dedupe_window, "join_capacity": args.join_capacity}
    limits = LimitsSettings(**{k: v for k, v in chosen.items() if v is not None})
    samples = run(args.events, args.every, args.rate, args.batch, limits, args.trim)
    # After the run: memory the probe frees stays with the allocator and would lift the curve.
    entry = per_entry_bytes(args.probe)
    print(
        f"bytes per entry: dedupe {entry['dedupe']:.0f}, join {entry['join']:.0f} "
        f"(shared groups: {entry['join_shared']:.0f}; steady, at capacity and evicting: "
        f"{entry['join_steady']:.0f})",
        file=sys.stderr,
    )
    rest = None
    if args.baseline_json is not None:
        rest = float(json.loads(args.baseline_json.read_text())["plateau_max_mb"])
    result = verdict(samples, entry, args.tolerance, limits, rest)
    report = {
        "command": " ".join(["python", "bench/memory_flat.py", *sys.argv[1:]]),
        "python": sys.version.split()[0],
        "limits": limits.model_dump(),
        "bytes_per_entry": entry,
        "samples": [asdict(s) for s in samples],
        **result,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if result["flat"] and result["within_bound"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
