"""Replay throughput: a bare orjson parse vs. ``shiftwatch replay`` vs. the pipeline alone.

What it measures
----------------
One run writes (or takes, with ``--file``) a JSONL file of the demo's traffic
(``monitor.demo.simulator``, default :class:`Scenario`, compact JSON: about
2.14 events per request, 223 bytes each) and then, ``--runs`` times,
interleaved (A, B, C, A, B, C, ...) so that machine noise hits all three
alike, each in its own subprocess of the same interpreter:

``orjson``
    read the file line by line and ``orjson.loads`` every line: the floor any
    JSON-reading replay pays;
``replay``
    ``shiftwatch replay FILE --policy POLICY --alerts-out A.jsonl`` end to end,
    timed from outside (interpreter start-up, imports and policy calibration
    included, which is about a second);
``pipeline``
    the pipeline alone, in process: the file is first read into batches of
    5,000 ``Message`` objects (not timed), then ``Pipeline.process`` runs over
    every batch and ``end_of_input`` (timed), with the demo policy; each stage of
    ``Pipeline.process`` (decode and validate, route, count, release, metrics)
    is timed too and reported in µs per event. Before the
    timing, river (which the baseline's drift watch imports on its first data)
    is imported and the preloaded messages are frozen out of the garbage
    collector's reach (``gc.freeze``): one-off or artificial costs, not the
    pipeline's.

With ``--before-tree DIR`` (a checkout of another commit) each round also runs
``replay-before`` and ``pipeline-before``, the same two with shiftwatch imported
from ``DIR``, and the report adds each case's after/before ratio, computed per
round and then taken as the median.

It reports, per case, the median and min/max events/s over the rounds, and
the ratio ``replay / orjson`` computed per round (its median is the number
to quote; issue 14's goal is >= 0.5 and >= 300k events/s for replay, >= 100k
events/s for the pipeline). The monitor package measured is the one on
``PYTHONPATH`` (or installed); the report names its git commit, so running
this script with ``PYTHONPATH`` pointing at a checkout of another commit
measures that commit with the same file and method.

Reproduce
---------
From the repository root::

    python bench/replay_throughput.py                          # 1M events, 5 rounds
    python bench/replay_throughput.py --events 200000 --runs 3 --json replay.json
    PYTHONPATH=/tmp/sw python bench/replay_throughput.py --file /tmp/events.jsonl

Results go to ``BENCHMARKS.md``.
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
import tempfile
import time
from pathlib import Path
from typing import Any

CASES = ("orjson", "replay", "pipeline")


def _child_orjson(path: str) -> dict[str, Any]:
    import orjson

    started = time.perf_counter()
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            orjson.loads(line)
            n += 1
    return {"events": n, "seconds": time.perf_counter() - started}


def _child_pipeline(path: str, policy_path: str) -> dict[str, Any]:
    from monitor.messages import Message
    from monitor.pipeline import Pipeline
    from monitor.policy import load_policy
    from monitor.replay import LogDeadLetterSink

    batches: list[list[Message]] = []
    batch: list[Message] = []
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            batch.append(Message(line.rstrip(b"\r\n"), path, 0, number))
            if len(batch) == 5000:
                batches.append(batch)
                batch = []
    if batch:
        batches.append(batch)
    pipeline = Pipeline(
        load_policy(policy_path), dead_letters=LogDeadLetterSink(), clock="event", quiet=True
    )
    pipeline.assigned([f"{path}:0"])
    # One-off costs a live run pays once at start, kept out of the timing: the baseline's
    # drift watch imports river on its first data (about 0.7 s), and the cyclic garbage
    # collector would otherwise walk the preloaded messages again and again.
    import river.drift  # noqa: F401

    stages = _time_stages(pipeline)
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    for batch in batches:
        pipeline.process(batch)
    pipeline.end_of_input()
    seconds = time.perf_counter() - started
    ledger = pipeline.ledger
    per_event = {name: 1e6 * spent / max(1, ledger.consumed) for name, spent in stages.items()}
    return {
        "events": ledger.consumed,
        "seconds": seconds,
        "alerts": ledger.alerts,
        "stages_us_per_event": per_event,
    }


#: The stages of ``Pipeline.process`` timed in the pipeline case: (owner, method, name).
STAGES = (
    ("pipeline", "_validate", "decode+validate"),
    ("router", "route", "dedupe+join+route"),
    ("pipeline", "_count", "count"),
    ("pipeline", "_release", "release+judge"),
    ("pipeline", "_account", "metrics"),
)


def _time_stages(pipeline: Any) -> dict[str, float]:
    """Wrap each stage of ``pipeline`` with a timer; the seconds spent, filled as it runs.

    A stage a tree does not have (an older commit) is left out. The wrappers add
    a few microseconds per batch, nothing per event.
    """
    spent: dict[str, float] = {}
    for owner_name, method, name in STAGES:
        owner = pipeline if owner_name == "pipeline" else pipeline.router
        inner = getattr(owner, method, None)
        if inner is None:
            continue
        spent[name] = 0.0

        def timed(*args: Any, _inner: Any = inner, _name: str = name, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - t0

        setattr(owner, method, timed)
    return spent


def _run_child(
    case: str, path: str, policy: str, workdir: Path, before: str | None = None
) -> dict[str, Any]:
    """One measurement in a fresh interpreter: {"events", "seconds", ...}.

    A ``-before`` case runs the same measurement with shiftwatch imported from
    ``before`` (``PYTHONPATH``), another commit's checkout.
    """
    env = None
    if case.endswith("-before"):
        case, env = case.removesuffix("-before"), {**os.environ, "PYTHONPATH": str(before)}
    if case == "replay":
        alerts = workdir / "alerts.jsonl"
        command = [
            sys.executable,
            "-m",
            "monitor.cli",
            "replay",
            path,
            "--policy",
            policy,
            "--alerts-out",
            str(alerts),
        ]
        started = time.perf_counter()
        # Run from the scratch directory: ``python -m`` puts the working directory first on
        # sys.path, ahead of PYTHONPATH, so from a checkout it would import that checkout.
        subprocess.run(
            command,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=workdir,
        )
        seconds = time.perf_counter() - started
        with open(path, "rb") as fh:
            events = sum(1 for _ in fh)
        with open(alerts) as fh:
            return {"events": events, "seconds": seconds, "alerts": sum(1 for _ in fh)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, "--file", path, "--policy", policy],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _commit() -> str:
    """The git commit of the ``monitor`` package this interpreter imports."""
    import monitor

    where = Path(monitor.__file__).resolve().parent
    try:
        return subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _write_events(path: Path, n_events: int) -> int:
    from monitor.demo.finite import write_jsonl
    from monitor.demo.simulator import Scenario

    requests = max(1, round(n_events / 2.14))
    return write_jsonl(path, Scenario(), requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--file", help="a JSONL file to replay instead of generating one")
    parser.add_argument("--policy", help="policy file (default: the demo's)")
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument(
        "--before-tree",
        help="a checkout of another commit: adds replay-before and pipeline-before cases",
    )
    parser.add_argument("--child", choices=("orjson", "pipeline"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from monitor.demo import run as demo_run

    policy = args.policy or str(Path(demo_run.__file__).with_name("policy.yaml"))
    if args.child:
        result = (
            _child_orjson(args.file)
            if args.child == "orjson"
            else _child_pipeline(args.file, policy)
        )
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="sw-replay-bench-") as tmp:
        workdir = Path(tmp)
        if args.file:
            path = args.file
        else:
            path = str(workdir / "events.jsonl")
            print(f"writing about {args.events:,} demo events to {path}", file=sys.stderr)
            _write_events(Path(path), args.events)
        cases = CASES + (("replay-before", "pipeline-before") if args.before_tree else ())
        rounds: list[dict[str, dict[str, Any]]] = []
        for r in range(args.runs):
            measured = {
                case: _run_child(case, path, policy, workdir, args.before_tree) for case in cases
            }
            for m in measured.values():
                m["rate"] = m["events"] / m["seconds"]
            rounds.append(measured)
            print(
                f"round {r + 1}: "
                + ", ".join(f"{case} {m['rate']:,.0f}/s" for case, m in measured.items()),
                file=sys.stderr,
            )
        events = rounds[0]["orjson"]["events"]
        size = os.path.getsize(path)

    summary: dict[str, Any] = {}
    for case in cases:
        rates = [r[case]["rate"] for r in rounds]
        summary[case] = {
            "median_events_per_s": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
        }
    ratios = [r["replay"]["rate"] / r["orjson"]["rate"] for r in rounds]
    pipeline_ratios = [r["pipeline"]["rate"] / r["orjson"]["rate"] for r in rounds]
    speedups = {
        case: statistics.median(r[case]["rate"] / r[f"{case}-before"]["rate"] for r in rounds)
        for case in ("replay", "pipeline")
        if args.before_tree
    }
    report = {
        "benchmark": "replay_throughput",
        "commit": _commit(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "file": {"events": events, "bytes": size, "bytes_per_event": size / events},
        "runs": args.runs,
        "cases": summary,
        "replay_over_orjson": {"per_round": ratios, "median": statistics.median(ratios)},
        "pipeline_over_orjson": {
            "per_round": pipeline_ratios,
            "median": statistics.median(pipeline_ratios),
        },
        "after_over_before": speedups,
        "alerts": {
            "replay": rounds[0]["replay"]["alerts"],
            "pipeline": rounds[0]["pipeline"]["alerts"],
        },
        "rounds": rounds,
    }
    print(f"\nreplay throughput, {events:,} events ({size / events:.0f} B each)")
    print(f"monitor commit {report['commit']}")
    print(f"{'case':<10} {'median/s':>12} {'min/s':>12} {'max/s':>12}")
    for case, s in summary.items():
        print(
            f"{case:<10} {s['median_events_per_s']:>12,.0f} {s['min']:>12,.0f} {s['max']:>12,.0f}"
        )
    print(f"replay / orjson, median over rounds: {statistics.median(ratios):.3f}")
    for case in ("pipeline", "pipeline-before"):
        if case in cases:
            names = rounds[0][case].get("stages_us_per_event", {})
            medians = {
                name: statistics.median(r[case]["stages_us_per_event"][name] for r in rounds)
                for name in names
            }
            report.setdefault("stages_us_per_event", {})[case] = medians
            print(
                f"{case} µs per event, median: "
                + ", ".join(f"{k} {v:.2f}" for k, v in medians.items())
            )
    for case, ratio in speedups.items():
        print(f"{case} / {case}-before, median over rounds: {ratio:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
