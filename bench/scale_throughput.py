"""The scale tier against one process: throughput, the judge stage's ceiling, detection latency.

What it measures
----------------
``throughput`` (processes on the embedded Tansu broker)
    ``--events`` demo events keyed by request id on a 6-partition topic, read
    from the start by a fresh consumer group in each round, by

    ``embedded``
        one ``shiftwatch run`` (kafka-python, the default engine);
    ``tier-1``, ``tier-2``
        one ``--stage judge`` and 1 or 2 ``--stage ingest`` replicas.

    Each measurement has a fresh topic: the case's processes start and join
    their groups first (15 s), then the events are produced (librdkafka, large
    batches: about 4 times faster than any case consumes; its time is
    reported). The clock starts when the
    process that judges (the monitor, or the judge stage) has counted its first
    event (``shiftwatch_model_events_total``, read from ``/metrics`` every
    0.1 s) and stops when it has counted every routed event; start-up and group
    joins are left out. Cases are interleaved, one round after another. The
    broker, the producer and every process share the machine's cores.

``ceiling`` (in process, no broker)
    The judge stage's ceiling: the partials of the same events (cut by an
    in-process ingest stage at 5,000 messages per partition, as at full speed)
    are judged by a fresh :class:`~monitor.scale.judge.JudgeStage`; reported as
    events/s, partials/s and merged bucket updates/s (rows of (bucket, version,
    stream) added to open buckets, counted in a separate pass), side by side
    with one :class:`~monitor.pipeline.Pipeline` over the same messages.

``latency`` (processes, a paced stream)
    The demo scenario paced at its own rate (1,000 requests/s, ~2,100 events/s)
    with event times at the wall clock; the first alert's ``fired_at`` minus its
    ``event_time`` (the moment the released bucket became final in event time)
    for ``embedded`` and ``tier-1``.

Run: ``PYTHONPATH=. python bench/scale_throughput.py --events 400000 --runs 3``
(``--parts throughput,ceiling,latency`` picks a subset; ``--json`` writes the results).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.kafka_throughput import machine_info, realistic_payloads, source_revision, tansu_version
from monitor.broker import EmbeddedBroker, create_topics, free_port

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "monitor" / "demo" / "policy.yaml"
PARTITIONS = 6
SECRET = "bench-secret"
FAST_GROUP = {
    "SHIFTWATCH_KAFKA__SESSION_TIMEOUT_MS": "6000",
    "SHIFTWATCH_KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
    "SHIFTWATCH_KAFKA__MAX_POLL_INTERVAL_MS": "10000",
    "SHIFTWATCH_KAFKA__POLL_TIMEOUT_MS": "200",
}
#: Seconds a case's processes get to start and join their groups before events are produced.
SETTLE = 15.0


# --------------------------------------------------------------------------- processes
class Proc:
    """One ``shiftwatch run`` process, started from a scratch directory (see replay_throughput)."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "monitor.cli", "run", *args]
        cmd += ["--http-host", "127.0.0.1", "--http-port", str(self.port), "--log-format", "json"]
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **FAST_GROUP, **env}
        with (workdir / "log.txt").open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=full_env, cwd=workdir, stdout=log, stderr=log)

    def events(self) -> float:
        """``shiftwatch_model_events_total`` summed, or -1 while the server does not answer."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return -1.0
        prefix = "shiftwatch_model_events_total{"
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
        )

    def cpu_seconds(self) -> float:
        """User and system CPU seconds the process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def common_args(bootstrap: str, topic: str, group: str) -> list[str]:
    return [
        "--policy", str(POLICY),
        "--bootstrap-servers", bootstrap,
        "--topics", topic,
        "--group-id", group,
        "--dead-letter-topic", f"{topic}.dlq",
    ]  # fmt: skip


def start_case(case: str, bootstrap: str, topic: str, workdir: Path) -> tuple[Proc, list[Proc]]:
    """The process that judges, and every process of the case."""
    group = f"{case}-{uuid.uuid4().hex[:8]}"
    args = common_args(bootstrap, topic, group)
    if case == "embedded":
        one = Proc([*args, "--alerts-out", str(workdir / "alerts.jsonl")], {}, workdir)
        return one, [one]
    env = {
        "SHIFTWATCH_STATE__SECRET": SECRET,
        "SHIFTWATCH_SCALE__PARTIALS_TOPIC": f"{group}.partials",
    }
    quix = ["--engine", "quix"]
    judge = Proc(
        args + quix + ["--stage", "judge", "--state-dir", str(workdir / "judge" / "state"),
                       "--alerts-out", str(workdir / "alerts.jsonl")],
        env,
        workdir / "judge",
    )  # fmt: skip
    replicas = int(case.rsplit("-", 1)[1])
    ingest = [
        Proc(
            args
            + quix
            + ["--stage", "ingest", "--state-dir", str(workdir / f"ingest{i}" / "state")],
            env,
            workdir / f"ingest{i}",
        )
        for i in range(replicas)
    ]
    return judge, [judge, *ingest]


