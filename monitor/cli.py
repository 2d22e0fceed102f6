"""The ``shiftwatch`` command: run, demo, replay, policy check, schema."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

__all__ = ["main"]

EXIT_USAGE = 2


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="consume events from Kafka and watch the policy's models",
        description="Flags override SHIFTWATCH_* environment variables, which override the file.",
    )
    p.add_argument("--config", help="YAML configuration file")
    p.add_argument("--policy", help="policy YAML file")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers, comma-separated")
    p.add_argument("--topics", help="event topics, comma-separated")
    p.add_argument("--group-id", help="consumer group")
    p.add_argument("--dead-letter-topic", help="topic for rejected messages")
    p.add_argument("--http-host", help="address for /metrics, /livez, /readyz, /verdict")
    p.add_argument("--http-port", type=int, help="port for /metrics, /livez, /readyz, /verdict")
    p.add_argument("--alerts-out", help="also append alert records to this JSONL file")
    p.add_argument(
        "--alertmanager-url",
        action="append",
        help="deliver alerts to this Alertmanager (repeat for each replica)",
    )
    p.add_argument(
        "--webhook-url",
        help="POST signed alert records here (secret: SHIFTWATCH_ALERTING__WEBHOOK_SECRET)",
    )
    p.add_argument("--alert-topic", help="produce alert records to this Kafka topic")
    p.add_argument("--outbox", help="SQLite file of the durable alert outbox")
    p.add_argument("--state", help="SQLite file of checkpoints: resume from it after a restart")
    p.add_argument(
        "--state-mismatch",
        choices=["fail", "fresh"],
        help="a checkpoint that cannot be restored (damaged, another key or format): "
        "fail (exit 2, the default) or fresh (discard it, resume from the committed offsets)",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", choices=["auto", "json", "console"])


def _cmd_run(args: argparse.Namespace) -> int:
    import structlog

    from monitor.config import ConfigError, load_settings
    from monitor.logging import configure_logging
    from monitor.policy import PolicyError, load_policy
    from monitor.run import serve
    from monitor.service import install_signal_handlers
    from monitor.state import StateMismatch

    kafka = {
        "bootstrap_servers": args.bootstrap_servers,
        "topics": args.topics.split(",") if args.topics else None,
        "group_id": args.group_id,
        "dead_letter_topic": args.dead_letter_topic,
    }
    alerting = {
        "alertmanager_urls": args.alertmanager_url,
        "webhook_url": args.webhook_url,
        "kafka_topic": args.alert_topic,
        "outbox_path": args.outbox,
    }
    try:
        settings = load_settings(
            args.config,
            policy=args.policy,
            kafka={k: v for k, v in kafka.items() if v is not None} or None,
            alerting={k: v for k, v in alerting.items() if v is not None} or None,
            state={
                k: v
                for k, v in {"path": args.state, "mismatch": args.state_mismatch}.items()
                if v is not None
            }
            or None,
            http_host=args.http_host,
            http_port=args.http_port,
            alerts_out=args.alerts_out,
            log_level=args.log_level,
            log_format=args.log_format,
        )
    except ConfigError as err:
        print(f"shiftwatch run: {err}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format)
    try:
        policy = load_policy(settings.policy)
    except PolicyError as err:
        print(f"shiftwatch run: {err}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        serve(settings, policy, stop)
    except StateMismatch as err:  # one line: the store, why, and the fix; no traceback
        structlog.get_logger("shiftwatch.state").error(str(err))
        return err.exit_status
    return 0


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="run the pipeline over a JSONL file (or - for stdin)")
    p.add_argument("events", help="JSONL file of events, or - for standard input")
    p.add_argument("--policy", required=True, help="policy YAML file")
    p.add_argument("--alerts-out", help="write alert records to this JSONL file")
    p.add_argument("--dead-letter-out", help="write each rejected line, with its reason, here")
    p.add_argument("--batch-size", type=int, default=5000, help="lines per batch (default 5000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    p.add_argument(
        "--state",
        metavar="DIR",
        help="checkpoint here; run the same command again to resume after an interruption",
    )
    p.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=5.0,
        help="seconds between checkpoints with --state (default 5)",
    )
    p.add_argument(
        "--state-mismatch",
        choices=["fail", "fresh"],
        default="fail",
        help="state in --state that cannot be restored (damaged, another key or format): "
        "fail (exit 2, the default) or fresh (discard it, replay from the start)",
    )
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def _cmd_replay(args: argparse.Namespace) -> int:
    import json

    from monitor.logging import configure_logging
    from monitor.policy import PolicyError, load_policy
    from monitor.replay import replay
    from monitor.state import StateMismatch

    configure_logging(args.log_level)
    if args.batch_size < 1 or args.checkpoint_seconds < 0:
        print(
            "shiftwatch replay: --batch-size must be >= 1 and --checkpoint-seconds >= 0",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        policy = load_policy(args.policy)
    except PolicyError as err:
        print(f"shiftwatch replay: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        ledger = replay(
            args.events,
            policy,
            alerts_out=args.alerts_out,
            dead_letter_out=args.dead_letter_out,
            batch_size=args.batch_size,
            show_progress=not args.no_progress,
            state_dir=args.state,
            checkpoint_seconds=args.checkpoint_seconds,
            state_mismatch=args.state_mismatch,
        )
    except StateMismatch as err:  # one line: the file, why, and the fix; no traceback
        print(f"shiftwatch replay: {err}", file=sys.stderr)
        return err.exit_status
    except OSError as err:
        print(f"shiftwatch replay: {err.filename}: {err.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as err:
        print(f"shiftwatch replay: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(
        json.dumps(
            {
                "consumed": ledger.consumed,
                "processed": ledger.processed,
                "dead_lettered": ledger.dead_lettered,
                "duplicates": ledger.duplicates,
                "unjoined": ledger.unjoined,
                "unmonitored": ledger.unmonitored,
                "alerts": ledger.alerts,
            }
        )
    )
    return 0


def _add_policy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("policy", help="work with policy files")
    psub = p.add_subparsers(dest="policy_command", required=True)
    check = psub.add_parser("check", help="validate a policy file; print each error with a fix")
    check.add_argument("file")
    check.add_argument(
        "--events-per-second",
        type=float,
        metavar="N",
        help="expected inferences per second of each model: print how long a rollout gate "
        "needs before each check can be conclusive (docs/policy.md, 'How long a gate waits')",
    )
    check.add_argument(
        "--candidate-share", type=float, default=0.5, help="candidate's share of traffic (0.5)"
    )
    check.add_argument(
        "--negative-share",
        type=float,
        default=0.9,
        help="share of decisions in negative_decisions (assumed 0.9)",
    )
    check.add_argument(
        "--baseline-rate",
        type=float,
        default=0.01,
        help="the baseline's false-negative rate (assumed 0.01)",
    )
    check.add_argument(
        "--label-delay-seconds",
        type=float,
        help="mean delay of positive labels (assumed label_horizon_seconds / 10)",
    )


def _cmd_policy(args: argparse.Namespace) -> int:
    from monitor.policy import PolicyError, load_policy

    try:
        policy = load_policy(args.file)
    except PolicyError as err:
        print(err, file=sys.stderr)
        return 1
    traffic = None
    if args.events_per_second is not None:
        from monitor.gate_estimate import Traffic

        try:
            traffic = Traffic(
                args.events_per_second,
                args.candidate_share,
                args.negative_share,
                args.baseline_rate,
                args.label_delay_seconds,
            )
        except ValueError as err:
            print(f"{args.file}: {err}", file=sys.stderr)
            return 2
    for m in policy.models:
        print(
            f"{args.file}: model {m.name}: baseline {m.baseline}, "
            f"{len(m.checks)} check(s), owner {m.owner}, arl0 {m.false_alarm.arl0:g}"
        )
        if traffic is not None:
            from monitor.gate_estimate import check_estimate

            for c in m.checks:
                print(f"  {c.name} ({c.metric.value}): conclusive {check_estimate(m, c, traffic)}")
    print("ok")
    return 0


def _add_schema(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from monitor.schemas import SCHEMA_NAMES

    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of the policy file, an event or an alert record",
        description="The same schemas as docs/schemas/*.schema.json, built from this version.",
    )
    p.add_argument("name", choices=SCHEMA_NAMES, help="which contract: %(choices)s")


def _cmd_schema(args: argparse.Namespace) -> int:
    from monitor.schemas import render

    sys.stdout.write(render(args.name))
    return 0


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="embedded broker + simulated baseline and candidate + the monitor",
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="port for /metrics, /livez, /readyz, /verdict (default: a free port)",
    )
    p.add_argument(
        "--alertmanager-url",
        action="append",
        help="also deliver the demo's alerts to this Alertmanager (repeatable)",
    )
    p.add_argument("--outbox", help="SQLite file of the alert outbox (default: a temporary one)")
    p.add_argument(
        "--rate", type=float, default=1500.0, help="simulated requests per second (default 1500)"
    )
    p.add_argument("--seed", type=int, default=7)


def _cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo.run import run_demo
    from monitor.logging import configure_logging

    if args.duration <= 0 or args.rate <= 0:
        print("shiftwatch demo: --duration and --rate must be > 0", file=sys.stderr)
        return EXIT_USAGE
    configure_logging("warning")
    return run_demo(
        duration=args.duration,
        metrics_port=args.metrics_port,
        rate=args.rate,
        seed=args.seed,
        alertmanager_urls=args.alertmanager_url or [],
        outbox=args.outbox,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftwatch",
        description="Watch an optimised model against its baseline; alert when a tolerance breaks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_demo(sub)
    _add_replay(sub)
    _add_policy(sub)
    _add_schema(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": _cmd_run,
        "demo": _cmd_demo,
        "replay": _cmd_replay,
        "policy": _cmd_policy,
        "schema": _cmd_schema,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
