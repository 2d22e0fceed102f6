"""The ``shiftwatch`` command: run, demo, replay, review, policy, schema; broker, simulate,
produce."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from monitor.policy_commands import add_policy_command, policy_command
from monitor.review.commands import add_review_command, review_command
from monitor.run_command import EXIT_USAGE, add_run_command, run_command

__all__ = ["main"]


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
    add_run_command(sub)
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
        "run": run_command,
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
