"""``shiftwatch policy check`` and ``shiftwatch policy init``: a policy validated, checked
against real events or a running monitor, sized for a rollout gate, or started from events."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_policy_command", "policy_command"]


def add_policy_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("policy", help="work with policy files")
    psub = p.add_subparsers(dest="policy_command", required=True)
    check = psub.add_parser(
        "check",
        help="validate a policy file; print each error with a fix",
        description="Validate a policy file. With --events, also check it against a sample "
        "of real events; with --monitor, also read a running monitor's /verdict for each of "
        "its models and print a warning line for each model whose baseline itself drifts "
        "(its candidates are judged against a moving baseline). Warnings leave the exit "
        "status 0. Exit status 1: the policy is invalid or the monitor cannot be read.",
    )
    check.add_argument("file")
    check.add_argument(
        "--events",
        metavar="FILE",
        help="also check it against a sample of real events (JSONL; - for stdin): warn about "
        "versions, where values, segment keys and tools the events never show",
    )
    check.add_argument(
        "--sample",
        type=int,
        default=200_000,
        metavar="LINES",
        help="lines of --events to read (default 200000)",
    )
    check.add_argument(
        "--monitor",
        metavar="URL",
        help="base URL of a running shiftwatch's HTTP endpoint, e.g. http://127.0.0.1:9464: "
        "warn about models whose baseline drifts",
    )
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
    init = psub.add_parser(
        "init", help="write a commented starter policy from a sample of real events"
    )
    init.add_argument("--events", required=True, metavar="FILE", help="JSONL events (- for stdin)")
    init.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    init.add_argument("--sample", type=int, default=200_000, metavar="LINES")


def policy_command(args: argparse.Namespace) -> int:
    from monitor.policy import PolicyError, load_policy
    from monitor.profile import EventProfile

    if args.policy_command == "init":
        return _policy_init(args)
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
    if args.events is not None:
        from monitor.policy_lint import lint

        profile = EventProfile.from_file(args.events, args.sample)
        warnings = lint(policy, profile)
        for warning in warnings:
            print(f"warning: {warning}")
        print(
            f"{args.events}: {profile.lines:,} lines read, "
            f"{sum(profile.invalid.values()):,} not valid events; {len(warnings)} warning(s)"
        )
    if args.monitor:
        from monitor.verdict_client import MonitorUnreachable, baseline_warnings

        try:
            warnings = baseline_warnings(args.monitor, policy)
        except MonitorUnreachable as err:
            print(f"shiftwatch policy check: --monitor: {err}", file=sys.stderr)
            return 1
        for line in warnings:
            print(line)
    print("ok")
    return 0


def _policy_init(args: argparse.Namespace) -> int:
    from monitor.policy import PolicyError, load_policy
    from monitor.policy_init import starter_policy
    from monitor.profile import EventProfile

    profile = EventProfile.from_file(args.events, args.sample)
    try:
        text = starter_policy(profile, args.events)
    except ValueError as err:
        print(f"shiftwatch policy init: {err}", file=sys.stderr)
        return 1
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.exists():
        print(
            f"shiftwatch policy init: {out} exists (fix: choose another --out, or remove it)",
            file=sys.stderr,
        )
        return 1
    out.write_text(text, encoding="utf-8")
    try:
        load_policy(out)
    except PolicyError as err:  # a bug here, never the user's: say so plainly
        print(f"shiftwatch policy init: the starter policy is not valid: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}: review the lines marked SET ME, then `shiftwatch policy check {out}`")
    return 0
