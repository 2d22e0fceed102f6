"""A real run on one machine: ``shiftwatch broker``, ``simulate`` and ``produce``.

- ``broker``: the embedded Kafka-protocol broker (Tansu, in memory) on its own,
  with shiftwatch's topics, until SIGTERM or Ctrl-C;
- ``simulate``: the demo's baseline and candidate traffic written to a JSONL file;
- ``produce``: a JSONL file's lines produced to a topic, keyed by request id, as a
  service's producers should.

``docs/quickstart.md`` strings them together with ``shiftwatch run``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import replace
from typing import Any

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``broker``, ``simulate`` and ``produce`` to the command line."""
    b = sub.add_parser(
        "broker",
        help="run the embedded Kafka-protocol broker (in memory) with shiftwatch's topics",
        description="Events are kept in memory and lost when it stops: for a local run only.",
    )
    b.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    b.add_argument("--port", type=int, default=9092, help="port (default 9092)")
    b.add_argument(
        "--topics",
        default="shiftwatch.events:3,shiftwatch.dead-letter:1",
        help="topics to create as NAME:PARTITIONS, comma-separated "
        "(default shiftwatch.events:3,shiftwatch.dead-letter:1)",
    )
    b.set_defaults(handler=_broker)
    s = sub.add_parser(
        "simulate", help="write the demo's simulated baseline and candidate traffic to JSONL"
    )
    s.add_argument("--out", required=True, help="JSONL file to write (overwritten)")
    s.add_argument("--requests", type=int, help="requests (default 60000)")
    s.add_argument("--rate", type=float, help="requests per second of event time (default 300)")
    s.add_argument(
        "--identical",
        action="store_true",
        help="a candidate that behaves as the baseline (default: the demo's degradations)",
    )
    s.add_argument(
        "--preset",
        choices=["week"],
        help="a whole story instead: week = seven days at 0.21 requests/s, the escalation "
        "shift from day 1 to day 3 then fixed, a lang=ga deny-rate shift from day 3.5 on",
    )
    s.add_argument("--seed", type=int, default=7)
    s.set_defaults(handler=_simulate)
    p = sub.add_parser("produce", help="produce a JSONL file's lines to a Kafka topic")
    p.add_argument("events", help="JSONL file (- for standard input)")
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--topic", default="shiftwatch.events")
    p.set_defaults(handler=_produce)


def _topics(spec: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, partitions = item.partition(":")
        if not name or not (partitions or "1").isdigit() or int(partitions or "1") < 1:
            raise ValueError(f"--topics: {item!r} is not NAME:PARTITIONS (e.g. events:3)")
        out[name] = int(partitions or "1")
    return out


def _broker(args: argparse.Namespace) -> int:
    from monitor.broker import EmbeddedBroker, create_topics

    try:
        topics = _topics(args.topics)
    except ValueError as err:
        print(f"shiftwatch broker: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        broker = EmbeddedBroker(args.host, args.port).start()
    except RuntimeError as err:
        print(
            f"shiftwatch broker: {err} (fix: is port {args.port} in use? try --port)",
            file=sys.stderr,
        )
        return 1
    try:
        create_topics(broker.bootstrap_servers, topics)
        listed = ", ".join(f"{t} ({n} partitions)" for t, n in topics.items())
        print(f"broker on {broker.bootstrap_servers}; topics: {listed}", flush=True)
        print("events are kept in memory: stop with Ctrl-C or SIGTERM", flush=True)
        stop.wait()
    finally:
        broker.stop()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from monitor.demo.presets import preset
    from monitor.demo.simulator import Scenario, write_jsonl

    if args.preset is not None:
        given = [f for f, v in (("--requests", args.requests), ("--rate", args.rate)) if v]
        if given or args.identical:
            print(
                f"shiftwatch simulate: --preset {args.preset} sets its own requests, rate and "
                f"degradations; drop {', '.join(given) or '--identical'}",
                file=sys.stderr,
            )
            return 2
        scenario, requests = preset(args.preset, args.seed)
    else:
        requests = 60_000 if args.requests is None else args.requests
        rate = 300.0 if args.rate is None else args.rate
        if requests < 1 or rate <= 0:
            print("shiftwatch simulate: --requests must be >= 1 and --rate > 0", file=sys.stderr)
            return 2
        scenario = (
            Scenario.identical(seed=args.seed, requests_per_second=rate)
            if args.identical
            else replace(Scenario(seed=args.seed), requests_per_second=rate)
        )
    written = write_jsonl(args.out, scenario, requests)
    print(
        f"wrote {written:,} events ({requests:,} requests) to {args.out}: model "
        f"fraud-scorer, baseline {scenario.baseline}, candidate {scenario.candidate}"
    )
    return 0


def _produce(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from monitor.sources.file import iter_file_batches

    try:
        producer = KafkaProducer(
            bootstrap_servers=args.bootstrap_servers.split(","),
            acks="all",
            linger_ms=20,
            bootstrap_timeout_ms=5000,
        )
    except KafkaError as err:
        print(
            f"shiftwatch produce: cannot reach Kafka at {args.bootstrap_servers}: {err} "
            "(fix: start one with `shiftwatch broker`, or give --bootstrap-servers)",
            file=sys.stderr,
        )
        return 1
    sent = 0
    try:
        for batch in iter_file_batches(args.events, 5000):
            for message in batch:
                producer.send(args.topic, value=message.value, key=_request_key(message.value))
                sent += 1
        producer.flush(timeout=60)
    finally:
        producer.close()
    print(f"produced {sent:,} lines to {args.topic} on {args.bootstrap_servers}")
    return 0


def _request_key(value: bytes) -> bytes | None:
    """The message key: the event's request id (docs/events.md, "Kafka topics and keys")."""
    try:
        obj: Any = json.loads(value)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("data"), dict):
        obj = obj["data"]
    request = obj.get("request_id") if isinstance(obj, dict) else None
    return request.encode() if isinstance(request, str) else None
