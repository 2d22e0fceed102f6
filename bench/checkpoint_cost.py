"""Checkpoint cost at full capacity: the pickled checkpoint of 38a43aa against the sealed one.

Fills the dedupe window to 1,000,000 ids and the join table to 500,000
entries (uuid4-hex ids, each inference joined with 3 streams) and times, as
the median of several rounds, one checkpoint:

* **old** -- shiftwatch at commit 38a43aa, in a subprocess whose PYTHONPATH
  is a worktree of that commit: ``Pipeline.snapshot()`` (pickle of the
  monitors, dedupe and join tables and ledger) and ``SqliteStateStore.save``;
* **new** -- this tree: ``Pipeline.state()`` (plain data and numpy arrays;
  the dedupe and join tables' ``state()`` if the pipeline has none), then
  ``SqliteStateStore.save`` (``seal``: msgpack and HMAC-SHA256, then one
  SQLite transaction).

Both use the demo policy, with the filled tables put into the pipeline, and
a state file in a fresh temporary directory (WAL, ``synchronous=FULL``).
Afterwards each subprocess also times the tables' per-event operations
(``seen``, ``put``, ``get``), below and at capacity: the median of 3 passes
of ``--ops`` calls each (the at-capacity ``seen`` of new ids evicts the
oldest: the old dict's eviction rescans its deleted head, which makes it
slow at capacity).

    python bench/checkpoint_cost.py [--rounds 5] [--json out.json]

The worktree of the old commit is created if missing (``git worktree add
--detach /tmp/sw-38a43aa 38a43aa``); ``--old-tree`` names another.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OLD_COMMIT = "38a43aa"
LANGS = ["en", "fr", "de", "es", "it", "pt", "nl"]
TIERS = ["gold", "silver", "bronze"]
PASSES = 3  # of each per-event timing


# -- the data: the same in both subprocesses ---------------------------------------------------
def make_ids(n: int, seed: int, suffix: str) -> list[str]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4).hex + suffix for _ in range(n)]


def make_joined(joined_cls: Any, n: int, seed: int) -> list[Any]:
    """``n`` join entries of one model, two versions, 3 streams each; the segment values are
    decoded per entry from JSON, as the pipeline does (fresh strings and tuples each time)."""
    rng = random.Random(seed)
    start = 1_793_000_000.0
    out = []
    for i in range(n):
        seg = json.loads(json.dumps({"lang": rng.choice(LANGS), "tier": rng.choice(TIERS)}))
        streams = ((), ("lang", seg["lang"]), ("tier", seg["tier"]))
        version = "v7-int8" if rng.random() < 0.5 else "v7-fp32"
        out.append(
            joined_cls("fraud-scorer", version, streams, rng.random() < 0.3, start + i * 0.002)
        )
    return out


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def per_op(fn: Any, args: list[Any]) -> float:
    """Nanoseconds per call of ``fn`` over ``args`` (one pass)."""
    started = time.perf_counter()
    for a in args:
        fn(a)
    return (time.perf_counter() - started) / len(args) * 1e9


def per_op2(fn: Any, args: list[tuple[Any, Any]]) -> float:
    started = time.perf_counter()
    for a, b in args:
        fn(a, b)
    return (time.perf_counter() - started) / len(args) * 1e9


def measure(kind: str, rounds: int, n_dedupe: int, n_join: int, n_ops: int) -> dict[str, Any]:
    """Run in a subprocess whose ``monitor`` is the old or the new tree."""
    import monitor
    from monitor.policy import load_policy
    from monitor.replay import LogDeadLetterSink

    policy_path = Path(monitor.__file__).parent / "demo" / "policy.yaml"
    policy = load_policy(policy_path)
    if kind == "old":
        from monitor.pipeline import Pipeline
        from monitor.router import Deduper, Joined, JoinTable
        from monitor.state import Checkpoint, SqliteStateStore
    else:
        from monitor.envelope import Checkpoint, seal
        from monitor.pipeline import Pipeline
        from monitor.state import SqliteStateStore, policy_digest
        from monitor.tables import Deduper, Joined, JoinTable

    event_ids = make_ids(n_dedupe + PASSES * n_ops, 1, "-inf")
    request_ids = make_ids(n_join + PASSES * n_ops, 2, "-req")
    joined = make_joined(Joined, n_join + PASSES * n_ops, 3)
    built = time.perf_counter()
    dedupe = Deduper(n_dedupe)
    for event_id in event_ids[:n_dedupe]:
        dedupe.seen(event_id)
    joins = JoinTable(n_join, 14 * 86400.0)
    for rid, j in zip(request_ids[:n_join], joined[:n_join], strict=True):
        joins.put(rid, j)
    fill_s = time.perf_counter() - built

    pipeline = Pipeline(policy, dead_letters=LogDeadLetterSink())
    scope = "whole pipeline"
    if kind == "old":
        pipeline.dedupe, pipeline.joins = dedupe, joins

        def checkpoint() -> tuple[Any, float, int]:
            t0 = time.perf_counter()
            blob = pipeline.snapshot()
            t1 = time.perf_counter()
            store.save(Checkpoint(policy=pipeline.policy_digest(), state=blob, positions=where))
            return blob, t1 - t0, len(blob)

    else:
        router = getattr(pipeline, "router", None)
        if router is not None and hasattr(pipeline, "state"):
            router.dedupe, router.joins = dedupe, joins
            state_of = pipeline.state
        else:  # a pipeline without state(): the tables alone
            scope = "dedupe and join tables only"

            def state_of() -> dict[str, Any]:
                return {"dedupe": dedupe.state(), "joins": joins.state()}

        digest = policy_digest(policy)

        def checkpoint() -> tuple[Any, float, int]:
            t0 = time.perf_counter()
            state = state_of()
            t1 = time.perf_counter()
            cp = Checkpoint(policy=digest, state=state, positions=where)
            store.save(cp)
            return cp, t1 - t0, 0

    where = {"kafka": {"shiftwatch.events:0": 123_456_789}, "outputs": {"alerts": 0}}
    results: dict[str, list[float]] = {"state_s": [], "save_s": [], "total_s": [], "seal_s": []}
    size = 0
    with tempfile.TemporaryDirectory(prefix="checkpoint-cost-") as tmp:
        store = SqliteStateStore(Path(tmp) / "state.sqlite3")
        for _ in range(rounds):
            gc.collect()
            t0 = time.perf_counter()
            made, state_s, size = checkpoint()
            total = time.perf_counter() - t0
            results["state_s"].append(state_s)
            results["save_s"].append(total - state_s)
            results["total_s"].append(total)
            if kind == "new":  # the seal alone, outside the timed checkpoint
                t1 = time.perf_counter()
                blob = seal(made, store._key)
                results["seal_s"].append(time.perf_counter() - t1)
                size = len(blob)
        store.close()
        db_bytes = sum(p.stat().st_size for p in Path(tmp).iterdir() if p.name.startswith("state"))

    # Per-event operations, PASSES passes of n_ops calls each (the median is reported): at
    # capacity (continuing the filled tables with fresh ids each pass), then below it.
    ops: dict[str, list[float]] = {}

    def note(name: str, ns: float) -> None:
        ops.setdefault(name, []).append(ns)

    for k in range(PASSES):
        fresh_ids = event_ids[n_dedupe + k * n_ops : n_dedupe + (k + 1) * n_ops]
        note("seen_new_at_capacity_ns", per_op(dedupe.seen, fresh_ids))
        note("seen_repeat_at_capacity_ns", per_op(dedupe.seen, fresh_ids))
        chunk = slice(n_join + k * n_ops, n_join + (k + 1) * n_ops)
        new_entries = list(zip(request_ids[chunk], joined[chunk], strict=True))
        note("put_at_capacity_ns", per_op2(joins.put, new_entries))
        half = n_ops // 2
        hits = request_ids[chunk][half:]
        misses = request_ids[k * half : (k + 1) * half]  # evicted long ago
        note("get_at_capacity_ns", per_op(joins.get, hits + misses))
        small = Deduper(n_dedupe)
        note("seen_new_below_capacity_ns", per_op(small.seen, fresh_ids))
        note("seen_repeat_below_capacity_ns", per_op(small.seen, fresh_ids))
        table = JoinTable(n_join, 14 * 86400.0)
        note("put_below_capacity_ns", per_op2(table.put, new_entries))
        note("get_below_capacity_ns", per_op(table.get, request_ids[chunk]))

    return {
        "kind": kind,
        "monitor": str(Path(monitor.__file__).parent),
        "scope": scope,
        "fill_s": fill_s,
        "rounds": {k: v for k, v in results.items() if v},
        "state_s": _median(results["state_s"]),
        "save_s": _median(results["save_s"]),
        "total_s": _median(results["total_s"]),
        "seal_s": _median(results["seal_s"]),
        "bytes": size,
        "db_bytes": db_bytes,
        "per_op": {name: _median(v) for name, v in ops.items()},
        "per_op_passes": ops,
    }


# -- the parent: both subprocesses, then the table ---------------------------------------------
def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import msgpack
    import numpy

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "msgpack": ".".join(map(str, msgpack.version)),
        "platform": platform.platform(),
    }


def _run(kind: str, tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--measure", kind,
        "--rounds", str(args.rounds), "--dedupe", str(args.dedupe), "--joins", str(args.joins),
        "--ops", str(args.ops),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} measurement failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dedupe", type=int, default=1_000_000, help="dedupe window ids")
    parser.add_argument("--joins", type=int, default=500_000, help="join table entries")
    parser.add_argument("--ops", type=int, default=100_000, help="calls per per-event pass")
    parser.add_argument("--old-tree", type=Path, default=Path(f"/tmp/sw-{OLD_COMMIT}"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--measure", choices=["old", "new"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        out = measure(args.measure, args.rounds, args.dedupe, args.joins, args.ops)
        print(json.dumps(out))
        return
    if not (args.old_tree / "monitor").is_dir():
        _git("worktree", "add", "--detach", str(args.old_tree), OLD_COMMIT)
    dirty = bool(_git("status", "--porcelain", "--", "monitor"))
    code = _git("rev-parse", "--short", "HEAD") + (" (monitor/ modified)" if dirty else "")
    old = _run("old", args.old_tree, args)
    new = _run("new", REPO, args)
    ratio = {k: new[k] / old[k] for k in ("state_s", "save_s", "total_s", "bytes")}
    report = {
        "machine": _machine(),
        "old_commit": _git("rev-parse", "--short", OLD_COMMIT, cwd=args.old_tree),
        "new_code": code,
        "params": {"rounds": args.rounds, "dedupe": args.dedupe, "joins": args.joins},
        "old": old,
        "new": new,
        "ratio_new_over_old": ratio,
    }
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}")
    print(
        f"checkpoint at full capacity: {args.dedupe:,} dedupe ids, {args.joins:,} join entries; "
        f"median of {args.rounds} rounds"
    )
    print(f"old: shiftwatch {report['old_commit']}; new: {code} ({new['scope']})\n")
    print(f"{'':28} {'state s':>9} {'save s':>9} {'total s':>9} {'bytes':>13}")
    for name, r in ((f"old (pickle, {OLD_COMMIT})", old), ("new (sealed msgpack)", new)):
        print(
            f"{name:28} {r['state_s']:9.3f} {r['save_s']:9.3f} {r['total_s']:9.3f} {r['bytes']:13,}"
        )
    print(
        f"{'ratio new/old':28} {ratio['state_s']:9.3f} {ratio['save_s']:9.3f} "
        f"{ratio['total_s']:9.3f} {ratio['bytes']:13.3f}"
    )
    print(f"\nnew: seal alone {new['seal_s']:.3f} s (within save)")
    print(f"\n{'per event (ns)':32} {'old':>8} {'new':>8} {'new-old':>8}")
    for key in old["per_op"]:
        a, b = old["per_op"][key], new["per_op"][key]
        print(f"{key.removesuffix('_ns'):32} {a:8.0f} {b:8.0f} {b - a:+8.0f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
