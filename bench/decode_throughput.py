"""Decoding a batch: ``decode_batch`` at commit 2181028 vs. this tree, with two floors.

What it measures
----------------
The demo's traffic (``shiftwatch simulate --requests 100000``: 214,119 lines,
compact JSON) is read into batches of ``--batch`` lines (5,000, as replay
reads them; not timed). Then, ``--runs`` times, interleaved (A, B, C, ...,
A, B, C, ...) so that machine noise hits every case alike, each case runs in
its own subprocess and times one pass over every batch:

``old``
    ``monitor.fast_decode.decode_batch`` of commit 2181028 (per line: Python
    guards, one msgspec decode, the RFC 3339 regex, ``fromisoformat``, a
    pydantic event built from the Struct), imported from a worktree of that
    commit (``PYTHONPATH``);
``new``
    ``decode_batch`` of this tree (a span decoded at once into Structs, the
    guards and time checks once per span);
``old-hostile``, ``new-hostile``
    the same on batches where one line in each (the middle one) is not JSON,
    so that the new decoder's span fails and is halved down to line by line;
``msgspec``
    a bare msgspec decode of each batch as one array (``b"[" + b",".join(lines)
    + b"]"`` into ``list[...]`` of plain Structs with the events' fields, no
    constraints): the floor of decoding a batch in C;
``orjson``
    ``orjson.loads`` of every line: the floor replay was measured against.

Both decoders get ``max_bytes`` and ``not_after`` as the pipeline passes them.
Each batch's result is dropped before the next, as in the pipeline. It prints,
per case, the median and min/max events/s over the rounds and the per-round
ratio new / old (its median is the number to quote).

Reproduce
---------
From the repository root::

    shiftwatch simulate --out /tmp/ev200k.jsonl --requests 100000
    python bench/decode_throughput.py --file /tmp/ev200k.jsonl --runs 5 [--json out.json]

The worktree of the old commit is created if missing (``git worktree add
--detach /tmp/sw-2181028 2181028``); ``--old-tree`` names another. Results go
to ``BENCHMARKS.md`` ("Decoding a batch").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OLD_COMMIT = "2181028"
CASES = ("old", "new", "old-hostile", "new-hostile", "msgspec", "orjson")
#: Replaces the middle line of each batch in the ``-hostile`` cases.
HOSTILE_LINE = b'{"kind": "inference", "id": '


def _batches(path: Path, size: int, hostile: bool) -> list[list[bytes]]:
    lines = path.read_bytes().splitlines()
    batches = [lines[i : i + size] for i in range(0, len(lines), size)]
    if hostile:
        for batch in batches:
            batch[len(batch) // 2] = HOSTILE_LINE
    return batches


def _child(case: str, path: Path, size: int) -> dict[str, Any]:
    """One timed pass of ``case`` over the file, in this (sub)process."""
    batches = _batches(path, size, case.endswith("-hostile"))
    n = sum(map(len, batches))
    if case in ("old", "new", "old-hostile", "new-hostile"):
        from monitor.fast_decode import decode_batch

        not_after = time.time() + 300.0
        started = time.perf_counter()
        for batch in batches:
            out = decode_batch(batch, max_bytes=1_048_576, not_after=not_after)
        seconds = time.perf_counter() - started
        assert len(out) == len(batches[-1])
    elif case == "msgspec":
        import msgspec

        class Inference(msgspec.Struct, tag_field="kind", tag="inference"):
            id: str
            time: str
            request_id: str
            model: str
            version: str
            score: float | None = None
            decision: str | None = None
            segments: dict[str, str] = {}
            latency_ms: float | None = None

        class Action(msgspec.Struct, tag_field="kind", tag="action"):
            id: str
            time: str
            request_id: str
            model: str
            version: str
            action: str
            tool: str | None = None
            privileged: bool | None = None
            status: str | None = None

        class Outcome(msgspec.Struct, tag_field="kind", tag="outcome"):
            id: str
            time: str
            request_id: str
            label: str
            source: str | None = None
            model: str | None = None
            version: str | None = None

        decoder = msgspec.json.Decoder(list[Inference | Action | Outcome])
        started = time.perf_counter()
        for batch in batches:
            out = decoder.decode(b"[" + b",".join(batch) + b"]")
        seconds = time.perf_counter() - started
    else:
        import orjson

        loads = orjson.loads
        started = time.perf_counter()
        for batch in batches:
            out = [loads(line) for line in batch]
        seconds = time.perf_counter() - started
    return {"case": case, "events": n, "seconds": seconds}


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def _run(case: str, args: argparse.Namespace) -> dict[str, Any]:
    tree = args.old_tree if case.startswith("old") else REPO
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", case,
        "--file", str(args.file), "--batch", str(args.batch),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{case} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import msgspec
    import orjson

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "msgspec": msgspec.__version__,
        "orjson": orjson.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=Path("/tmp/ev200k.jsonl"))
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--old-tree", type=Path, default=Path(f"/tmp/sw-{OLD_COMMIT}"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.file, args.batch)))
        return
    if not args.file.exists():
        raise SystemExit(f"{args.file}: run `shiftwatch simulate --out {args.file}` first")
    cases = [c for c in args.cases.split(",") if c]
    if any(c.startswith("old") for c in cases) and not (args.old_tree / "monitor").is_dir():
        _git("worktree", "add", "--detach", str(args.old_tree), OLD_COMMIT)
    rates: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(args.runs):
        for case in cases:
            result = _run(case, args)
            rates[case].append(result["events"] / result["seconds"])
    dirty = bool(_git("status", "--porcelain", "--", "monitor"))
    report: dict[str, Any] = {
        "machine": _machine(),
        "old_commit": OLD_COMMIT,
        "new_code": _git("rev-parse", "--short", "HEAD") + (" (modified)" if dirty else ""),
        "file": str(args.file),
        "batch": args.batch,
        "runs": args.runs,
        "events_per_s": rates,
    }
    print(f"{report['machine']}")
    print(f"old {OLD_COMMIT}, new {report['new_code']}, {args.runs} interleaved runs")
    for case, xs in rates.items():
        print(
            f"{case:>12}: {statistics.median(xs):>10,.0f} events/s "
            f"(min {min(xs):,.0f}, max {max(xs):,.0f})"
        )
    for new, old in (("new", "old"), ("new-hostile", "old-hostile"), ("new", "orjson")):
        if new in rates and old in rates:
            ratio = statistics.median(a / b for a, b in zip(rates[new], rates[old], strict=True))
            report[f"{new}/{old}"] = ratio
            print(f"{new} / {old}: {ratio:.2f}x (median of per-round ratios)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
