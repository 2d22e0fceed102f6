"""The ``shiftwatch`` command: run, demo, replay, review, policy, schema; broker, simulate,
produce."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from monitor.policy_commands import add_policy_command, policy_command
from monitor.review.commands import add_review_command, review_command

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
    p.add_argument(
        "--reorder-window",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="put lines in event-time order within this many seconds (default 0: the file "
        "is in time order); lines further out of order are counted as late",
    )
    p.add_argument(
        "--history-resolution",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with --state, the history's buckets of event time, in seconds (default 300)",
    )
    p.add_argument(
        "--history-retention",
        type=float,
        default=35.0,
        metavar="DAYS",
        help="with --state, days of history kept before the newest time (default 35)",
    )
    p.add_argument(
        "--summary-json",
        action="store_true",
        help="print the summary as one JSON object (for scripts) instead of text",
    )
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def _cmd_replay(args: argparse.Namespace) -> int:
    import json

    from monitor.logging import configure_logging
    from monitor.policy import PolicyError, load_policy
    from monitor.replay import replay
    from monitor.state import StateMismatch
    from monitor.summary import render

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
    summary: dict[str, object] = {}
    try:
        replay(
            args.events,
            policy,
            alerts_out=args.alerts_out,
            dead_letter_out=args.dead_letter_out,
            batch_size=args.batch_size,
            show_progress=not args.no_progress,
            state_dir=args.state,
            checkpoint_seconds=args.checkpoint_seconds,
            state_mismatch=args.state_mismatch,
            reorder_window=args.reorder_window,
            summary=summary,
            history_resolution=args.history_resolution,
            history_retention=args.history_retention * 86400.0,
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
    print(json.dumps(summary) if args.summary_json else render(summary))
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


class _Parser(argparse.ArgumentParser):
    """argparse, with a did-you-mean for each misspelt flag in any error of this command."""

    argv: Sequence[str] = ()

    def error(self, message: str) -> NoReturn:
        from monitor.suggest import did_you_mean

        flags = [o for a in self._actions for o in a.option_strings]
        wrong = [
            x.split("=")[0]
            for x in _Parser.argv
            if x.startswith("--") and x.split("=")[0] not in flags
        ]
        hints = [f"{x}{did_you_mean(x, flags)}" for x in wrong if did_you_mean(x, flags)]
        if hints and "unrecognized arguments" not in message:
            message += "; unknown: " + ", ".join(hints)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shiftwatch",
        description="Watch an optimised model against its baseline; alert when a tolerance breaks.",
    )
    sub: argparse._SubParsersAction[argparse.ArgumentParser]
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(sub)
    _add_demo(sub)
    _add_replay(sub)
    add_review_command(sub)
    add_policy_command(sub)
    _add_schema(sub)
    from monitor.local import add_commands

    add_commands(sub)
    return parser


def _innermost(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)parser of the command given, e.g. ``shiftwatch policy check``'s."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _innermost(action.choices[chosen], args)
    return parser


def _reject_unknown(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> None:
    """Exit 2 with the command's own usage and a did-you-mean for each unknown argument."""
    from monitor.suggest import did_you_mean

    command = _innermost(parser, args)
    flags = [o for a in command._actions for o in a.option_strings]
    unknown = [
        f"{x}{did_you_mean(x.split('=')[0], flags) if x.startswith('-') else ''}" for x in extra
    ]
    command.error("unrecognized arguments: " + ", ".join(unknown))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        _reject_unknown(parser, args, extra)
    handlers = {
        "run": _cmd_run,
        "demo": _cmd_demo,
        "replay": _cmd_replay,
        "review": review_command,
        "policy": policy_command,
        "schema": _cmd_schema,
    }
    from monitor.http import HttpBindError

    # An expected failure is one line and an exit status, never a traceback.
    try:
        if args.command not in handlers:  # broker, simulate, produce (monitor.local)
            return int(args.handler(args))
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print(f"shiftwatch {args.command}: interrupted", file=sys.stderr)
        return 130
    except HttpBindError as err:
        print(f"shiftwatch {args.command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"shiftwatch {args.command}: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