# --------------------------------------------------------------------------- throughput
def produce(bootstrap: str, topic: str, payloads: Sequence[tuple[bytes | None, bytes]]) -> float:
    """Produce every payload with librdkafka (several times faster than any case consumes,
    so the cases are measured, not the producer); returns the seconds it took."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1 << 20,
            "queue.buffering.max.messages": 2_000_000,
            "partitioner": "murmur2_random",  # as kafka-python and Java clients
        }
    )
    started = time.perf_counter()
    for key, value in payloads:
        producer.produce(topic, value=value, key=key)
        producer.poll(0)
    producer.flush()
    return time.perf_counter() - started


def routed_events(payloads: Sequence[tuple[bytes | None, bytes]]) -> int:
    """How many events the judging process will count (every routed event of the model)."""
    from monitor.config import LimitsSettings
    from monitor.messages import Message
    from monitor.pipeline import validate
    from monitor.policy import load_policy
    from monitor.router import Router

    router = Router(load_policy(POLICY))
    total = 0
    for start in range(0, len(payloads), 10_000):
        batch = [
            Message(v, "t", 0, start + i)
            for i, (_, v) in enumerate(payloads[start : start + 10_000])
        ]
        _, valid, _ = validate(batch, LimitsSettings())
        for work in router.route(valid).work.values():
            total += len(work.inferences) + len(work.actions) + len(work.outcomes)
    return total


def measure_throughput(
    case: str, bootstrap: str, payloads: Sequence[tuple[bytes | None, bytes]], target: int
) -> dict[str, Any]:
    """One case on a fresh topic: its processes start and join their groups (``SETTLE``
    seconds, so no rebalance falls inside the measurement), then the events are produced."""
    topic = f"scale-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: PARTITIONS, f"{topic}.dlq": 1})
    workdir = Path(tempfile.mkdtemp(prefix=f"scale-{case}-"))
    judging, procs = start_case(case, bootstrap, topic, workdir)
    done = False
    try:
        time.sleep(SETTLE)
        produced: list[float] = []
        producer = threading.Thread(
            target=lambda: produced.append(produce(bootstrap, topic, payloads))
        )
        producer.start()
        deadline = time.monotonic() + 240
        first_at = first_count = None
        cpu_at_start: list[float] = []
        while time.monotonic() < deadline:
            n = judging.events()
            now = time.perf_counter()
            if n > 0 and first_at is None:
                first_at, first_count = now, n
                cpu_at_start = [p.cpu_seconds() for p in procs]
            if n >= target:
                assert first_at is not None and first_count is not None
                seconds = now - first_at
                cpu = [p.cpu_seconds() - c for p, c in zip(procs, cpu_at_start, strict=True)]
                producer.join()
                done = True
                return {
                    "case": case,
                    "events": target,
                    "seconds": seconds,
                    "events_per_s": (target - first_count) / seconds,
                    "produce_seconds": produced[0],
                    # CPU microseconds per event: the judging process, then each other one.
                    "cpu_us_per_event": [c / (target - first_count) * 1e6 for c in cpu],
                }
            for p in procs:
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{case}: a process exited; see {p.workdir}/log.txt")
            time.sleep(0.1)
        raise RuntimeError(f"{case}: not done in 240 s; see {workdir}")
    finally:
        for p in procs:
            p.stop()
        if done:
            shutil.rmtree(workdir, ignore_errors=True)  # else its logs stay for a look


# --------------------------------------------------------------------------- ceiling
def measure_ceiling(payloads: Sequence[tuple[bytes | None, bytes]], runs: int) -> dict[str, Any]:
    """The judge stage in process against one pipeline, on the same events."""
    from monitor.buckets import Buckets
    from monitor.config import LimitsSettings
    from monitor.messages import Message
    from monitor.metrics import Metrics
    from monitor.pipeline import Pipeline
    from monitor.policy import load_policy
    from monitor.scale.ingest import IngestStage
    from monitor.scale.judge import JudgeStage
    from monitor.scale.partials import read_partial

    policy = load_policy(POLICY)
    offsets = [0] * PARTITIONS
    messages = []
    for key, value in payloads:
        p = sum(key or b"") % PARTITIONS
        messages.append(Message(value, "ev", p, offsets[p]))
        offsets[p] += 1
    sources = [f"ev:{p}" for p in range(PARTITIONS)]

    class Topic:
        def __init__(self) -> None:
            self.values: list[bytes] = []

        def produce(self, key: bytes, value: bytes) -> None:
            self.values.append(value)

        def flush(self) -> None:
            return None

    class Nothing:
        def send(self, *_: Any) -> None:
            raise AssertionError("no dead letters in the demo traffic")

        def emit(self, *_: Any) -> None:
            return None

        def flush(self) -> None:
            return None

        def close(self) -> None:
            return None

    def store() -> Callable[..., Any]:
        data: dict[bytes, bytes] = {}

        class State:
            def __init__(self, prefix: bytes) -> None:
                self.prefix = prefix

            def get(self, key: bytes, default: None = None) -> bytes | None:
                return data.get(self.prefix + key, default)

            def set(self, key: bytes, value: bytes) -> None:
                data[self.prefix + key] = value

            def delete(self, key: bytes) -> None:
                data.pop(self.prefix + key, None)

        return lambda *where: State(repr(where).encode())

    topic = Topic()
    ingest = IngestStage(
        policy, LimitsSettings(), dead_letters=Nothing(), partials=topic, metrics=Metrics(),
        store=store(), signing_key=b"k" * 32, emit_events=5000, emit_seconds=1e9,
    )  # fmt: skip
    for message in messages:
        ingest.add(message)
    ingest.flush()
    partials = topic.values
    events = 0
    for blob in partials:
        partial = read_partial(blob)
        events += sum(
            len(getattr(partial, k).offset) // 8 for k in ("inferences", "actions", "outcomes")
        )

    def new_judge() -> JudgeStage:
        return JudgeStage(
            policy, LimitsSettings(), sources=sources, alert_sinks=[Nothing()], metrics=Metrics(),
            store=store(), signing_key=b"k" * 32,
        )  # fmt: skip

    # Merged bucket updates: distinct (bucket, version, stream) rows each add_columns adds.
    updates = [0]
    original = Buckets.add_columns

    def counting(self: Buckets, table: Any, at: Any, group: Any, *rest: Any) -> Any:
        b = np.floor(at / self.bucket_seconds)
        fresh = b >= self._released_below
        event, key = table.expand(group)
        keep = fresh[event]
        if keep.any():
            idx = b[event[keep]].astype(np.int64)
            updates[0] += len(np.unique((idx - idx.min()) * (len(table.keys) + 1) + key[keep]))
        return original(self, table, at, group, *rest)

    Buckets.add_columns = counting  # type: ignore[method-assign]
    try:
        counter = new_judge()
        for offset, blob in enumerate(partials):
            counter.add(blob, "partials", 0, offset)
    finally:
        Buckets.add_columns = original  # type: ignore[method-assign]

    judge_s, pipeline_s = [], []
    for _ in range(runs):
        judge = new_judge()
        started = time.perf_counter()
        for offset, blob in enumerate(partials):
            judge.add(blob, "partials", 0, offset)
        judge_s.append(time.perf_counter() - started)
        pipeline = Pipeline(policy, dead_letters=Nothing(), alert_sinks=[Nothing()], quiet=True)
        pipeline.assigned(sources)
        started = time.perf_counter()
        for start in range(0, len(messages), 5000):
            pipeline.process(messages[start : start + 5000])
        pipeline_s.append(time.perf_counter() - started)
    judge_med, pipe_med = statistics.median(judge_s), statistics.median(pipeline_s)
    return {
        "events": events,
        "messages": len(messages),
        "partials": len(partials),
        "bucket_updates": updates[0],
        "judge_seconds": judge_s,
        "pipeline_seconds": pipeline_s,
        "judge_events_per_s": events / judge_med,
        "judge_partials_per_s": len(partials) / judge_med,
        "judge_bucket_updates_per_s": updates[0] / judge_med,
        "pipeline_events_per_s": len(messages) / pipe_med,
        "judge_over_pipeline": (events / judge_med) / (len(messages) / pipe_med),
    }


# --------------------------------------------------------------------------- latency
def paced(bootstrap: str, topic: str, seconds: float, stop: threading.Event) -> None:
    """The demo scenario at its own rate, event times at the wall clock, keyed by request id."""
    from kafka import KafkaProducer

    from monitor.demo.scenario import Scenario
    from monitor.demo.stream import TrafficSimulator

    start = datetime.now(UTC) + timedelta(seconds=1)
    sim = TrafficSimulator(Scenario(start=start))
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    encode = json.JSONEncoder(separators=(",", ":")).encode
    end = start + timedelta(seconds=seconds)
    try:
        while not stop.is_set() and sim.now < end:
            batch = sim.next_batch(250)  # a quarter second of the scenario
            wait = (datetime.fromisoformat(batch[-1]["time"]) - datetime.now(UTC)).total_seconds()
            if wait > 0:
                time.sleep(wait)
            for event in batch:
                producer.send(topic, value=encode(event).encode(), key=event["request_id"].encode())
            producer.flush()
    finally:
        producer.close()


def measure_latency(case: str, bootstrap: str, seconds: float) -> dict[str, Any]:
    topic = f"latency-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: PARTITIONS, f"{topic}.dlq": 1})
    workdir = Path(tempfile.mkdtemp(prefix=f"latency-{case}-"))
    judging, procs = start_case(case, bootstrap, topic, workdir)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 120
        while judging.events() < 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(8.0)  # the consumer groups join before the stream starts
        producer = threading.Thread(target=paced, args=(bootstrap, topic, seconds, stop))
        producer.start()
        alerts = workdir / "alerts.jsonl"
        while producer.is_alive():
            if alerts.exists() and alerts.read_text().strip():
                break
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        producer.join()
        records = (
            [json.loads(x) for x in alerts.read_text().splitlines()] if alerts.exists() else []
        )
        if not records:
            raise RuntimeError(f"{case}: no alert in {seconds} s of traffic; see {workdir}")
        first = min(records, key=lambda r: r["fired_at"])
        delay = (
            datetime.fromisoformat(first["fired_at"]) - datetime.fromisoformat(first["event_time"])
        ).total_seconds()
        return {"case": case, "check": first["check"], "seconds": delay}
    finally:
        stop.set()
        for p in procs:
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- main
def median_by_case(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    cases = dict.fromkeys(r["case"] for r in rows)
    return {c: statistics.median(r[key] for r in rows if r["case"] == c) for c in cases}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", default="throughput,ceiling,latency")
    parser.add_argument("--cases", default="embedded,tier-1,tier-2")
    parser.add_argument("--latency-seconds", type=float, default=45.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    cases = args.cases.split(",")
    result: dict[str, Any] = {
        "machine": machine_info(),
        "tansu": tansu_version(),
        "source": source_revision(),
        "events": args.events,
        "runs": args.runs,
    }
    payloads = realistic_payloads(args.events, "request_id")
    if "ceiling" in parts:
        result["ceiling"] = ceiling = measure_ceiling(payloads, args.runs)
        print(
            f"judge ceiling: {ceiling['judge_events_per_s']:,.0f} events/s, "
            f"{ceiling['judge_bucket_updates_per_s']:,.0f} bucket updates/s, "
            f"{ceiling['judge_partials_per_s']:,.1f} partials/s; one pipeline "
            f"{ceiling['pipeline_events_per_s']:,.0f} events/s "
            f"(ratio {ceiling['judge_over_pipeline']:.2f})",
            flush=True,
        )
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        if "throughput" in parts:
            target = routed_events(payloads)
            rows = []
            for round_no in range(args.runs):
                for case in cases:
                    row = measure_throughput(case, bootstrap, payloads, target)
                    row["round"] = round_no
                    rows.append(row)
                    costs = ", ".join(f"{c:.1f}" for c in row["cpu_us_per_event"])
                    print(
                        f"round {round_no} {case}: {row['events_per_s']:,.0f} events/s; CPU "
                        f"µs/event (judging process first): {costs}",
                        flush=True,
                    )
            med = median_by_case(rows, "events_per_s")
            base = med.get("embedded")
            result["throughput"] = {
                "rows": rows,
                "median_events_per_s": med,
                "ratio_to_embedded": {c: v / base for c, v in med.items()} if base else {},
            }
            print(json.dumps(result["throughput"]["median_events_per_s"]), flush=True)
        if "latency" in parts:
            rows = []
            for round_no in range(args.runs):
                for case in ("embedded", "tier-1"):
                    row = measure_latency(case, bootstrap, args.latency_seconds)
                    row["round"] = round_no
                    rows.append(row)
                    print(f"round {round_no} {case}: first alert {row['seconds']:.2f} s after "
                          f"its bucket was final ({row['check']})", flush=True)  # fmt: skip
            result["latency"] = {"rows": rows, "median_seconds": median_by_case(rows, "seconds")}
            print(json.dumps(result["latency"]["median_seconds"]), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
