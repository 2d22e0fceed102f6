"""The join table's memory per entry and its put/get speed: another tree against this one.

Each measurement runs in a subprocess whose ``PYTHONPATH`` is one tree
(``--before-tree``, e.g. an export of an older commit, or this repository),
the two alternating over ``--rounds`` rounds. A subprocess:

* **bytes per entry** (``tracemalloc``, the first round only: it is
  deterministic) of a stand-alone :class:`~monitor.tables.JoinTable` of
  ``--entries`` entries, keys like the simulator's (``r-10000000``...), entries
  built as the router builds them: ``fresh``, each inference's model, version
  and segment values strings of its own and its streams a tuple of its own (as
  ``json.loads`` and the segment folder make them; the figure
  ``bench/memory_flat.py`` calls ``join``); ``shared``, one (model, version,
  streams) for all; ``steady``, the ``fresh`` table filled to capacity, then as
  many puts again, each evicting the oldest (the state a long run is in: the
  dict's deleted entries and its resizes included), per entry held;
* **put** (``put(rid, joined)`` of prebuilt :class:`~monitor.tables.Joined`
  entries into an empty table of that capacity), **router put** (what the
  router pays per inference: before, building the ``Joined`` then ``put``;
  after, ``put_parts`` if the tree has it; **router put, full**: as many
  again into the then full table, each evicting the oldest) and **get**
  (every entry once, in put order); seconds per ``--entries`` calls. Median
  over the rounds.

    python bench/join_table.py --before-tree /tmp/sw-before [--rounds 5] [--json out.json]

Results go to ``BENCHMARKS.md`` ("Memory over 10M events").
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TTL = 14 * 86400.0


def _streams(lang: str, band: str, tier: str) -> tuple[Any, ...]:
    return ((), ("lang", lang), ("amount_band", band), ("customer_tier", tier))


def _fresh(joined_cls: Any, i: int) -> Any:
    """Entry ``i`` with strings and tuples of its own, as decoding makes them."""
    model, version = "".join(["fraud-", "scorer"]), "".join(["v7-", "int8"])
    streams = _streams("".join(["e", "n"]), "".join(["lo", "w"]), "".join(["go", "ld"]))
    score = (i % 1000) / 1000.0 if i % 2 == 0 else None
    return joined_cls(model, version, streams, i % 2 == 0, float(i), score)


def _bytes_per_entry(n: int) -> dict[str, float]:
    from monitor.tables import Joined, JoinTable

    out: dict[str, float] = {}
    shared = ("fraud-scorer", "v7-int8", _streams("en", "low", "gold"))
    for name in ("fresh", "shared", "steady"):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        table = JoinTable(n, TTL)
        puts = 2 * n if name == "steady" else n
        for i in range(puts):
            if name == "shared":
                entry = Joined(*shared, i % 2 == 0, float(i), (i % 1000) / 1000.0)
            else:
                entry = _fresh(Joined, i)
            table.put(f"r-{10_000_000 + i}", entry)
            del entry
        if len(table) != n:
            raise SystemExit(f"{name}: the table holds {len(table)}, not {n}")
        out[name] = (tracemalloc.get_traced_memory()[0] - before) / n
        tracemalloc.stop()
        del table
    return out


def _timings(n: int) -> dict[str, float]:
    from monitor.tables import Joined, JoinTable

    rids = [f"r-{10_000_000 + i}" for i in range(n)]
    rids_more = [f"r-{20_000_000 + i}" for i in range(n)]
    entries = [_fresh(Joined, i) for i in range(n)]
    parts = [(j.model, j.version, j.streams, j.negative, j.time, j.score) for j in entries]
    out: dict[str, float] = {}
    gc.collect()

    table = JoinTable(n, TTL)
    put = table.put
    t0 = time.perf_counter()
    for rid, joined in zip(rids, entries, strict=True):
        put(rid, joined)
    out["put"] = time.perf_counter() - t0

    get = table.get
    t0 = time.perf_counter()
    for rid in rids:
        get(rid)
    out["get"] = time.perf_counter() - t0
    del table

    # The router's puts: into an empty table, then as many again into the full table,
    # each evicting the oldest (a long run's steady state).
    table = JoinTable(n, TTL)
    for name, ids in (("router_put", rids), ("router_put_full", rids_more)):
        t0 = time.perf_counter()
        if hasattr(table, "put_parts"):
            put_parts = table.put_parts
            for rid, (model, version, streams, negative, at, score) in zip(ids, parts, strict=True):
                put_parts(rid, model, version, streams, negative, at, score)
        else:
            put = table.put
            for rid, (model, version, streams, negative, at, score) in zip(ids, parts, strict=True):
                put(rid, Joined(model, version, streams, negative, at, score))
        out[name] = time.perf_counter() - t0
    if table.evicted != n:
        raise SystemExit(f"router_put_full evicted {table.evicted}, not {n}")
    return out


def measure(n: int, memory: bool) -> dict[str, Any]:
    import monitor

    out: dict[str, Any] = {"monitor": str(Path(monitor.__file__).parent)}
    if memory:
        out["bytes_per_entry"] = _bytes_per_entry(n)
    out["seconds"] = _timings(n)
    return out


# -- the parent ----------------------------------------------------------------------------------
def _run(tree: Path, n: int, memory: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", "--entries", str(n)]
    if memory:
        cmd.append("--memory")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement in {tree} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
    )
    return done.stdout.strip() or "(not a git tree)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-tree", type=Path, required=False)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.entries, args.memory)))
        return
    if args.before_tree is None or not (args.before_tree / "monitor").is_dir():
        raise SystemExit("--before-tree must name a tree with a monitor/ package")
    trees = {"before": args.before_tree.resolve(), "after": REPO}
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for name, tree in trees.items():
            runs[name].append(_run(tree, args.entries, memory=r == 0))
            print(f"round {r + 1} {name}: {runs[name][-1]['seconds']}", file=sys.stderr)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "entries": args.entries,
        "rounds": args.rounds,
        "after_commit": _commit(REPO),
    }
    for name in trees:
        seconds = {k: [run["seconds"][k] for run in runs[name]] for k in runs[name][0]["seconds"]}
        report[name] = {
            "monitor": runs[name][0]["monitor"],
            "bytes_per_entry": runs[name][0]["bytes_per_entry"],
            "seconds_median": {k: statistics.median(v) for k, v in seconds.items()},
            "seconds": seconds,
        }
    b, a = report["before"], report["after"]
    report["ratio_after_over_before"] = {
        "bytes_" + k: a["bytes_per_entry"][k] / b["bytes_per_entry"][k]
        for k in b["bytes_per_entry"]
    } | {k: a["seconds_median"][k] / b["seconds_median"][k] for k in b["seconds_median"]}
    print(f"{args.entries:,} entries; Python {report['python']}; medians of {args.rounds} rounds")
    print(f"{'':22} {'before':>10} {'after':>10} {'after/before':>13}")
    for k in b["bytes_per_entry"]:
        x, y = b["bytes_per_entry"][k], a["bytes_per_entry"][k]
        print(f"{'B per entry, ' + k:22} {x:10.0f} {y:10.0f} {y / x:13.2f}")
    for k in b["seconds_median"]:
        x, y = b["seconds_median"][k], a["seconds_median"][k]
        print(f"{k + ' (s)':22} {x:10.3f} {y:10.3f} {y / x:13.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
