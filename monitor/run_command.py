"""``shiftwatch run``: its flags, and the service on either engine with its exit codes."""

from __future__ import annotations

import argparse
import sys
import threading

__all__ = ["EXIT_USAGE", "add_run_command", "run_command"]

#: A usage or configuration error (every command exits with it).
EXIT_USAGE = 2


def add_run_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.add_argument(
        "--kafka-client",
        help="kafka-python (default) or confluent (pip install 'shiftwatch[confluent]')",
    )
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
    p.add_argument(
        "--engine",
        choices=["embedded", "quix"],
        help="embedded: one process (the default); quix: one stage of the two-stage tier "
        "(pip install 'shiftwatch[scale]', docs/scale.md)",
    )
    p.add_argument(
        "--stage",
        choices=["ingest", "judge"],
        help="with --engine quix: ingest (reads the event topics) or judge (runs the detectors)",
    )
    p.add_argument("--state-dir", help="with --engine quix: the stage's local state directory")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", choices=["auto", "json", "console"])


def run_command(args: argparse.Namespace) -> int:
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
        "client": args.kafka_client,
        "dead_letter_topic": args.dead_letter_topic,
    }
    scale = {"engine": args.engine, "stage": args.stage, "state_dir": args.state_dir}
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
            scale={k: v for k, v in scale.items() if v is not None} or None,
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
    if settings.scale.engine == "quix":
        from monitor.scale.engine import run_stage

        try:
            run_stage(settings, policy)
        except ConfigError as err:
            print(f"shiftwatch run: {err}", file=sys.stderr)
            return EXIT_USAGE
        except StateMismatch as err:
            structlog.get_logger("shiftwatch.state").error(str(err))
            return err.exit_status
        return 0
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        serve(settings, policy, stop)
    except StateMismatch as err:  # one line: the store, why, and the fix; no traceback
        structlog.get_logger("shiftwatch.state").error(str(err))
        return err.exit_status
    return 0
